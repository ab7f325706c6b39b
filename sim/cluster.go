package sim

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// Timers are the node timers and link counts a world gives its nodes.
// A zero value is one the scenario left out: it takes node.DefaultConfig's
// value, except that the link timeout follows the announce interval (3
// intervals), as do the trigger gap (a tenth) and the longest redial
// backoff (the connect interval), so a scenario that speeds up the
// announcements speeds up what depends on them.
type Timers struct {
	Announce time.Duration
	// Refresh is node.Config.RefreshInterval (docs/protocol.md#quiet-refresh);
	// negative sets it to zero, every round flooded each announce interval
	// (the scenario's `refresh: 0`).
	Refresh time.Duration
	// BatchDelay is node.Config.BatchDelay.
	BatchDelay time.Duration
	// ChangeDelay is node.Config.ChangeDelay; negative sets it to zero,
	// changes sent at the end of the input (the scenario's
	// `change_delay: 0`).
	ChangeDelay time.Duration
	// AskWindow is node.Config.AskWindow; negative sets it to zero, the
	// peer's routes asked for at once (the scenario's `ask_window: 0`).
	AskWindow   time.Duration
	Connect     time.Duration
	RouteExpiry time.Duration
	LinkTimeout time.Duration
	DedupSpan   time.Duration
	// Heartbeat is the heartbeat interval of link liveness
	// (docs/protocol.md#link-liveness); negative turns heartbeats and
	// liveness detection off (the scenario's `heartbeat: 0`).
	Heartbeat time.Duration
	// DeadAfter is how long an extended link may be silent before the
	// node fails it.
	DeadAfter time.Duration
	MinLinks  int
	MaxLinks  int
	HopLimit  int
}

// nodeConfig returns the node configuration these timers give, before the
// node's identity is filled in.
func (t Timers) nodeConfig() node.Config {
	cfg := node.DefaultConfig()
	set := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	set(&cfg.AnnounceInterval, t.Announce)
	set(&cfg.ConnectInterval, t.Connect)
	set(&cfg.RefreshInterval, t.Refresh)
	if t.Refresh < 0 {
		cfg.RefreshInterval = 0
	}
	set(&cfg.BatchDelay, t.BatchDelay)
	set(&cfg.ChangeDelay, t.ChangeDelay)
	if t.ChangeDelay < 0 {
		cfg.ChangeDelay = 0
	}
	set(&cfg.AskWindow, t.AskWindow)
	if t.AskWindow < 0 {
		cfg.AskWindow = 0
	}
	set(&cfg.RouteExpiry, t.RouteExpiry)
	set(&cfg.DedupSpan, t.DedupSpan)
	cfg.LinkTimeout = 3 * cfg.AnnounceInterval
	set(&cfg.LinkTimeout, t.LinkTimeout)
	cfg.TriggerGap = cfg.AnnounceInterval / 10
	cfg.DialBackoffMax = cfg.ConnectInterval
	set(&cfg.HeartbeatInterval, t.Heartbeat)
	if t.Heartbeat < 0 {
		cfg.HeartbeatInterval = 0
	}
	set(&cfg.DeadAfter, t.DeadAfter)
	if cfg.HeartbeatInterval == 0 && t.Refresh == 0 {
		cfg.RefreshInterval = 0 // quiet refresh needs heartbeats
	}
	if t.MaxLinks > 0 {
		cfg.MaxLinks = t.MaxLinks
	}
	if t.MinLinks > 0 {
		cfg.MinLinks = t.MinLinks
	}
	cfg.MinLinks = min(cfg.MinLinks, cfg.MaxLinks)
	if t.HopLimit > 0 {
		cfg.HopLimit = uint8(min(t.HopLimit, 255))
	}
	return cfg
}

// NodeOptions are per-node settings.
type NodeOptions struct {
	NoIncoming, NoRelay bool
	// Seeds are indices of nodes given as Config.Seeds (`init`),
	// Bootstrap those given as Config.Bootstrap.
	Seeds, Bootstrap []int
	// Down leaves the node not started until Restart (a late joiner).
	Down bool
}

// simNode is one mesh member and the state its driver would persist.
type simNode struct {
	idx    int
	name   string
	mac    wire.MAC
	addr   netip.AddrPort
	opts   NodeOptions
	n      *node.Node // nil while down
	epoch  uint32     // bumped at every crash and restart
	offset time.Duration
	// cache, floor and crl are what survives a crash.
	cache     peerCache
	floor     uint64
	crl       simList // the revocation list in force (revoke.go)
	ends      map[node.LinkID]*conn
	tickAt    int64
	tickSeq   uint64
	crashedAt int64 // virtual time of the last crash; -1 if never
	stats     NodeStats
	rng       *rand.Rand // the node's own randomness (node.Config.Rand), from the seed and its index
	// halted: the machine is gone (its paths drop everything) until it
	// restarts.
	halted bool
	// stalled: the process is paused until stallUntil. Its kernel still
	// takes data; what arrives waits in backlog, in order, and is handed
	// to the node when it resumes.
	stalled    bool
	stallUntil int64
	backlog    []func()
	// restartWatch is 1 + the index of the restart whose link-back time
	// the node's next link reports; 0 none.
	restartWatch int
	// hops is a copy of the node's routes for cluster.nextHops, valid
	// unless hopsStale.
	hops      []routeHop
	hopsStale bool
}

// routeHop is one route of a node, as cluster.nextHops reads it: the
// index of its target and the link it leads over.
type routeHop struct {
	via    node.LinkID
	target int32
}

// cluster is the world's nodes and the drivers that run them: it feeds
// each node.Node its inputs, carries out its Ready (sends and closes go
// to the network, TAP writes and health answers to the checker, dials to
// the network, the peer cache and id floor into the state that survives
// a crash) and ticks it at its deadline.
type cluster struct {
	w      *World
	nodes  []*simNode
	byAddr map[netip.AddrPort]int
	byMAC  map[wire.MAC]int
	stalls int // nodes paused now
}

func (c *cluster) init(w *World) {
	c.w = w
	c.byAddr = map[netip.AddrPort]int{}
	c.byMAC = map[wire.MAC]int{}
}

func (c *cluster) n() int { return len(c.nodes) }

// nameOfMAC names the node whose MAC is m, "" for none (wire.Describer's
// Name).
func (c *cluster) nameOfMAC(m wire.MAC) string {
	if i, ok := c.byMAC[m]; ok {
		return c.nodes[i].name
	}
	return ""
}

// macsOf returns the MACs of nodes idx.
func (c *cluster) macsOf(idx []int32) []wire.MAC {
	out := make([]wire.MAC, len(idx))
	for k, i := range idx {
		out[k] = c.nodes[i].mac
	}
	return out
}

// macOf returns the MAC of node i: 02:00:00 followed by i+1.
func macOf(i int) wire.MAC {
	v := i + 1
	return wire.MAC{0x02, 0x00, 0x00, byte(v >> 16), byte(v >> 8), byte(v)}
}

// N returns the number of nodes.
func (w *World) N() int { return w.cluster.n() }

// Name returns the name of node i ("n12").
func (w *World) Name(i int) string { return w.cluster.nodes[i].name }

// MAC returns the MAC of node i.
func (w *World) MAC(i int) wire.MAC { return w.cluster.nodes[i].mac }

// Node returns node i's engine, nil while it is down. Callers may read
// it; feeding it inputs outside the world breaks the run.
func (w *World) Node(i int) *node.Node { return w.cluster.nodes[i].n }

// Links returns node i's links as its status snapshot shows them (nil
// while it is down): as the daemon's control socket does, it first
// brings the engine's clock to now with a tick, so that the links'
// silences are measured to this instant. The tick is an input like any
// other: it is part of the run.
func (w *World) Links(i int) []node.LinkInfo {
	sn := w.cluster.nodes[i]
	if sn.n == nil || sn.stalled {
		return nil
	}
	sn.n.Step(w.cluster.nodeTime(i), node.Tick{})
	w.cluster.drain(i)
	return sn.n.Links()
}

// NodeStats returns what the world counted for node i.
func (w *World) NodeStats(i int) NodeStats { return w.cluster.nodes[i].stats }

// Up reports whether node i is running.
func (w *World) Up(i int) bool { return w.cluster.nodes[i].n != nil }

// Offset returns how far node i's clock is off virtual time.
func (w *World) Offset(i int) time.Duration { return w.cluster.nodes[i].offset }

// Index returns the index of the node named name.
func (w *World) Index(name string) (int, bool) {
	for i, n := range w.cluster.nodes {
		if n.name == name {
			return i, true
		}
	}
	return 0, false
}

// RandomUp returns a random node that is up, or -1 when none is. It
// draws from the world's random source only when some node is up.
func (w *World) RandomUp() int {
	up := 0
	for i := range w.cluster.nodes {
		if w.Up(i) {
			up++
		}
	}
	if up == 0 {
		return -1
	}
	k := w.rng.IntN(up)
	for i := range w.cluster.nodes {
		if w.Up(i) {
			if k == 0 {
				return i
			}
			k--
		}
	}
	panic("unreachable")
}

// AddNode adds a node and returns its index. It starts at once (unless
// opts.Down), with no links.
func (w *World) AddNode(opts NodeOptions) int { return w.cluster.add(opts) }

func (c *cluster) add(opts NodeOptions) int {
	w := c.w
	i := len(c.nodes)
	v := i + 1
	sn := &simNode{
		idx: i, name: fmt.Sprintf("n%d", i), mac: macOf(i),
		addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}), Port),
		opts:   opts,
		ends:   map[node.LinkID]*conn{},
		tickAt: -1, crashedAt: -1,
		rng: rand.New(rand.NewPCG(w.cfg.Seed, 0x6e6f6465<<32|uint64(i))), // "node", i
	}
	if w.cfg.ClockSkew > 0 {
		sn.offset = time.Duration(w.rng.Int64N(2*int64(w.cfg.ClockSkew)+1)) - w.cfg.ClockSkew
	}
	if d, ok := w.cfg.Offsets[i]; ok {
		sn.offset = d
	}
	c.nodes = append(c.nodes, sn)
	w.net.addNode()
	c.byAddr[sn.addr] = i
	c.byMAC[sn.mac] = i
	if !opts.Down {
		c.start(i)
	}
	return i
}

// start creates node i's engine from its persisted state and ticks it.
func (c *cluster) start(i int) {
	w := c.w
	sn := c.nodes[i]
	cfg := w.cfg.Timers.nodeConfig()
	cfg.MAC, cfg.Port, cfg.NoIncoming, cfg.NoRelay = sn.mac, Port, sn.opts.NoIncoming, sn.opts.NoRelay
	cfg.IDFloor, cfg.Rand = sn.floor, sn.rng
	cfg.Seeds, cfg.Bootstrap = c.seedsOf(i), c.bootstrapOf(i)
	cfg.Cache = sn.cache.peers(c)
	if w.cfg.Signatures {
		cfg.Auth = newSimAuth(w.cfg.Seed, sn.mac)
	}
	n, err := node.New(cfg)
	if err != nil {
		panic(fmt.Sprintf("sim: start %s: %v", sn.name, err)) // the world built a bad config
	}
	sn.n = n
	sn.epoch++
	sn.tickAt = -1
	sn.hopsStale = true
	w.measure.touch()
	w.trace.record(traceRec{kind: evStart, node: int32(i)})
	n.Step(c.nodeTime(i), node.Tick{})
	if sn.crl.number > 0 {
		n.Step(c.nodeTime(i), node.SetRevocation{Number: sn.crl.number, DER: sn.crl.der()})
	}
	c.drain(i)
}

// seedsOf returns node i's seeds (`init`) as peers.
func (c *cluster) seedsOf(i int) []node.Peer {
	var out []node.Peer
	for _, s := range c.nodes[i].opts.Seeds {
		out = append(out, node.Peer{MAC: c.nodes[s].mac, Addr: c.nodes[s].addr})
	}
	return out
}

// noteLinkUp counts a link sn took up (event e): as a directory link when
// it is one at this end, which is the end that decides it (the dialler of
// a bootstrap peer, the acceptor at its limit), and in the peak degrees.
func (c *cluster) noteLinkUp(sn *simNode, e node.Event) {
	t := &c.w.totals
	if cn := sn.ends[e.Link]; e.Directory && cn != nil && !cn.directory {
		cn.directory = true
		t.DirectoryLinks++
	}
	mesh, dir := sn.n.LinkCounts()
	t.PeakDegree, t.PeakLinks = max(t.PeakDegree, mesh), max(t.PeakLinks, mesh+dir)
}

// bootstrapOf returns node i's bootstrap peers.
func (c *cluster) bootstrapOf(i int) []node.Peer {
	var out []node.Peer
	for _, b := range c.nodes[i].opts.Bootstrap {
		out = append(out, node.Peer{MAC: c.nodes[b].mac, Addr: c.nodes[b].addr})
	}
	return out
}

// stalledN returns how many nodes are paused now.
func (c *cluster) stalledN() int { return c.stalls }

// input runs fn, an input to node i, now, or when the node resumes if it
// is paused (stalled).
func (c *cluster) input(i int, fn func()) {
	sn := c.nodes[i]
	if sn.stalled {
		sn.backlog = append(sn.backlog, fn)
		return
	}
	fn()
}

// nodeTime is the time node i's clock shows.
func (c *cluster) nodeTime(i int) time.Time {
	return Start.Add(time.Duration(c.w.now) + c.nodes[i].offset)
}

// tick runs a node's deadline event, unless it is stale.
func (c *cluster) tick(ev *event) {
	sn := c.nodes[ev.node]
	if sn.n == nil || ev.aux != sn.tickSeq || sn.stalled {
		return // stale: rescheduled or crashed since; or paused (it is ticked when it resumes)
	}
	sn.tickAt = -1
	c.w.trace.record(traceRec{kind: evTick, node: ev.node})
	sn.n.Step(c.nodeTime(int(ev.node)), node.Tick{})
	c.drain(int(ev.node))
}

// drain carries out node i's Ready and schedules its next tick.
func (c *cluster) drain(i int) { c.drainAfter(i, true) }

// drainMessage is drain after an input that cannot move the node's
// deadline earlier unless its Ready shows a change of links, dials or
// peer cache, or says so (Sooner): a message or a TAP frame. Asking NextDeadline after every
// message costs a scan of the peer cache in a node below MinLinks; the
// tick already scheduled is never later than the deadline, and ticking
// early is harmless.
func (c *cluster) drainMessage(i int) {
	r := c.nodes[i].n.Ready()
	c.drainAfter(i, r.Sooner || len(r.Closes) > 0 || len(r.Dials) > 0 || len(r.CacheStore) > 0 || len(r.CacheRemove) > 0 ||
		c.nodes[i].tickAt < 0)
}

func (c *cluster) drainAfter(i int, recompute bool) {
	w := c.w
	sn := c.nodes[i]
	n := sn.n
	r := n.Ready()
	var src, cp []byte
	for _, s := range r.Sends {
		cn := sn.ends[s.Link]
		if cn == nil {
			continue // a link the world already took from the node: cannot happen
		}
		if len(s.Msg) > 0 && wire.Type(s.Msg[0]) == wire.TypeHeartbeat {
			sn.stats.Heartbeats++
		}
		// One flood sends the same bytes on many links: copy them once,
		// into a pooled buffer the links share.
		if len(s.Msg) == 0 || len(src) != len(s.Msg) || &src[0] != &s.Msg[0] {
			src, cp = s.Msg, w.net.pool.share(s.Msg)
		}
		size := uint64(len(cp) + 2)
		if s.Control {
			sn.stats.ControlMsgs++
			sn.stats.ControlBytes += size
		} else {
			sn.stats.DataMsgs++
			sn.stats.DataBytes += size
		}
		end := 0
		if cn.end[1].node == i {
			end = 1
		}
		w.check.sent(i, cp)
		w.check.onWire(cn, cp)
		w.net.pool.hold(cp)
		w.net.transmit(cn, end, cp, s.Control)
	}
	for _, cl := range r.Closes {
		w.net.closeByNode(i, cl)
	}
	for _, f := range r.TAP {
		if fl := w.check.tap(i, f.Frame); fl != nil {
			w.traffic.delivered(i, fl)
		}
	}
	for _, d := range r.Dials {
		w.net.dial(i, d)
	}
	for _, p := range r.CacheStore {
		sn.cache.store(c, p)
	}
	for _, mac := range r.CacheRemove {
		sn.cache.remove(c, mac)
	}
	if r.IDFloor != 0 {
		sn.floor = r.IDFloor
	}
	for _, h := range r.Health {
		w.check.health(i, h)
	}
	for _, e := range r.Events {
		switch e.Kind {
		case node.EventLinkUp, node.EventLinkDown:
			if e.Kind == node.EventLinkUp {
				c.noteLinkUp(sn, e)
			}
			if e.Directory {
				break // no route crosses it: the mesh is as quiet as before
			}
			w.measure.touch()
			sn.hopsStale = true
		case node.EventRouteLearned, node.EventRouteChanged,
			node.EventRouteFailover, node.EventRouteWithdrawn, node.EventRouteExpired:
			w.measure.touch()
			sn.hopsStale = true
		}
		if e.Kind == node.EventViolation {
			sn.stats.Violations++
			w.check.violate("protocol violation", fmt.Sprintf("%s: %v", sn.name, e.Err))
		}
	}
	var heard []node.Revocation
	if len(r.Revocations) > 0 {
		heard = slices.Clone(r.Revocations)
		for k := range heard {
			heard[k].DER = slices.Clone(heard[k].DER) // it aliases a message
		}
	}
	n.Advance()
	if recompute {
		c.scheduleTick(i)
	}
	if heard != nil {
		c.heardRevocations(i, heard)
	}
}

// scheduleTick makes sure node i is ticked at its next deadline.
func (c *cluster) scheduleTick(i int) {
	w := c.w
	sn := c.nodes[i]
	d := sn.n.NextDeadline()
	if d.IsZero() {
		return
	}
	at := int64(d.Sub(Start) - sn.offset)
	if at <= w.now {
		// The node wants a tick now although it was just given its
		// input: tick it a little later rather than spin.
		w.totals.BusyTicks++
		at = w.now + int64(w.cfg.BusyTickDelay)
	}
	if sn.tickAt >= 0 && sn.tickAt <= at {
		return // an earlier tick is scheduled; it reschedules
	}
	sn.tickSeq++
	sn.tickAt = at
	w.push(event{at: at, kind: evTick, node: int32(i), aux: sn.tickSeq})
}

// crash stops node i, keeping only its peer cache and id floor. Its
// kernel closes its connections at once: each peer sees the end of the
// stream after what the node sent. It reports whether the node was up.
func (c *cluster) crash(i int) bool {
	w := c.w
	sn := c.nodes[i]
	if sn.n == nil {
		return false
	}
	w.trace.record(traceRec{kind: evCrash, node: int32(i)})
	c.stopWith(i, w.net.closeEnd)
	return true
}

// stopWith stops node i and then does end to its end of each of its
// connections (close it, or let it vanish).
func (c *cluster) stopWith(i int, end func(cn *conn, k int)) {
	conns := c.w.net.connsOf(i)
	c.stop(i)
	for _, cn := range conns {
		k := 0
		if cn.end[1].node == i {
			k = 1
		}
		end(cn, k)
	}
}

// halt makes node i's machine vanish: the process stops as in a crash,
// but nothing is sent: every path to and from it drops everything, and
// its peers learn only by their own liveness or timeouts. It reports
// whether the node was up.
func (c *cluster) halt(i int) bool {
	w := c.w
	sn := c.nodes[i]
	if sn.n == nil {
		return false
	}
	w.trace.record(traceRec{kind: evHalt, node: int32(i)})
	c.stopWith(i, w.net.vanish)
	sn.halted = true
	w.net.refreshNode(i)
	w.check.lost()
	return true
}

// stop takes node i's engine away, with its pending inputs.
func (c *cluster) stop(i int) {
	sn := c.nodes[i]
	c.w.measure.touch()
	sn.n = nil
	sn.epoch++
	sn.crashedAt = c.w.now
	sn.tickAt = -1
	if sn.stalled {
		c.stalls--
	}
	sn.stalled, sn.backlog = false, nil
	clear(sn.ends)
	c.w.check.lost()
}

// restart starts node i again, if it is down, and reports whether it was.
// A halted machine comes back first: its paths pass packets again, and
// its kernel answers what arrives on its old connections with resets.
func (c *cluster) restart(i int) bool {
	sn := c.nodes[i]
	if sn.n != nil {
		return false
	}
	if sn.halted {
		sn.halted = false
		c.w.net.refreshNode(i)
	}
	c.start(i)
	return true
}

// stall pauses node i's process for d: it processes nothing (no ticks,
// no messages, no TAP frames) while its links stay up; what arrives waits.
// It reports whether the node was up and running.
func (c *cluster) stall(i int, d time.Duration) bool {
	w := c.w
	sn := c.nodes[i]
	if sn.n == nil || sn.stalled {
		return false
	}
	w.trace.record(traceRec{kind: evStall, node: int32(i), aux: uint64(d)})
	sn.stalled, sn.stallUntil = true, w.now+int64(d)
	c.stalls++
	w.measure.touch()
	sn.tickAt = -1
	sn.tickSeq++
	epoch := sn.epoch
	w.check.lost()
	w.push(event{at: sn.stallUntil, kind: evAction, fn: func() { c.resume(i, epoch) }})
	return true
}

// resume continues a paused node: it takes the backlog in order, then
// runs its timers.
func (c *cluster) resume(i int, epoch uint32) {
	w := c.w
	sn := c.nodes[i]
	if sn.n == nil || sn.epoch != epoch || !sn.stalled {
		return
	}
	w.trace.record(traceRec{kind: evResume, node: int32(i), aux: uint64(len(sn.backlog))})
	sn.stalled = false
	sn.tickAt = -1 // any tick scheduled while it was paused was skipped
	c.stalls--
	w.measure.touch()
	for k := 0; k < len(sn.backlog) && sn.n != nil && sn.epoch == epoch; k++ {
		sn.backlog[k]()
	}
	sn.backlog = nil
	if sn.n == nil || sn.epoch != epoch {
		return
	}
	sn.n.Step(c.nodeTime(i), node.Tick{})
	c.drain(i)
	w.check.lost()
}

// setOffset sets node i's clock offset and reschedules its tick.
func (c *cluster) setOffset(i int, d time.Duration) {
	sn := c.nodes[i]
	sn.offset = d
	c.w.trace.record(traceRec{kind: evClock, node: int32(i), aux: uint64(d)})
	if sn.n != nil {
		sn.tickAt = -1
		c.scheduleTick(i)
	}
}

// crashedSince reports whether node i crashed after virtual time t: it
// lost its de-duplication state, so a second delivery is no violation.
func (c *cluster) crashedSince(i int, t int64) bool { return c.nodes[i].crashedAt >= t }

// hopLimit is the hop limit the nodes give targeted frames.
func (c *cluster) hopLimit() int {
	for _, sn := range c.nodes {
		if sn.n != nil {
			return int(sn.n.Config().HopLimit)
		}
	}
	return 64
}

// nextHops fills next (n*n) with each up node's next hop toward each
// node over a live link, -1 for none: the routing state of the whole
// mesh, as the nodes hold it.
//
// A node's routes change only with an event of its own (a route learned,
// changed, failed over, withdrawn or expired, a link up or down), so each
// node's copy of them (simNode.hops) is read again from the node only
// after one; whether each link works is asked afresh every time.
func (c *cluster) nextHops(next []int32) {
	n := len(c.nodes)
	for k := range next {
		next[k] = -1
	}
	for u, sn := range c.nodes {
		if sn.n == nil {
			continue
		}
		if sn.hopsStale {
			c.readHops(sn)
		}
		row := next[u*n : (u+1)*n]
		// The hops are sorted by link: one question per link (no route
		// is over link 0).
		via, peer := node.LinkID(0), -1
		for _, h := range sn.hops {
			if h.via != via {
				via, peer = h.via, -1
				if v, ok := c.w.net.peerOf(u, via); ok {
					peer = v
				}
			}
			if peer >= 0 {
				row[h.target] = int32(peer)
			}
		}
	}
}

// readHops copies sn's routes to nodes of the world into sn.hops, sorted
// by link.
func (c *cluster) readHops(sn *simNode) {
	hops := sn.hops[:0]
	if cap(hops) < len(c.nodes) {
		hops = make([]routeHop, 0, len(c.nodes)) // a route to every node, at most
	}
	sn.n.EachNextHop(func(target wire.MAC, via node.LinkID) {
		if x, ok := c.byMAC[target]; ok {
			hops = append(hops, routeHop{via: via, target: int32(x)})
		}
	})
	slices.SortFunc(hops, func(a, b routeHop) int { return cmp.Compare(a.via, b.via) })
	sn.hops, sn.hopsStale = hops, false
}

// failoverConfirm is how long the nodes let a route moved to a backup wait
// for a newer round before they withdraw it.
func (c *cluster) failoverConfirm() time.Duration { return c.w.cfg.Timers.nodeConfig().FailoverConfirm }
