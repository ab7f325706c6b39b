package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// Errors given to nodes as reasons. They are what a real transport
// reports: an end of stream, a reset, a timeout. Nothing tells a node
// that a path went silent.
var (
	ErrPeerClosed  = errors.New("sim: closed by peer (end of stream)")
	ErrReset       = errors.New("sim: connection reset by peer")
	ErrUserTimeout = errors.New("sim: sent data unacknowledged for the user timeout (TCP_USER_TIMEOUT)")
	ErrDialTimeout = errors.New("sim: dial timed out")
	ErrRefused     = errors.New("sim: connection refused")
	ErrWrongPeer   = errors.New("sim: peer certificate names another MAC")
)

// TCP constants of the transport model (Linux's defaults).
const (
	// minRTO is the least retransmission timeout.
	minRTO = 200 * time.Millisecond
	// maxRTO caps the doubling of the retransmission timeout.
	maxRTO = 120 * time.Second
	// synRTO is the first retransmission timeout of a SYN: a dial over
	// a silent path retries at 1 s, 3 s, 7 s... until its timeout.
	synRTO = time.Second
	// mss is the payload of one segment: messages written together up to
	// this size share a segment, and so its fate on a lossy path.
	mss = 1448
)

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

// network is everything between the nodes: the edges that can carry
// links, and the links (conns) over them, modelled as TCP connections:
// latency, bandwidth, in-order delivery, retransmission after loss or a
// silent path, the user timeout, ends of stream and resets, and dials
// with their SYN retries. Nodes learn of a failure only the way a real
// transport would tell them; a silent path tells them nothing.
type network struct {
	w       *World
	rng     *rand.Rand // the network's own randomness: latencies, seed-protocol edges, loss
	edges   map[uint64]*edge
	edgeSeq []*edge   // creation order: deterministic iteration
	adj     [][]*edge // the edges of each node, in creation order
	allPair bool      // organic: every pair may link; edges appear on demand
	part    []int     // partition group of each node; 0 = none
	nextID  node.LinkID
	lossy   int // edges losing segments now
	// lossTail is when the last message a lost segment delayed arrives:
	// until then a message sent on its link may wait behind it, after the
	// loss is over too.
	lossTail int64
	pool     msgPool // the buffers of the messages on the wire
	conns    []*conn // every conn by id-1, which names its directions in the queue
}

func (nw *network) init(w *World) {
	nw.w = w
	nw.edges = map[uint64]*edge{}
	nw.rng = rand.New(rand.NewPCG(w.cfg.Seed, 0x6e6574776f726b)) // "network"
}

// addNode notes a new node: it is in no partition group.
func (nw *network) addNode() {
	nw.part = append(nw.part, 0)
	nw.adj = append(nw.adj, nil)
}

// edge is a pair of nodes that can link: a cable of the topology, or (in
// an organic world) any pair, created on first use.
type edge struct {
	a, b      int
	lat       int64
	bandwidth int64
	wan       bool
	ext       bool // links over it negotiate the invpn extensions
	static    bool // part of the topology
	cut       bool
	oneWay    [2]bool // [0]: a to b silent; [1]: b to a
	loss      float64 // fraction of segments lost, each way
	conns     []*conn
	healWatch int // 1 + the index of the heal whose link-back time the next link over it reports; 0 none
}

// dirOf returns the index into oneWay of the direction from node s.
func (e *edge) dirOf(s int) int {
	if s == e.a {
		return 0
	}
	return 1
}

// conn is one link: a TCP connection over an edge. end[0] dialled;
// dir[k] is the direction from end k to end 1-k.
type conn struct {
	id uint64
	e  *edge
	// lat and bandwidth are the edge's (fixed at its creation), kept
	// here so that a message does not touch the edge.
	lat, bandwidth int64
	end            [2]connEnd
	reset          bool // reset: nothing more is delivered in either direction
	dir            [2]direction
	pathSeq        uint32 // bumped whenever a direction's path closes: acks in flight are void
	watch          int    // 1 + the index of the fault result whose detection this conn reports; 0 none
	dead           bool   // an end failed it by liveness
	closed         bool   // an end's node closed it (for any reason, liveness too)
	// directory: an end took it as a directory link, which carries only
	// a table (docs/protocol.md#link-limit): it is no mesh link.
	directory bool
	// forgotten: neither end holds it; once nothing is on its wires it
	// leaves network.conns.
	forgotten bool
}

// connEnd is one side of a conn.
type connEnd struct {
	node int
	id   node.LinkID
	up   bool // the node holds the link
	// accepting marks the acceptor's end while its handshake waits for
	// the dialer's last flight (clientFinished): its node does not know
	// the link yet.
	accepting bool
	gone      bool // the socket is gone: closed, its process or machine died, or aborted
	rst       bool // a reset is on its way to this end
	epoch     uint32
}

// direction is the state of one direction of a conn.
type direction struct {
	last int64 // arrival time of the last message scheduled: TCP keeps order
	q    *node.SendQueue
	busy bool // a message is being serialized
	// inFlight holds the messages on the wire, in arrival order, from
	// inFlight[head] on. Arrivals of one direction never overtake each
	// other, so only the first of them waits in the world's queue (see
	// network.sendOnWire): the heap stays as small as the number of busy
	// directions instead of the number of messages in flight.
	inFlight []inFlight
	head     int
	open     bool // the path passes packets this way
	// held are messages sent but not delivered, oldest first, each with
	// the time of its first transmission: TCP keeps them for a
	// retransmission once the path passes packets again.
	held []inFlight
	// unacked is the first transmission of the oldest message not yet
	// acknowledged, -1 for none: the clock of the user timeout.
	unacked int64
	ackSeq  uint32 // bumped when unacked is cleared: a pending user timeout is void
	// The segment being filled at segAt: messages written at the same
	// instant share a segment, and so its fate on a lossy path.
	segAt    int64
	segBytes int
}

// inFlight is one message on the wire: it arrives at `at`, in the order
// of its sequence number among events of the same time. A nil msg is the
// end of the stream (a FIN). Held messages keep their first transmission
// time in at.
type inFlight struct {
	at  int64
	seq uint64
	msg []byte
}

// macKey packs a MAC into an event's aux word; macOfKey unpacks it.
func macKey(m wire.MAC) uint64 {
	var v uint64
	for _, b := range m {
		v = v<<8 | uint64(b)
	}
	return v
}

func macOfKey(v uint64) wire.MAC {
	var m wire.MAC
	for k := len(m) - 1; k >= 0; k-- {
		m[k] = byte(v)
		v >>= 8
	}
	return m
}

func pairKey(a, b int) uint64 {
	if a > b {
		a, b = b, a
	}
	return uint64(a)<<32 | uint64(b)
}

// AddEdge adds a static edge between a and b: a cable over which they can
// link. Each becomes a seed (`init`) of the other, and links come up when
// the nodes dial, as their connect policy decides (a running node is
// given the new seeds). wan selects the WAN link class.
func (w *World) AddEdge(a, b int, wan bool) {
	w.net.newEdge(a, b, wan, true, 0)
	for _, p := range [][2]int{{a, b}, {b, a}} {
		sn := w.cluster.nodes[p[0]]
		if slices.Contains(sn.opts.Seeds, p[1]) {
			continue
		}
		sn.opts.Seeds = append(sn.opts.Seeds, p[1])
		if sn.n != nil {
			w.cluster.input(p[0], func() {
				sn.n.Step(w.cluster.nodeTime(p[0]), node.SetSeeds{Seeds: w.cluster.seedsOf(p[0]), Bootstrap: w.cluster.bootstrapOf(p[0])})
				w.cluster.drain(p[0])
			})
		}
	}
}

// AllowAll lets every pair of nodes link (an organic world): edges
// appear when first dialled, with LAN latency.
func (w *World) AllowAll() { w.net.allPair = true }

// newEdge returns the edge between a and b, creating it; lat, when not
// zero, fixes its latency instead of drawing it from its class.
func (nw *network) newEdge(a, b int, wan, static bool, lat time.Duration) *edge {
	w := nw.w
	if e, ok := nw.edges[pairKey(a, b)]; ok {
		e.static = e.static || static
		return e
	}
	class := w.cfg.LAN
	if wan {
		class = w.cfg.WAN
	}
	if lat <= 0 {
		lat = class.Latency.draw(nw.rng)
	}
	e := &edge{a: min(a, b), b: max(a, b), wan: wan, static: static,
		lat: int64(lat), bandwidth: class.Bandwidth,
		ext: w.cfg.SeedProtocol <= 0 || nw.rng.Float64() >= w.cfg.SeedProtocol}
	if e.lat <= 0 {
		e.lat = 1
	}
	nw.edges[pairKey(a, b)] = e
	nw.edgeSeq = append(nw.edgeSeq, e)
	nw.adj[e.a] = append(nw.adj[e.a], e)
	nw.adj[e.b] = append(nw.adj[e.b], e)
	return e
}

// edgeOf returns the edge between a and b, creating it in an organic
// world; nil if they cannot link.
func (nw *network) edgeOf(a, b int) *edge {
	if a == b {
		return nil
	}
	if e, ok := nw.edges[pairKey(a, b)]; ok {
		return e
	}
	if nw.allPair {
		return nw.newEdge(a, b, false, false, 0)
	}
	return nil
}

// passes reports whether packets from node s reach node r over e now.
func (nw *network) passes(e *edge, s, r int) bool {
	cl := &nw.w.cluster
	return !e.cut && !e.oneWay[e.dirOf(s)] && nw.part[s] == nw.part[r] &&
		!cl.nodes[s].halted && !cl.nodes[r].halted
}

// pathOpen reports whether direction k of c passes packets now.
func (nw *network) pathOpen(c *conn, k int) bool {
	return nw.passes(c.e, c.end[k].node, c.end[1-k].node)
}

// bothWays reports whether packets pass between a and b both ways over e:
// what a TCP handshake needs.
func (nw *network) bothWays(e *edge, a, b int) bool { return nw.passes(e, a, b) && nw.passes(e, b, a) }

// rto is the retransmission timeout of c: max(200 ms, srtt + 4 rttvar),
// with srtt the round trip and rttvar a quarter of it, as a TCP
// connection with a steady round trip settles to.
func (nw *network) rto(c *conn) int64 { return max(int64(minRTO), 4*c.lat) }

// working reports whether c carries frames now: both ends hold it, its
// paths pass packets both ways and neither node is paused. A link over
// a silently cut path is held by both ends and carries nothing.
func (nw *network) working(c *conn) bool {
	cl := &nw.w.cluster
	return !c.reset && c.end[0].up && c.end[1].up && !c.end[1].accepting && c.dir[0].open && c.dir[1].open &&
		!cl.nodes[c.end[0].node].stalled && !cl.nodes[c.end[1].node].stalled
}

// carrying reports whether some link over e works: a cut of e would
// break something.
func (nw *network) carrying(e *edge) bool {
	for _, c := range e.conns {
		if nw.working(c) {
			return true
		}
	}
	return false
}

// link brings up a link over e: dialer a, acceptor b. Both are up and
// not paused (a dial completes only then).
func (nw *network) link(e *edge, a, b int) {
	w := nw.w
	cl := &w.cluster
	nw.nextID += 2
	w.totals.LinksCreated++
	if !e.ext {
		w.totals.SeedLinks++
	}
	c := &conn{id: w.totals.LinksCreated, e: e, lat: e.lat, bandwidth: e.bandwidth}
	if dirIndex(c, 1) >= directBit {
		panic("sim: more than 16 Mi links created")
	}
	nw.conns = append(nw.conns, c)
	w.measure.touch()
	na, nb := cl.nodes[a], cl.nodes[b]
	c.end[0] = connEnd{node: a, id: nw.nextID - 1, up: true, epoch: na.epoch}
	c.end[1] = connEnd{node: b, id: nw.nextID, up: true, epoch: nb.epoch}
	for k := range c.dir {
		c.dir[k].unacked = -1
		c.dir[k].open = nw.pathOpen(c, k)
	}
	e.conns = append(e.conns, c)
	na.ends[c.end[0].id] = c
	nb.ends[c.end[1].id] = c
	if e.healWatch > 0 {
		w.measure.linkBack(e.healWatch-1, w.now)
		e.healWatch = 0
	}
	for _, sn := range []*simNode{na, nb} {
		if sn.restartWatch > 0 {
			w.measure.linkBack(sn.restartWatch-1, w.now)
			sn.restartWatch = 0
		}
	}
	w.trace.record(traceRec{kind: evLinkUp, node: int32(a), peer: int32(b), aux: c.id})
	// The dialer's handshake ends as it sends its certificate and
	// Finished; the acceptor's ends when they arrive. They go first on
	// the dialer's direction, so that a cut, a loss or a pause delays
	// them as it would the data behind them (accepted); an acceptor still
	// waiting for them after its handshake timeout gives up.
	c.end[1].accepting = true
	nw.putOnWire(c, 0, clientFinished)
	nw.acceptBy(c, w.now+int64(acceptTimeout))
	na.n.Step(cl.nodeTime(a), node.LinkUp{Link: c.end[0].id, Peer: nb.mac, Addr: nb.addr, Dialed: true, Extended: e.ext})
	cl.drain(a)
}

// acceptBy ends the acceptor's end of c at `at` if its handshake is
// still waiting then; a paused acceptor's timer fires when it resumes.
func (nw *network) acceptBy(c *conn, at int64) {
	nw.w.push(event{at: at, kind: evDial, fn: func() {
		e := &c.end[1]
		switch sn := nw.w.cluster.nodes[e.node]; {
		case !e.accepting || !e.up:
		case sn.stalled:
			nw.acceptBy(c, max(sn.stallUntil, nw.w.now+1))
		default:
			nw.refuseAccept(c)
		}
	}})
}

// acceptTimeout is how long an acceptor waits for a handshake to end,
// the daemon's (tlstransport.DefaultHandshakeTimeout, also QUIC's).
const acceptTimeout = 3 * time.Second

// clientFinished stands for the dialer's last handshake flight (its
// certificate, its proof and its Finished) on the wire: the acceptor's
// end of a link comes up when it arrives. It is told apart by identity,
// not by content.
var clientFinished = []byte{0}

// isClientFinished reports whether msg is clientFinished.
func isClientFinished(msg []byte) bool { return len(msg) == 1 && &msg[0] == &clientFinished[0] }

// accepted brings up the acceptor's end of c: the dialer's last
// handshake flight has arrived. An acceptor whose list revokes the
// dialer refuses its certificate now, after the dialer's end came up
// (TLS 1.3 checks the client's certificate last).
func (nw *network) accepted(c *conn) {
	cl := &nw.w.cluster
	a, b := c.end[0].node, c.end[1].node
	na, nb := cl.nodes[a], cl.nodes[b]
	if nb.refuses(na.mac) {
		nw.refuseAccept(c)
		return
	}
	c.end[1].accepting = false
	// The acceptor sees the dialer's address with an ephemeral port.
	from := netip.AddrPortFrom(na.addr.Addr(), uint16(32768+c.id%28000))
	nb.n.Step(cl.nodeTime(b), node.LinkUp{Link: c.end[1].id, Peer: na.mac, Addr: from, Dialed: false, Extended: c.e.ext})
	cl.drain(b)
}

// refuseAccept ends the acceptor's end of c before its node knew of it:
// its handshake failed (a refused certificate) or timed out. Its socket
// closes, and the dialer's node sees its link end before the peer sent
// anything.
func (nw *network) refuseAccept(c *conn) {
	e := &c.end[1]
	e.accepting = false
	delete(nw.w.cluster.nodes[e.node].ends, e.id)
	nw.closeEnd(c, 1)
}

// serverFlight is how long after the dialer's first packet reaches the
// acceptor over e the acceptor's handshake flight (its certificate and
// Finished) reaches the dialer: over TCP the SYN-ACK's way back, the
// ClientHello's way there and the flight's way back, three one-way
// latencies; over QUIC (Config.Datagrams) one, since the Initial packet
// carries the ClientHello. The dialer's end is up then, the acceptor's
// one latency later.
func (nw *network) serverFlight(e *edge) int64 {
	if nw.w.cfg.Datagrams && e.ext {
		return e.lat
	}
	return 3 * e.lat
}

// transmit sends msg from end `from` of c: at once onto the wire of an
// unlimited link, else through the direction's serializer and queue.
func (nw *network) transmit(c *conn, from int, msg []byte, control bool) {
	w := nw.w
	if c.reset || c.end[from].gone {
		w.totals.Lost++
		return
	}
	d := &c.dir[from]
	if c.bandwidth <= 0 {
		nw.putOnWire(c, from, msg)
		return
	}
	if !d.busy {
		d.busy = true
		w.push(event{at: w.now + nw.txTime(c, msg), kind: evTxDone, c: c, from: int8(from), msg: msg})
		return
	}
	if d.q == nil {
		d.q = &node.SendQueue{DataLimit: w.cfg.QueueLimit}
	}
	if !d.q.Push(node.Send{Msg: msg, Control: control}) {
		w.cluster.nodes[c.end[from].node].stats.QueueDrops++
	}
}

// txTime is how long msg takes to serialize onto c.
func (nw *network) txTime(c *conn, msg []byte) int64 {
	return max(1, int64(len(msg)+2)*int64(time.Second)/c.bandwidth)
}

// txDone puts a serialized message on the wire and starts the next.
func (nw *network) txDone(c *conn, from int, msg []byte) {
	w := nw.w
	d := &c.dir[from]
	if c.reset || c.end[from].gone {
		d.busy = false
		d.q = nil
		w.totals.Lost++
		return
	}
	nw.putOnWire(c, from, msg)
	if d.q != nil {
		if next, ok := d.q.Pop(); ok {
			w.push(event{at: w.now + nw.txTime(c, next), kind: evTxDone, c: c, from: int8(from), msg: next})
			return
		}
	}
	d.busy = false
}

// putOnWire hands msg (nil: the end of the stream) to TCP in direction
// k of c. Over a path that passes packets it arrives one latency later,
// after everything sent before it, and later still when its segment is
// lost (retransmission, head-of-line blocking). Over a silent path, or
// when no acknowledgement has come back for a retransmission timeout,
// TCP keeps it for a retransmission: nothing arrives, and nobody is told.
func (nw *network) putOnWire(c *conn, k int, msg []byte) {
	w := nw.w
	if w.cfg.Datagrams && c.e.ext && msg != nil && isFrameMessage(msg) {
		nw.putDatagram(c, k, msg)
		return
	}
	d := &c.dir[k]
	acksBlocked := !c.dir[1-k].open
	if !d.open || len(d.held) > 0 || acksBlocked && d.unacked >= 0 && w.now-d.unacked >= nw.rto(c) {
		d.held = append(d.held, inFlight{at: w.now, msg: msg})
		nw.markUnacked(c, k, w.now)
		return
	}
	if acksBlocked {
		nw.markUnacked(c, k, w.now) // it arrives, but its acknowledgement will not come back
	}
	at := w.now + c.lat
	if nw.lossy > 0 && c.e.loss > 0 {
		if delay := nw.lossDelay(c, k, len(msg)); delay > 0 {
			at += delay
			nw.lossTail = max(nw.lossTail, at)
		}
	}
	at = max(at, d.last)
	d.last = at
	nw.sendOnWire(c, k, at, msg)
}

// lossDelay draws the fate of a message of size bytes written in
// direction k of a lossy link: 0 when it joins the segment written at
// this instant (which it follows, through d.last) or its new segment
// gets through; else the retransmission delay of its segment, one RTO
// per loss in a row. The step does not double: while acknowledgements
// flow (a link carries at least its heartbeats), Linux finds each lost
// transmission, and a lost retransmission again, by RACK or a tail loss
// probe in about two round trips, with no backoff; only a path that
// passes nothing backs off (held messages, retransmit). Doubling it made
// three losses in a row a 1.4 s stall: at 10 % loss on a 50 ms link the
// simulated nodes failed the link in 63 % of runs of a minute, where real
// daemons through linkemu failed it in none of 3 (TestE2EDiamondLossy,
// longest ping 0.65-0.75 s).
func (nw *network) lossDelay(c *conn, k, size int) int64 {
	d := &c.dir[k]
	size += 2
	if d.segAt == nw.w.now && d.segBytes+size <= mss {
		d.segBytes += size
		return 0
	}
	d.segAt, d.segBytes = nw.w.now, size
	var delay int64
	step := nw.rto(c)
	for nw.rng.Float64() < c.e.loss && delay < int64(nw.w.cfg.UserTimeout) {
		delay += step
	}
	if delay > 0 {
		nw.w.totals.Retransmits++
	}
	return delay
}

// sendOnWire schedules msg to arrive at the far end of direction `from`
// of c at `at`, which is no earlier than any arrival already scheduled on
// it. The event is ordered exactly as if it were queued on its own.
func (nw *network) sendOnWire(c *conn, from int, at int64, msg []byte) {
	w := nw.w
	w.seq++
	d := &c.dir[from]
	if d.head == len(d.inFlight) {
		d.inFlight, d.head = d.inFlight[:0], 0
		nw.queueArrival(c, from, at, w.seq)
	} else if d.head >= 64 && 2*d.head >= len(d.inFlight) {
		n := copy(d.inFlight, d.inFlight[d.head:])
		clear(d.inFlight[n:])
		d.inFlight, d.head = d.inFlight[:n], 0
	}
	d.inFlight = append(d.inFlight, inFlight{at: at, seq: w.seq, msg: msg})
}

// maxKeptFlights is the largest array of messages on the wire a drained
// direction keeps.
const maxKeptFlights = 16

// keepFlights returns what a drained direction keeps of fl, whose
// entries are cleared: fl emptied, or nil when it is large.
func keepFlights(fl []inFlight) []inFlight {
	if cap(fl) > maxKeptFlights {
		return nil
	}
	return fl[:0]
}

// arrive takes the first message on the wire of direction `from` of c
// and queues the arrival of the next one.
func (nw *network) arrive(c *conn, from int) []byte {
	d := &c.dir[from]
	msg := d.inFlight[d.head].msg
	d.inFlight[d.head] = inFlight{}
	d.head++
	if d.head < len(d.inFlight) {
		next := &d.inFlight[d.head]
		nw.queueArrival(c, from, next.at, next.seq)
	} else {
		// Drained, every entry cleared as it arrived. A flood comes in
		// bursts: the direction keeps a small array, not the largest
		// one a burst needed.
		d.inFlight, d.head = keepFlights(d.inFlight), 0
		if c.forgotten {
			nw.unlist(c)
		}
	}
	return msg
}

// dirIndex is the index of direction `from` of c among every conn's
// directions, which names it in the world's queue: conns[dirIndex>>1].
func dirIndex(c *conn, from int) int { return int(c.id-1)<<1 | from }

// queueArrival queues the arrival at `at` of the first message on the
// wire of direction `from` of c, which was given sequence number seq.
func (nw *network) queueArrival(c *conn, from int, at int64, seq uint64) {
	nw.w.queue.pushDirect(at, seq, dirIndex(c, from))
}

// deliverDirect handles the arrival of the message with sequence number
// seq on direction dir (see dirIndex), unless it is no longer the first
// on the wire: the messages were taken back since (a cut).
func (nw *network) deliverDirect(dir int, seq uint64) {
	c, from := nw.conns[dir>>1], dir&1
	if c == nil {
		return // forgotten, its wires empty: the key is stale
	}
	d := &c.dir[from]
	if d.head >= len(d.inFlight) || d.inFlight[d.head].seq != seq {
		return
	}
	nw.deliver(c, from, nw.arrive(c, from))
}

// deliver hands msg, sent from end `from` of c, to the other end's
// kernel: to the node, or to its backlog while the node is paused. A
// socket that is gone answers data with a reset.
func (nw *network) deliver(c *conn, from int, msg []byte) {
	w := nw.w
	to := 1 - from
	e := &c.end[to]
	if c.reset {
		w.totals.Lost++
		return
	}
	if e.gone {
		if msg != nil {
			nw.resetBack(c, from)
		}
		w.totals.Lost++
		return
	}
	sn := w.cluster.nodes[e.node]
	if !e.up || sn.n == nil || sn.epoch != e.epoch {
		w.totals.Lost++
		return
	}
	if sn.stalled {
		sn.backlog = append(sn.backlog, func() { nw.deliverNow(c, from, msg) })
		return
	}
	nw.deliverNow(c, from, msg)
}

// deliverNow gives msg to the node at the far end of direction `from`.
func (nw *network) deliverNow(c *conn, from int, msg []byte) {
	w := nw.w
	cl := &w.cluster
	to := 1 - from
	e := &c.end[to]
	sn := cl.nodes[e.node]
	if c.reset || !e.up || sn.n == nil || sn.epoch != e.epoch {
		w.totals.Lost++
		return
	}
	if msg == nil {
		nw.endDown(c, to, ErrPeerClosed)
		return
	}
	if e.accepting {
		if isClientFinished(msg) {
			nw.accepted(c)
		} else {
			// A datagram that overtook the handshake's last flight (a
			// stream's messages follow it): no key to read it yet.
			nw.loseDatagram()
		}
		return
	}
	sender := c.end[from].node
	w.totals.Messages++
	w.trace.record(traceRec{kind: evDeliver, node: int32(e.node), peer: int32(sender), msg: msg})
	w.check.arrived(sender, e.node, msg)
	// Clipped: the pool's count of the links holding it follows it.
	sn.n.Receive(cl.nodeTime(e.node), e.id, msg[:len(msg):len(msg)])
	cl.drainMessage(e.node)
	nw.pool.release(msg) // the node has let it go at Advance
}

// resetBack sends a reset to end k of c, whose data reached a socket
// that is gone: it arrives one latency later if the path back passes it.
func (nw *network) resetBack(c *conn, k int) {
	e := &c.end[k]
	if e.rst || e.gone || !e.up || !c.dir[1-k].open {
		return
	}
	e.rst = true
	nw.w.push(event{at: nw.w.now + c.lat, kind: evLinkDown, c: c, from: int8(k), err: ErrReset})
}

// linkDown tells end k of c that its link is gone (an event: an end of
// stream, a reset, a timeout), through the backlog while the node is
// paused.
func (nw *network) linkDown(c *conn, k int, reason error) {
	e := &c.end[k]
	if !e.up {
		return
	}
	sn := nw.w.cluster.nodes[e.node]
	if sn.stalled && sn.n != nil && sn.epoch == e.epoch {
		sn.backlog = append(sn.backlog, func() { nw.endDown(c, k, reason) })
		return
	}
	nw.endDown(c, k, reason)
}

// endDown tells the node at end k of c that its link is gone; its driver
// closes the socket.
func (nw *network) endDown(c *conn, k int, reason error) {
	w := nw.w
	e := &c.end[k]
	if !e.up {
		return
	}
	e.up, e.gone = false, true
	nw.detected(c)
	nw.forget(c)
	if !c.directory { // no frame crosses a directory link: none is lost with it
		w.check.lost()
	}
	w.measure.touch()
	sn := w.cluster.nodes[e.node]
	if sn.n == nil || sn.epoch != e.epoch {
		return
	}
	delete(sn.ends, e.id)
	w.trace.record(traceRec{kind: evLinkDown, node: int32(e.node), peer: int32(c.end[1-k].node), aux: c.id})
	if errors.Is(reason, ErrUserTimeout) {
		sn.stats.UserTimeouts++
	}
	sn.n.Step(w.cluster.nodeTime(e.node), node.LinkDown{Link: e.id, Reason: reason})
	w.cluster.drain(e.node)
}

// detected notes, for the fault that silenced or broke c, that an end
// has dropped it.
func (nw *network) detected(c *conn) {
	if c.watch > 0 {
		nw.w.measure.detected(c.watch-1, nw.w.now)
	}
}

// forget drops c from its edge once neither end holds it.
func (nw *network) forget(c *conn) {
	if c.end[0].up || c.end[1].up {
		return
	}
	if i := slices.Index(c.e.conns, c); i >= 0 {
		c.e.conns = slices.Delete(c.e.conns, i, i+1)
	}
	c.forgotten = true
	nw.unlist(c)
}

// unlist takes a forgotten conn out of the table that names directions
// in the queue once no arrival on it is pending, so that the collector
// can have it; arrival keys still queued for it are stale.
func (nw *network) unlist(c *conn) {
	for k := range c.dir {
		if d := &c.dir[k]; d.head < len(d.inFlight) {
			return
		}
	}
	nw.conns[c.id-1] = nil
}

// endOf returns which end of c node i holds under link id.
func endOf(c *conn, i int, id node.LinkID) int {
	if c.end[1].node == i && c.end[1].id == id {
		return 1
	}
	return 0
}

// closeByNode carries out a Close: node i has forgotten the link; its
// driver closes the socket, whose FIN follows what was sent before it.
func (nw *network) closeByNode(i int, cl node.Close) {
	w := nw.w
	sn := w.cluster.nodes[i]
	c := sn.ends[cl.Link]
	if c == nil {
		return
	}
	sn.stats.Closes++
	switch {
	case errors.Is(cl.Reason, node.ErrLinkDead):
		sn.stats.LivenessFailures++
		if !c.dead {
			c.dead = true
			w.totals.LivenessLinks++
		}
	case errors.Is(cl.Reason, node.ErrLinkSilent):
		sn.stats.SilentCloses++
	}
	delete(sn.ends, cl.Link)
	c.closed = true
	k := endOf(c, i, cl.Link)
	nw.detected(c)
	nw.closeEnd(c, k)
	w.trace.record(traceRec{kind: evClose, node: int32(i), peer: int32(c.end[1-k].node), aux: c.id})
}

// closeEnd closes end k's socket: its unsent data is dropped and a FIN
// goes after what is on the wire (the kernel keeps retransmitting it).
func (nw *network) closeEnd(c *conn, k int) {
	e := &c.end[k]
	e.up, e.gone = false, true
	if !c.directory { // no frame crosses a directory link: the mesh is unchanged
		nw.w.check.lost()
		nw.w.measure.touch()
	}
	c.dir[k].q = nil
	if !c.reset && c.end[1-k].up {
		nw.putOnWire(c, k, nil)
	}
	nw.forget(c)
}

// vanish takes end k's socket away without a word: its machine is gone.
func (nw *network) vanish(c *conn, k int) {
	nw.w.measure.touch()
	c.end[k].up, c.end[k].gone = false, true
	c.dir[k].q = nil
	nw.forget(c)
}

// refresh brings c up to date with its paths: a direction whose path
// stopped passing packets takes its messages on the wire back (TCP will
// retransmit them, and their acknowledgements are lost too); once both
// paths pass packets again, what TCP kept goes out at the next
// retransmission.
func (nw *network) refresh(c *conn) {
	changed := false
	for k := range c.dir {
		d := &c.dir[k]
		open := nw.pathOpen(c, k)
		if open == d.open {
			continue
		}
		d.open, changed = open, true
		nw.w.measure.touch()
		if open {
			continue
		}
		c.pathSeq++
		nw.takeBack(c, k)
		if r := &c.dir[1-k]; r.head < len(r.inFlight) {
			nw.markUnacked(c, 1-k, min(nw.w.now, r.inFlight[r.head].at-c.lat))
		}
	}
	if !changed || !c.dir[0].open || !c.dir[1].open {
		return
	}
	for k := range c.dir {
		if c.dir[k].unacked >= 0 {
			nw.retransmit(c, k)
		}
	}
}

// takeBack moves the messages on the wire of direction k of c to its
// held messages: the silent path lost them, and TCP will send them again
// (unless the sender's machine is gone with them).
func (nw *network) takeBack(c *conn, k int) {
	w := nw.w
	d := &c.dir[k]
	if fl := d.inFlight[d.head:]; len(fl) > 0 {
		moved := make([]inFlight, 0, len(fl)+len(d.held))
		for _, f := range fl {
			moved = append(moved, inFlight{at: min(w.now, f.at-c.lat), msg: f.msg})
		}
		d.held = append(moved, d.held...)
	}
	clear(d.inFlight)
	d.inFlight, d.head = keepFlights(d.inFlight), 0
	d.last = w.now
	if w.cluster.nodes[c.end[k].node].halted {
		w.totals.Lost += uint64(len(d.held))
		d.held = nil
		d.unacked = -1
		d.ackSeq++
		return
	}
	if len(d.held) > 0 {
		nw.markUnacked(c, k, d.held[0].at)
	}
}

// markUnacked notes that direction k of c has data unacknowledged since
// t, and starts the user timeout.
func (nw *network) markUnacked(c *conn, k int, t int64) {
	w := nw.w
	d := &c.dir[k]
	if d.unacked >= 0 && d.unacked <= t {
		return
	}
	if d.unacked >= 0 {
		d.ackSeq++ // an earlier start: the pending timeout is too late
	}
	d.unacked = t
	w.push(event{at: max(w.now, t+int64(w.cfg.UserTimeout)), kind: evUserTimeout, c: c, from: int8(k), aux: uint64(d.ackSeq)})
}

// retransmit sends what direction k of c kept at the retransmission that
// is due next (the oldest unacknowledged segment's timer, doubling from
// its first transmission), and schedules the acknowledgement. Past the
// user timeout there is no retransmission: the connection is aborted.
func (nw *network) retransmit(c *conn, k int) {
	w := nw.w
	d := &c.dir[k]
	lat, step := c.lat, nw.rto(c)
	at := d.unacked + step
	for at < w.now {
		step = min(2*step, int64(maxRTO))
		at += step
	}
	if at-d.unacked > int64(w.cfg.UserTimeout) {
		return
	}
	for _, h := range d.held {
		arr := max(at+lat, d.last)
		d.last = arr
		nw.sendOnWire(c, k, arr, h.msg)
	}
	if len(d.held) > 0 {
		w.totals.Retransmits++
	}
	clear(d.held)
	d.held = d.held[:0]
	w.push(event{at: at + 2*lat, kind: evAck, c: c, from: int8(k), aux: uint64(c.pathSeq)})
}

// acked clears direction k's unacknowledged data, unless a path closed
// since the acknowledgement was sent.
func (nw *network) acked(c *conn, k int, pathSeq uint64) {
	d := &c.dir[k]
	if uint64(c.pathSeq) != pathSeq || d.unacked < 0 || len(d.held) > 0 {
		return
	}
	d.unacked = -1
	d.ackSeq++
}

// userTimeout aborts end k of c when its data has stayed unacknowledged
// for the user timeout (TCP_USER_TIMEOUT): the node is told, and the
// reset reaches the other end if the path passes it.
func (nw *network) userTimeout(c *conn, k int, seq uint64) {
	w := nw.w
	d := &c.dir[k]
	if uint64(d.ackSeq) != seq || d.unacked < 0 {
		return
	}
	d.unacked = -1
	d.ackSeq++
	w.totals.Lost += uint64(len(d.held))
	d.held = nil
	w.trace.record(traceRec{kind: evUserTimeout, node: int32(c.end[k].node), peer: int32(c.end[1-k].node), aux: c.id})
	if !c.end[k].gone {
		c.end[k].gone = true
		nw.linkDown(c, k, ErrUserTimeout)
	}
	if o := &c.end[1-k]; d.open && o.up && !o.gone && !o.rst && !c.reset {
		o.rst = true
		w.push(event{at: w.now + c.lat, kind: evLinkDown, c: c, from: int8(1 - k), err: ErrReset})
	}
}

// resetConn resets c: nothing more is delivered, and each end that holds
// it learns one latency later.
func (nw *network) resetConn(c *conn) {
	w := nw.w
	if c.reset {
		return
	}
	c.reset = true
	w.check.lost()
	w.measure.touch()
	for k := range c.end {
		if c.end[k].up && !c.end[k].rst {
			c.end[k].rst = true
			w.push(event{at: w.now + c.lat, kind: evLinkDown, c: c, from: int8(k), err: ErrReset})
		}
	}
}

// pendingDial is a dial in progress: node i to node t at addr.
type pendingDial struct {
	i, t  int
	mac   wire.MAC // the MAC dialled
	epoch uint32   // the dialer's
	start int64
	syn   int // SYNs sent
}

// dial carries out a Dial of node i. An address no edge leads to (a host
// behind a firewall, an unrouted network) never answers: the dial times
// out.
func (nw *network) dial(i int, p node.Peer) {
	w := nw.w
	cl := &w.cluster
	sn := cl.nodes[i]
	t, ok := cl.byAddr[p.Addr]
	var e *edge
	if ok {
		e = nw.edgeOf(i, t)
	}
	if e == nil {
		w.push(event{at: w.now + int64(w.cfg.DialTimeout), kind: evDialFail, node: int32(i), epoch: sn.epoch,
			aux: macKey(p.MAC), err: fmt.Errorf("%w: %v", ErrDialTimeout, p.Addr)})
		return
	}
	nw.synSent(&pendingDial{i: i, t: t, mac: p.MAC, epoch: sn.epoch, start: w.now})
}

// synSent sends d's next SYN now; it reaches the target one latency
// later.
func (nw *network) synSent(d *pendingDial) {
	d.syn++
	w := nw.w
	w.push(event{at: w.now + nw.edgeOf(d.i, d.t).lat, kind: evDial, fn: func() { nw.synArrived(d) }})
}

// synArrived answers d's SYN if packets pass both ways, else retries it
// after 1 s, 2 s, 4 s... until the dial timeout.
func (nw *network) synArrived(d *pendingDial) {
	w := nw.w
	cl := &w.cluster
	if cl.nodes[d.i].n == nil || cl.nodes[d.i].epoch != d.epoch {
		return
	}
	e := nw.edgeOf(d.i, d.t)
	if !nw.bothWays(e, d.i, d.t) {
		nw.retry(d)
		return
	}
	tn := cl.nodes[d.t]
	switch {
	case tn.n == nil || tn.opts.NoIncoming:
		// The machine is up but nothing listens: a reset.
		w.push(event{at: w.now + e.lat, kind: evDialFail, node: int32(d.i), epoch: d.epoch, aux: macKey(d.mac),
			err: fmt.Errorf("%w: %v", ErrRefused, tn.addr)})
		return
	case tn.mac != d.mac:
		// Someone else answers there: the certificate check fails.
		w.push(event{at: w.now + nw.serverFlight(e), kind: evDialFail, node: int32(d.i), epoch: d.epoch, aux: macKey(d.mac),
			err: fmt.Errorf("%w: %v is %s, not %s", ErrWrongPeer, tn.addr, tn.mac, d.mac)})
		return
	}
	// The dialer's handshake ends when the acceptor's flight is back.
	t := d.t
	tEpoch := tn.epoch
	w.push(event{at: w.now + nw.serverFlight(e), kind: evDial, fn: func() { nw.handshakeDone(d, t, tEpoch) }})
}

// retry schedules d's next SYN, or its failure at the dial timeout.
func (nw *network) retry(d *pendingDial) {
	w := nw.w
	next := d.start + int64(synRTO)*(1<<d.syn-1)
	deadline := d.start + int64(w.cfg.DialTimeout)
	if next >= deadline {
		nw.dialTimedOut(d)
		return
	}
	w.push(event{at: max(next, w.now), kind: evDial, fn: func() { nw.synSent(d) }})
}

// dialTimedOut fails d at its deadline.
func (nw *network) dialTimedOut(d *pendingDial) {
	w := nw.w
	w.push(event{at: max(w.now, d.start+int64(w.cfg.DialTimeout)), kind: evDialFail, node: int32(d.i), epoch: d.epoch,
		aux: macKey(d.mac), err: fmt.Errorf("%w: %v", ErrDialTimeout, w.cluster.nodes[d.t].addr)})
}

// handshakeDone completes d if both nodes are still up and the path still
// passes packets both ways; a paused node finishes its half of the TLS
// handshake when it resumes.
func (nw *network) handshakeDone(d *pendingDial, t int, tEpoch uint32) {
	w := nw.w
	cl := &w.cluster
	sn, tn := cl.nodes[d.i], cl.nodes[t]
	if sn.n == nil || sn.epoch != d.epoch {
		return
	}
	e := nw.edgeOf(d.i, t)
	switch {
	case tn.n == nil || tn.epoch != tEpoch:
		w.push(event{at: w.now + e.lat, kind: evDialFail, node: int32(d.i), epoch: d.epoch, aux: macKey(d.mac),
			err: fmt.Errorf("%w: %v went away during the handshake", ErrReset, tn.addr)})
	case !nw.bothWays(e, d.i, t):
		nw.retry(d)
	case sn.stalled || tn.stalled:
		resume := max(sn.stallUntil, tn.stallUntil) + e.lat
		if resume > d.start+int64(w.cfg.DialTimeout) {
			nw.dialTimedOut(d)
			return
		}
		w.push(event{at: resume, kind: evDial, fn: func() { nw.handshakeDone(d, t, tEpoch) }})
	case sn.refuses(tn.mac):
		// The dialer refuses the acceptor's certificate as it arrives
		// (the acceptor's refusal of the dialer's comes later: accepted).
		w.push(event{at: w.now, kind: evDialFail, node: int32(d.i), epoch: d.epoch, aux: macKey(d.mac),
			err: fmt.Errorf("%w: %v", errRevoked, tn.addr)})
	default:
		nw.link(e, d.i, t)
	}
}

// dialFailed tells a node that its dial failed, unless it crashed since.
func (nw *network) dialFailed(ev *event) {
	w := nw.w
	cl := &w.cluster
	i := int(ev.node)
	sn := cl.nodes[i]
	if sn.n == nil || sn.epoch != ev.epoch {
		return
	}
	peer, err, epoch := macOfKey(ev.aux), ev.err, ev.epoch
	t := int32(-1)
	if j, ok := cl.byMAC[peer]; ok {
		t = int32(j)
	}
	cl.input(i, func() {
		if sn.n == nil || sn.epoch != epoch {
			return
		}
		sn.stats.DialFailures++
		w.trace.record(traceRec{kind: evDialFail, node: int32(i), peer: t})
		sn.n.Step(cl.nodeTime(i), node.DialFailed{Peer: peer, Err: err})
		cl.drain(i)
	})
}

// connsOf returns node i's conns in link-id order.
func (nw *network) connsOf(i int) []*conn {
	sn := nw.w.cluster.nodes[i]
	ids := make([]node.LinkID, 0, len(sn.ends))
	for id := range sn.ends {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*conn, len(ids))
	for k, id := range ids {
		out[k] = sn.ends[id]
	}
	return out
}

// refreshNode refreshes every conn over the edges of node i.
func (nw *network) refreshNode(i int) {
	for _, e := range nw.adj[i] {
		for _, c := range slices.Clone(e.conns) {
			nw.refresh(c)
		}
	}
}

// refreshEdge refreshes every conn over e.
func (nw *network) refreshEdge(e *edge) {
	for _, c := range slices.Clone(e.conns) {
		nw.refresh(c)
	}
}

// edgeFor returns the edge between a and b for a fault, creating it in an
// organic world.
func (nw *network) edgeFor(a, b int) (*edge, error) {
	if e, ok := nw.edges[pairKey(a, b)]; ok {
		return e, nil
	}
	if nw.allPair && a != b {
		return nw.newEdge(a, b, false, false, 0), nil
	}
	return nil, fmt.Errorf("sim: %s-%s: no such edge", nw.w.Name(a), nw.w.Name(b))
}

// watch makes every conn over e report its detection to fault result r.
func (nw *network) watch(e *edge, r int) {
	if r < 0 {
		return
	}
	for _, c := range e.conns {
		c.watch = r + 1
		nw.w.measure.touches(r, c)
	}
}

// watchNode makes every conn of node i report its detection to fault
// result r.
func (nw *network) watchNode(i int, r int) {
	if r < 0 {
		return
	}
	for _, c := range nw.w.cluster.nodes[i].ends {
		c.watch = r + 1
		nw.w.measure.touches(r, c)
	}
}

// partition puts the nodes of each group in a group of their own (the
// rest in group 0): packets between groups are dropped, silently. The
// conns across report their detection to fault result r.
func (nw *network) partition(groups [][]int, r int) {
	for i := range nw.part {
		nw.part[i] = 0
	}
	for g, members := range groups {
		for _, i := range members {
			nw.part[i] = g + 1
		}
	}
	for _, e := range nw.edgeSeq {
		if nw.part[e.a] != nw.part[e.b] {
			nw.watch(e, r)
		}
	}
	nw.refreshAll()
}

// healPartition puts every node back in one group.
func (nw *network) healPartition() {
	for i := range nw.part {
		nw.part[i] = 0
	}
	nw.refreshAll()
}

// refreshAll refreshes every conn.
func (nw *network) refreshAll() {
	for _, e := range nw.edgeSeq {
		nw.refreshEdge(e)
	}
}

// Edges returns the static edges, in creation order, as index pairs.
func (w *World) Edges() [][2]int {
	var out [][2]int
	for _, e := range w.net.edgeSeq {
		if e.static {
			out = append(out, [2]int{e.a, e.b})
		}
	}
	return out
}

// EdgeState is what a fault schedule may know about an edge.
type EdgeState struct {
	A, B int // A < B
	WAN  bool
	// Static edges are part of the topology; the others appeared in an
	// organic world when first dialled.
	Static bool
	Cut    bool
	// Carrying is true while some link over the edge works: cutting the
	// edge breaks something.
	Carrying bool
}

func (nw *network) state(e *edge) EdgeState {
	return EdgeState{A: e.a, B: e.b, WAN: e.wan, Static: e.static, Cut: e.cut, Carrying: nw.carrying(e)}
}

// EdgeStates returns every edge, in creation order: the static ones and,
// in an organic world, those dialled so far.
func (w *World) EdgeStates() []EdgeState {
	out := make([]EdgeState, len(w.net.edgeSeq))
	for k, e := range w.net.edgeSeq {
		out[k] = w.net.state(e)
	}
	return out
}

// EdgeState returns the state of the edge between a and b, if there is
// one.
func (w *World) EdgeState(a, b int) (EdgeState, bool) {
	e, ok := w.net.edges[pairKey(a, b)]
	if !ok {
		return EdgeState{}, false
	}
	return w.net.state(e), true
}

// EdgeLatency returns the one-way latency of the edge between a and b.
func (w *World) EdgeLatency(a, b int) (time.Duration, bool) {
	e, ok := w.net.edges[pairKey(a, b)]
	if !ok {
		return 0, false
	}
	return time.Duration(e.lat), true
}

// IsWAN reports whether the edge between a and b is a WAN edge.
func (w *World) IsWAN(a, b int) bool {
	e, ok := w.net.edges[pairKey(a, b)]
	return ok && e.wan
}

// peerOf returns the node at the other end of node i's link id, if the
// link works (see network.working).
func (nw *network) peerOf(i int, id node.LinkID) (int, bool) {
	c := nw.w.cluster.nodes[i].ends[id]
	if c == nil || !nw.working(c) {
		return 0, false
	}
	if c.end[0].node == i {
		return c.end[1].node, true
	}
	return c.end[0].node, true
}

// NextHop returns the node that node a's route to node b leads to over a
// link a still holds (working or not: a silent link is still held).
func (w *World) NextHop(a, b int) (int, bool) {
	sn := w.cluster.nodes[a]
	if sn.n == nil {
		return 0, false
	}
	ri, ok := sn.n.Route(w.cluster.nodes[b].mac)
	if !ok {
		return 0, false
	}
	c := sn.ends[ri.Via]
	if c == nil {
		return 0, false
	}
	if c.end[0].node == a {
		return c.end[1].node, true
	}
	return c.end[0].node, true
}

// LiveLinks returns, for each node, the peers of its working mesh links
// (directory links left out: they carry no routes).
func (w *World) LiveLinks() [][]int {
	out := make([][]int, w.N())
	for _, e := range w.net.edgeSeq {
		if w.net.carryingMesh(e) {
			out[e.a] = append(out[e.a], e.b)
			out[e.b] = append(out[e.b], e.a)
		}
	}
	return out
}

// carryingMesh reports whether a working mesh link (not a directory
// link) runs over e.
func (nw *network) carryingMesh(e *edge) bool {
	for _, c := range e.conns {
		if !c.directory && nw.working(c) {
			return true
		}
	}
	return false
}

// usable returns, for each node, the peers of its static edges whose
// paths pass packets both ways: the links that should be up.
func (nw *network) usable() [][]int {
	adj := make([][]int, nw.w.N())
	for _, e := range nw.edgeSeq {
		if e.static && nw.bothWays(e, e.a, e.b) {
			adj[e.a] = append(adj[e.a], e.b)
			adj[e.b] = append(adj[e.b], e.a)
		}
	}
	return adj
}
