package sim

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// Start is the virtual time at which every world starts:
// 2026-01-01T00:00:00Z.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Port is the port every simulated node accepts links on.
const Port = 41744

// Timers are the node timers and link counts a world gives its nodes.
// A zero value is one the scenario left out: it takes node.DefaultConfig's
// value, except that the link timeout follows the announce interval (3
// intervals), as do the trigger gap (a tenth) and the longest redial
// backoff (the connect interval), so a scenario that speeds up the
// announcements speeds up what depends on them.
type Timers struct {
	Announce    time.Duration
	Connect     time.Duration
	RouteExpiry time.Duration
	LinkTimeout time.Duration
	DedupSpan   time.Duration
	MinLinks    int
	MaxLinks    int
	HopLimit    int
}

// Range is a closed interval of durations; a value is drawn uniformly
// from it. Min == Max is a fixed value.
type Range struct{ Min, Max time.Duration }

// Fixed returns the range holding only d.
func Fixed(d time.Duration) Range { return Range{d, d} }

func (r Range) draw(rng *rand.Rand) time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + time.Duration(rng.Int64N(int64(r.Max-r.Min)+1))
}

// String formats r as "5ms" or "2ms..20ms".
func (r Range) String() string {
	if r.Max <= r.Min {
		return r.Min.String()
	}
	return r.Min.String() + ".." + r.Max.String()
}

// LinkClass describes one class of links (LAN or WAN).
type LinkClass struct {
	// Latency is the one-way latency, drawn once per edge.
	Latency Range
	// Bandwidth is in bytes per second; 0 means unlimited (no
	// serialization delay, no queue).
	Bandwidth int64
}

// Config configures a World.
type Config struct {
	// Seed seeds the world's only random source.
	Seed uint64
	// Timers are given to every node.
	Timers Timers
	// LAN and WAN are the link classes; edges of a topology marked WAN
	// use WAN, every other edge LAN. A zero LAN latency means 1 ms.
	LAN, WAN LinkClass
	// QueueLimit is the number of data messages a direction of a
	// bandwidth-limited link queues before it drops (node.SendQueue;
	// default 256).
	QueueLimit int
	// Detect is how long each end of a cut link takes to notice it
	// (default 1 s).
	Detect time.Duration
	// DialTimeout is how long a dial to an unreachable peer takes to fail
	// (default 3 s).
	DialTimeout time.Duration
	// SeedProtocol is the fraction of edges whose links speak only the
	// seed protocol (extended=false), to exercise interoperation.
	SeedProtocol float64
	// Relink brings static edges back up by themselves when a cut or
	// partition heals or a node restarts, as if the nodes' redial
	// succeeded at once. Organic worlds leave that to the connect policy.
	Relink bool
	// ProbeStep is the resolution of convergence and failover
	// measurements (default 50 ms).
	ProbeStep time.Duration
	// RecoveryTimeout gives up measuring a fault's recovery (default 5 min).
	RecoveryTimeout time.Duration
	// FloodWindow is how long after it is sent a frame is expected to
	// have arrived everywhere (default 5 s).
	FloodWindow time.Duration
	// ModelRouting logs every announcement arrival for the naive
	// first-path model (CheckFirstPath). It costs memory: N² entries.
	ModelRouting bool
	// TraceSize is how many recent events are kept for failure reports
	// (default 64).
	TraceSize int
	// MaxViolations caps the violations recorded in full (default 20);
	// later ones are only counted.
	MaxViolations int
	// ClockSkew offsets each node's clock from virtual time by a value
	// drawn uniformly from [-ClockSkew, +ClockSkew] when it is added.
	ClockSkew time.Duration
	// BusyTickDelay is how long after now a node that asks for a tick at
	// or before the current time is ticked (default 10 ms): a driver that
	// obeyed would spin. Totals.BusyTicks counts these.
	BusyTickDelay time.Duration
	// Offsets fixes the clock offset of some nodes (by index) from the
	// moment they are added; it overrides ClockSkew for them.
	Offsets map[int]time.Duration
}

func (c *Config) setDefaults() {
	if c.LAN.Latency.Min <= 0 && c.LAN.Latency.Max <= 0 {
		c.LAN.Latency = Fixed(time.Millisecond)
	}
	if c.WAN.Latency.Min <= 0 && c.WAN.Latency.Max <= 0 {
		c.WAN.Latency = c.LAN.Latency
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = 256
	}
	if c.Detect <= 0 {
		c.Detect = time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 3 * time.Second
	}
	if c.ProbeStep <= 0 {
		c.ProbeStep = 50 * time.Millisecond
	}
	if c.RecoveryTimeout <= 0 {
		c.RecoveryTimeout = 5 * time.Minute
	}
	if c.FloodWindow <= 0 {
		c.FloodWindow = 5 * time.Second
	}
	if c.TraceSize <= 0 {
		c.TraceSize = 64
	}
	if c.BusyTickDelay <= 0 {
		c.BusyTickDelay = 10 * time.Millisecond
	}
	if c.MaxViolations <= 0 {
		c.MaxViolations = 20
	}
}

// NodeOptions are per-node settings.
type NodeOptions struct {
	NoIncoming, NoRelay bool
	// Seeds are indices of nodes given as Config.Seeds (`init`).
	Seeds []int
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
	// cache and floor are what survives a crash.
	cache     map[wire.MAC]netip.AddrPort
	cacheKeys []wire.MAC // insertion order, for a deterministic Config.Cache
	floor     uint64
	ends      map[node.LinkID]*conn
	tickAt    int64
	tickSeq   uint64
	crashedAt int64 // virtual time of the last crash; -1 if never
	stats     NodeStats
}

// NodeStats are what the world counted for one node.
type NodeStats struct {
	ControlMsgs, ControlBytes uint64 // sent, framing included
	DataMsgs, DataBytes       uint64
	QueueDrops                uint64 // data dropped at a full send queue
	Closes                    uint64 // links the node closed itself
	Violations                uint64 // protocol-violation events
	DialFailures              uint64
}

// World is a simulated mesh. It is not safe for concurrent use.
type World struct {
	cfg   Config
	rng   *rand.Rand
	now   int64 // virtual nanoseconds since Start
	seq   uint64
	queue eventQueue

	nodes   []*simNode
	byAddr  map[netip.AddrPort]int
	byMAC   map[wire.MAC]int
	edges   map[uint64]*edge
	edgeSeq []*edge // creation order: deterministic iteration
	allPair bool    // organic: every pair may link; edges appear on demand
	part    []int   // partition group of each node; 0 = none
	nextID  node.LinkID
	lossSeq uint64 // bumped whenever a link or node is lost

	events    uint64
	hash      uint64
	trace     []traceRec // a ring of the most recent records
	traceN    int        // the next slot of trace
	traceFull bool       // trace has wrapped

	obs        observer
	probe      prober
	violations []Violation
	violationN int
	violCat    map[string]int
	totals     Totals

	// OnViolation, when set, is called at each violation (tests stop
	// the run early with it).
	OnViolation func(Violation)
}

// Totals are world-wide counters.
type Totals struct {
	Events       uint64
	Messages     uint64 // messages delivered to a node
	Lost         uint64 // messages dropped by a broken link or a gone end
	BusyTicks    uint64 // ticks a node asked for at or before the current time
	SeedLinks    uint64 // links created that speak only the seed protocol
	LinksCreated uint64
}

// New returns an empty world.
func New(cfg Config) *World {
	cfg.setDefaults()
	w := &World{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x696e76706e)), // "invpn"
		byAddr:  map[netip.AddrPort]int{},
		byMAC:   map[wire.MAC]int{},
		edges:   map[uint64]*edge{},
		hash:    fnvOffset,
		trace:   make([]traceRec, cfg.TraceSize),
		violCat: map[string]int{},
	}
	w.probe.init(w)
	w.obs.init(w)
	return w
}

// Config returns the world's configuration with defaults filled in.
func (w *World) Config() Config { return w.cfg }

// Rand returns the world's random source, for callers that build
// schedules: drawing from it is part of the deterministic run.
func (w *World) Rand() *rand.Rand { return w.rng }

// Now returns the virtual time.
func (w *World) Now() time.Time { return Start.Add(time.Duration(w.now)) }

// Elapsed returns the virtual time since Start.
func (w *World) Elapsed() time.Duration { return time.Duration(w.now) }

// Hash returns the running hash of the event trace (FNV-1a steps over
// 64-bit words).
func (w *World) Hash() uint64 { return w.hash }

// Totals returns the world-wide counters.
func (w *World) Totals() Totals { t := w.totals; t.Events = w.events; return t }

// N returns the number of nodes.
func (w *World) N() int { return len(w.nodes) }

// Name returns the name of node i ("n12").
func (w *World) Name(i int) string { return w.nodes[i].name }

// MAC returns the MAC of node i.
func (w *World) MAC(i int) wire.MAC { return w.nodes[i].mac }

// Node returns node i's engine, nil while it is down. Callers may read
// it; feeding it inputs outside the world breaks the run.
func (w *World) Node(i int) *node.Node { return w.nodes[i].n }

// NodeStats returns what the world counted for node i.
func (w *World) NodeStats(i int) NodeStats { return w.nodes[i].stats }

// Up reports whether node i is running.
func (w *World) Up(i int) bool { return w.nodes[i].n != nil }

// Index returns the index of the node named name.
func (w *World) Index(name string) (int, bool) {
	for i, n := range w.nodes {
		if n.name == name {
			return i, true
		}
	}
	return 0, false
}

// macOf returns the MAC of node i: 02:00:00 followed by i+1.
func macOf(i int) wire.MAC {
	v := i + 1
	return wire.MAC{0x02, 0x00, 0x00, byte(v >> 16), byte(v >> 8), byte(v)}
}

// AddNode adds a node and returns its index. It starts at once (unless
// opts.Down), with no links.
func (w *World) AddNode(opts NodeOptions) int {
	i := len(w.nodes)
	v := i + 1
	sn := &simNode{
		idx: i, name: fmt.Sprintf("n%d", i), mac: macOf(i),
		addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}), Port),
		opts:  opts,
		cache: map[wire.MAC]netip.AddrPort{}, ends: map[node.LinkID]*conn{},
		tickAt: -1, crashedAt: -1,
	}
	if w.cfg.ClockSkew > 0 {
		sn.offset = time.Duration(w.rng.Int64N(2*int64(w.cfg.ClockSkew)+1)) - w.cfg.ClockSkew
	}
	if d, ok := w.cfg.Offsets[i]; ok {
		sn.offset = d
	}
	w.nodes = append(w.nodes, sn)
	w.part = append(w.part, 0)
	w.byAddr[sn.addr] = i
	w.byMAC[sn.mac] = i
	w.probe.grow()
	if !opts.Down {
		w.start(i)
	}
	return i
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
	set(&cfg.RouteExpiry, t.RouteExpiry)
	set(&cfg.DedupSpan, t.DedupSpan)
	cfg.LinkTimeout = 3 * cfg.AnnounceInterval
	set(&cfg.LinkTimeout, t.LinkTimeout)
	cfg.TriggerGap = cfg.AnnounceInterval / 10
	cfg.DialBackoffMax = cfg.ConnectInterval
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

// start creates node i's engine from its persisted state and ticks it.
func (w *World) start(i int) {
	sn := w.nodes[i]
	cfg := w.cfg.Timers.nodeConfig()
	cfg.MAC, cfg.Port, cfg.NoIncoming, cfg.NoRelay = sn.mac, Port, sn.opts.NoIncoming, sn.opts.NoRelay
	cfg.IDFloor, cfg.Rand = sn.floor, w.rng
	for _, s := range sn.opts.Seeds {
		cfg.Seeds = append(cfg.Seeds, node.Peer{MAC: w.nodes[s].mac, Addr: w.nodes[s].addr})
	}
	for _, mac := range sn.cacheKeys {
		if a, ok := sn.cache[mac]; ok {
			cfg.Cache = append(cfg.Cache, node.Peer{MAC: mac, Addr: a})
		}
	}
	n, err := node.New(cfg)
	if err != nil {
		panic(fmt.Sprintf("sim: start %s: %v", sn.name, err)) // the world built a bad config
	}
	sn.n = n
	sn.epoch++
	sn.tickAt = -1
	w.record(traceRec{kind: evStart, node: int32(i)})
	n.Step(w.nodeTime(i), node.Tick{})
	w.drain(i)
}

// nodeTime is the time node i's clock shows.
func (w *World) nodeTime(i int) time.Time {
	return Start.Add(time.Duration(w.now) + w.nodes[i].offset)
}

// At schedules fn at virtual time Start+at (or now, if that is past).
// fn runs inside the event loop and may call any World method.
func (w *World) At(at time.Duration, fn func()) {
	w.push(event{at: max(int64(at), w.now), kind: evAction, fn: fn})
}

// After schedules fn d after the current virtual time.
func (w *World) After(d time.Duration, fn func()) { w.At(time.Duration(w.now)+d, fn) }

// RunUntil processes events until the virtual time reaches Start+t; the
// clock then stands at t.
func (w *World) RunUntil(t time.Duration) {
	var ev event
	for w.queue.len() > 0 && w.queue.next() <= int64(t) {
		w.queue.pop(&ev)
		w.now = ev.at
		w.dispatch(&ev)
	}
	if int64(t) > w.now {
		w.now = int64(t)
	}
}

// RunFor runs the world for d of virtual time.
func (w *World) RunFor(d time.Duration) { w.RunUntil(time.Duration(w.now) + d) }

// push schedules ev, giving it the next sequence number.
func (w *World) push(ev event) {
	w.seq++
	w.queue.push(&ev, w.seq)
}

// dispatch runs one event.
func (w *World) dispatch(ev *event) {
	w.events++
	switch ev.kind {
	case evTick:
		sn := w.nodes[ev.node]
		if sn.n == nil || ev.aux != sn.tickSeq {
			return // stale: rescheduled or crashed since
		}
		sn.tickAt = -1
		w.record(traceRec{kind: evTick, node: ev.node})
		sn.n.Step(w.nodeTime(int(ev.node)), node.Tick{})
		w.drain(int(ev.node))
	case evDeliver:
		w.deliver(ev.c, int(ev.from), w.arrive(ev.c, int(ev.from)))
	case evTxDone:
		w.txDone(ev.c, int(ev.from), ev.msg)
	case evLinkDown:
		w.linkDown(ev.c, int(ev.from), ev.err)
	case evDialDone:
		w.dialDone(ev)
	case evDialFail:
		sn := w.nodes[ev.node]
		if sn.n == nil || sn.epoch != ev.epoch {
			return
		}
		sn.stats.DialFailures++
		w.record(traceRec{kind: evDialFail, node: ev.node, peer: int32(ev.aux)})
		sn.n.Step(w.nodeTime(int(ev.node)), node.DialFailed{Peer: w.nodes[ev.aux].mac, Err: ev.err})
		w.drain(int(ev.node))
	case evRelink:
		w.relinkDone(ev)
	case evAction:
		w.record(traceRec{kind: evAction})
		ev.fn()
	}
}

// drain carries out node i's Ready and schedules its next tick.
func (w *World) drain(i int) { w.drainAfter(i, true) }

// drainMessage is drain after an input that cannot move the node's
// deadline earlier unless its Ready shows a change of links, dials or
// peer cache: a message or a TAP frame. Asking NextDeadline after every
// message costs a scan of the peer cache in a node below MinLinks; the
// tick already scheduled is never later than the deadline, and ticking
// early is harmless.
func (w *World) drainMessage(i int) {
	r := w.nodes[i].n.Ready()
	w.drainAfter(i, len(r.Closes) > 0 || len(r.Dials) > 0 || len(r.CacheStore) > 0 || len(r.CacheRemove) > 0 ||
		w.nodes[i].tickAt < 0)
}

func (w *World) drainAfter(i int, recompute bool) {
	sn := w.nodes[i]
	n := sn.n
	r := n.Ready()
	var src, cp []byte
	for _, s := range r.Sends {
		c := sn.ends[s.Link]
		if c == nil {
			continue // a link the world already took from the node: cannot happen
		}
		// One flood sends the same bytes on many links: copy them once.
		if len(s.Msg) == 0 || len(src) != len(s.Msg) || &src[0] != &s.Msg[0] {
			src, cp = s.Msg, append([]byte(nil), s.Msg...)
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
		if c.end[1].node == i {
			end = 1
		}
		w.obs.sent(i, cp)
		w.transmit(c, end, cp, s.Control)
	}
	for _, cl := range r.Closes {
		w.closeByNode(i, cl)
	}
	for _, f := range r.TAP {
		w.obs.tap(i, f)
	}
	for _, d := range r.Dials {
		w.dial(i, d)
	}
	for _, p := range r.CacheStore {
		if _, ok := sn.cache[p.MAC]; !ok {
			sn.cacheKeys = append(sn.cacheKeys, p.MAC)
		}
		sn.cache[p.MAC] = p.Addr
	}
	for _, mac := range r.CacheRemove {
		delete(sn.cache, mac)
	}
	if r.IDFloor != 0 {
		sn.floor = r.IDFloor
	}
	for _, h := range r.Health {
		w.obs.health(i, h)
	}
	for _, e := range r.Events {
		if e.Kind == node.EventViolation {
			sn.stats.Violations++
			w.violate("protocol violation", fmt.Sprintf("%s: %v", sn.name, e.Err))
		}
	}
	n.Advance()
	if recompute {
		w.scheduleTick(i)
	}
}

// scheduleTick makes sure node i is ticked at its next deadline.
func (w *World) scheduleTick(i int) {
	sn := w.nodes[i]
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

// Crash stops node i: it loses every link and all state but its peer
// cache and id floor. Its neighbours notice after the detection delay.
func (w *World) Crash(i int) {
	sn := w.nodes[i]
	if sn.n == nil {
		return
	}
	w.record(traceRec{kind: evCrash, node: int32(i)})
	sn.n = nil
	sn.epoch++
	sn.crashedAt = w.now
	sn.tickAt = -1
	for _, c := range w.connsOf(i) {
		w.breakConn(c, fmt.Errorf("%s crashed", sn.name))
	}
	clear(sn.ends)
	w.lossSeq++
	w.probe.fault("crash "+sn.name, "crash")
}

// Restart starts node i again from its persisted peer cache and id
// floor. Static edges come back up if the world relinks.
func (w *World) Restart(i int) {
	sn := w.nodes[i]
	if sn.n != nil {
		return
	}
	w.start(i)
	if w.cfg.Relink {
		for _, e := range w.edgeSeq {
			if e.a == i || e.b == i {
				w.relink(e)
			}
		}
	}
	w.probe.fault("restart "+sn.name, "restart")
}

// Skew sets node i's clock offset from virtual time to d.
func (w *World) Skew(i int, d time.Duration) {
	w.nodes[i].offset = d
	w.record(traceRec{kind: evClock, node: int32(i), aux: uint64(d)})
	if w.nodes[i].n != nil {
		w.nodes[i].tickAt = -1
		w.scheduleTick(i)
	}
}

// Jump moves node i's clock by d (negative: back).
func (w *World) Jump(i int, d time.Duration) {
	w.Skew(i, w.nodes[i].offset+d)
	w.probe.fault(fmt.Sprintf("clock jump %s %v", w.nodes[i].name, d), "jump")
}

// StartHealth makes node i start a health request (0x02); the answers
// are checked as they arrive.
func (w *World) StartHealth(i int) {
	sn := w.nodes[i]
	if sn.n == nil {
		return
	}
	sn.n.Step(w.nodeTime(i), node.StartHealth{})
	for _, id := range sn.n.Ready().HealthStarted {
		w.obs.healthStarted(i, id)
	}
	w.drain(i)
}
