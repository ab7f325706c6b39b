package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/invpn/invpn/node"
)

// Errors given to nodes as reasons.
var (
	ErrCut         = errors.New("sim: link cut")
	ErrPeerClosed  = errors.New("sim: closed by peer")
	ErrDialTimeout = errors.New("sim: dial timed out")
	ErrRefused     = errors.New("sim: connection refused")
	ErrWrongPeer   = errors.New("sim: peer certificate names another MAC")
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
// links, the links (conns) over them with their latency, bandwidth and
// in-order delivery, dials, cuts and partitions, and the failure
// detector that tells a node its link is gone.
type network struct {
	w       *World
	edges   map[uint64]*edge
	edgeSeq []*edge // creation order: deterministic iteration
	allPair bool    // organic: every pair may link; edges appear on demand
	part    []int   // partition group of each node; 0 = none
	nextID  node.LinkID
}

func (nw *network) init(w *World) {
	nw.w = w
	nw.edges = map[uint64]*edge{}
}

// addNode notes a new node: it is in no partition group.
func (nw *network) addNode() { nw.part = append(nw.part, 0) }

// edge is a pair of nodes that can link: a cable of the topology, or (in
// an organic world) any pair, created on first use.
type edge struct {
	a, b      int
	lat       int64
	bandwidth int64
	wan       bool
	ext       bool // links over it negotiate the invpn extensions
	static    bool // part of the topology: kept up when the world relinks
	cut       bool
	relinking bool
	conns     []*conn
}

// carrying reports whether some link over e still has its transport: a
// cut of e would break something.
func (e *edge) carrying() bool {
	for _, c := range e.conns {
		if !c.broken {
			return true
		}
	}
	return false
}

// live reports whether e has a link that is up at both ends.
func (e *edge) live() bool {
	for _, c := range e.conns {
		if c.live() {
			return true
		}
	}
	return false
}

// conn is one link: a connection over an edge. end[0] dialled.
type conn struct {
	id     uint64
	e      *edge
	end    [2]connEnd
	broken bool // the transport is gone: nothing more is delivered
	dir    [2]direction
}

// live reports whether c still has its transport and both ends know it.
func (c *conn) live() bool { return !c.broken && c.end[0].up && c.end[1].up }

// connEnd is one side of a conn.
type connEnd struct {
	node  int
	id    node.LinkID
	up    bool // the node knows the link
	epoch uint32
}

// direction is the state of one direction of a conn.
type direction struct {
	last int64 // arrival time of the last message: TCP keeps order
	q    *node.SendQueue
	busy bool // a message is being serialized
	// inFlight holds the messages on the wire, in arrival order, from
	// inFlight[head] on. Arrivals of one direction never overtake each
	// other, so only the first of them waits in the world's queue (see
	// network.sendOnWire): the heap stays as small as the number of busy
	// directions instead of the number of messages in flight.
	inFlight []inFlight
	head     int
}

// inFlight is one message on the wire: it arrives at `at`, in the order
// of its sequence number among events of the same time.
type inFlight struct {
	at  int64
	seq uint64
	msg []byte
}

func pairKey(a, b int) uint64 {
	if a > b {
		a, b = b, a
	}
	return uint64(a)<<32 | uint64(b)
}

// AddEdge adds a static edge between a and b and brings a link up over
// it at once (a dials). wan selects the WAN link class.
func (w *World) AddEdge(a, b int, wan bool) {
	e := w.net.newEdge(a, b, wan, true)
	if w.Up(a) && w.Up(b) {
		w.net.link(e, a, b)
	}
}

// AllowAll lets every pair of nodes link (an organic world): edges
// appear when first dialled, with LAN latency.
func (w *World) AllowAll() { w.net.allPair = true }

func (nw *network) newEdge(a, b int, wan, static bool) *edge {
	w := nw.w
	if e, ok := nw.edges[pairKey(a, b)]; ok {
		e.static = e.static || static
		return e
	}
	class := w.cfg.LAN
	if wan {
		class = w.cfg.WAN
	}
	e := &edge{a: min(a, b), b: max(a, b), wan: wan, static: static,
		lat: int64(class.Latency.draw(w.rng)), bandwidth: class.Bandwidth,
		ext: w.cfg.SeedProtocol <= 0 || w.rng.Float64() >= w.cfg.SeedProtocol}
	if e.lat <= 0 {
		e.lat = 1
	}
	nw.edges[pairKey(a, b)] = e
	nw.edgeSeq = append(nw.edgeSeq, e)
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
		return nw.newEdge(a, b, false, false)
	}
	return nil
}

// reachable reports whether a can open a link to b now.
func (nw *network) reachable(a, b int) bool {
	e := nw.edgeOf(a, b)
	return e != nil && !e.cut && nw.part[a] == nw.part[b]
}

// link brings up a link over e: dialer a, acceptor b. Both must be up.
func (nw *network) link(e *edge, a, b int) {
	w := nw.w
	cl := &w.cluster
	nw.nextID += 2
	w.totals.LinksCreated++
	if !e.ext {
		w.totals.SeedLinks++
	}
	c := &conn{id: w.totals.LinksCreated, e: e}
	na, nb := cl.nodes[a], cl.nodes[b]
	c.end[0] = connEnd{node: a, id: nw.nextID - 1, up: true, epoch: na.epoch}
	c.end[1] = connEnd{node: b, id: nw.nextID, up: true, epoch: nb.epoch}
	e.conns = append(e.conns, c)
	na.ends[c.end[0].id] = c
	nb.ends[c.end[1].id] = c
	w.trace.record(traceRec{kind: evLinkUp, node: int32(a), peer: int32(b), aux: c.id})
	// The acceptor sees the dialer's address with an ephemeral port.
	na.n.Step(cl.nodeTime(a), node.LinkUp{Link: c.end[0].id, Peer: nb.mac, Addr: nb.addr, Dialed: true, Extended: e.ext})
	cl.drain(a)
	if c.end[1].up && nb.n != nil {
		from := netip.AddrPortFrom(na.addr.Addr(), uint16(32768+c.id%28000))
		nb.n.Step(cl.nodeTime(b), node.LinkUp{Link: c.end[1].id, Peer: na.mac, Addr: from, Dialed: false, Extended: e.ext})
		cl.drain(b)
	}
}

// transmit sends msg from end `from` of c: at once onto the wire of an
// unlimited link, else through the direction's serializer and queue.
func (nw *network) transmit(c *conn, from int, msg []byte, control bool) {
	w := nw.w
	if c.broken {
		w.totals.Lost++
		return
	}
	d := &c.dir[from]
	if c.e.bandwidth <= 0 {
		at := max(w.now+c.e.lat, d.last)
		d.last = at
		nw.sendOnWire(c, from, at, msg)
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
	return max(1, int64(len(msg)+2)*int64(time.Second)/c.e.bandwidth)
}

// txDone puts a serialized message on the wire and starts the next.
func (nw *network) txDone(c *conn, from int, msg []byte) {
	w := nw.w
	d := &c.dir[from]
	if c.broken {
		d.busy = false
		d.q = nil
		w.totals.Lost++
		return
	}
	at := max(w.now+c.e.lat, d.last)
	d.last = at
	nw.sendOnWire(c, from, at, msg)
	if d.q != nil {
		if next, ok := d.q.Pop(); ok {
			w.push(event{at: w.now + nw.txTime(c, next), kind: evTxDone, c: c, from: int8(from), msg: next})
			return
		}
	}
	d.busy = false
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
		w.queue.push(&event{at: at, kind: evDeliver, c: c, from: int8(from)}, w.seq)
	} else if d.head >= 64 && 2*d.head >= len(d.inFlight) {
		n := copy(d.inFlight, d.inFlight[d.head:])
		clear(d.inFlight[n:])
		d.inFlight, d.head = d.inFlight[:n], 0
	}
	d.inFlight = append(d.inFlight, inFlight{at: at, seq: w.seq, msg: msg})
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
		nw.w.queue.push(&event{at: next.at, kind: evDeliver, c: c, from: int8(from)}, next.seq)
	}
	return msg
}

// deliver hands msg, sent from end `from` of c, to the other end.
func (nw *network) deliver(c *conn, from int, msg []byte) {
	w := nw.w
	cl := &w.cluster
	to := 1 - from
	e := c.end[to]
	sn := cl.nodes[e.node]
	if c.broken || !e.up || sn.n == nil || sn.epoch != e.epoch {
		w.totals.Lost++
		return
	}
	sender := c.end[from].node
	w.totals.Messages++
	w.trace.record(traceRec{kind: evDeliver, node: int32(e.node), peer: int32(sender), msg: msg})
	w.check.arrived(sender, e.node, msg)
	sn.n.Receive(cl.nodeTime(e.node), e.id, msg)
	cl.drainMessage(e.node)
}

// breakConn takes c's transport away: nothing more is delivered over it,
// and the failure detector tells each end that still holds it.
func (nw *network) breakConn(c *conn, reason error) {
	if c.broken {
		return
	}
	c.broken = true
	nw.w.check.lost()
	nw.detectBroken(c, reason)
}

// detectBroken is the failure detector: an oracle that tells each end of
// broken c still up, Config.Detect after the break, that its link is
// gone. It stands for the keepalives and timeouts of a real transport; a
// model in which the nodes notice a dead link by themselves replaces
// this function alone.
func (nw *network) detectBroken(c *conn, reason error) {
	w := nw.w
	for k := range c.end {
		if c.end[k].up {
			w.push(event{at: w.now + int64(w.cfg.Detect), kind: evLinkDown, c: c, from: int8(k),
				err: fmt.Errorf("%w: %w", ErrCut, reason)})
		}
	}
}

// breakAll breaks every live conn of node i, in link-id order.
func (nw *network) breakAll(i int, reason error) {
	for _, c := range nw.connsOf(i) {
		nw.breakConn(c, reason)
	}
}

// linkDown tells end k of c that its link is gone.
func (nw *network) linkDown(c *conn, k int, reason error) {
	w := nw.w
	e := &c.end[k]
	sn := w.cluster.nodes[e.node]
	if !e.up {
		return
	}
	e.up = false
	nw.forget(c)
	if sn.n == nil || sn.epoch != e.epoch {
		return
	}
	delete(sn.ends, e.id)
	w.trace.record(traceRec{kind: evLinkDown, node: int32(e.node), peer: int32(c.end[1-k].node), aux: c.id})
	sn.n.Step(w.cluster.nodeTime(e.node), node.LinkDown{Link: e.id, Reason: reason})
	w.cluster.drain(e.node)
	if w.cfg.Relink && c.e.static {
		nw.relink(c.e)
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
}

// closeByNode carries out a Close: node i has forgotten the link; the
// other end sees end-of-stream after what i sent before it.
func (nw *network) closeByNode(i int, cl node.Close) {
	w := nw.w
	sn := w.cluster.nodes[i]
	c := sn.ends[cl.Link]
	if c == nil {
		return
	}
	sn.stats.Closes++
	delete(sn.ends, cl.Link)
	k := 0
	if c.end[1].node == i && c.end[1].id == cl.Link {
		k = 1
	}
	c.end[k].up = false
	w.check.lost()
	w.trace.record(traceRec{kind: evClose, node: int32(i), peer: int32(c.end[1-k].node), aux: c.id})
	if c.end[1-k].up && !c.broken {
		at := max(w.now+c.e.lat, c.dir[k].last) + 1
		w.push(event{at: at, kind: evLinkDown, c: c, from: int8(1 - k),
			err: fmt.Errorf("%w: %v", ErrPeerClosed, cl.Reason)})
	}
	nw.forget(c)
}

// dial carries out a Dial of node i.
func (nw *network) dial(i int, p node.Peer) {
	w := nw.w
	cl := &w.cluster
	sn := cl.nodes[i]
	t, ok := cl.byAddr[p.Addr]
	if !ok || !nw.reachable(i, t) {
		aux := uint64(0)
		if j, ok := cl.byMAC[p.MAC]; ok {
			aux = uint64(j)
		}
		w.push(event{at: w.now + int64(w.cfg.DialTimeout), kind: evDialFail, node: int32(i), epoch: sn.epoch,
			aux: aux, err: fmt.Errorf("%w: %v", ErrDialTimeout, p.Addr)})
		return
	}
	e := nw.edgeOf(i, t)
	tn := cl.nodes[t]
	switch {
	case tn.n == nil || tn.opts.NoIncoming:
		w.push(event{at: w.now + 2*e.lat, kind: evDialFail, node: int32(i), epoch: sn.epoch, aux: uint64(t),
			err: fmt.Errorf("%w: %v", ErrRefused, p.Addr)})
	case tn.mac != p.MAC:
		w.push(event{at: w.now + 3*e.lat, kind: evDialFail, node: int32(i), epoch: sn.epoch, aux: uint64(t),
			err: fmt.Errorf("%w: %v is %s, not %s", ErrWrongPeer, p.Addr, tn.mac, p.MAC)})
	default:
		// TCP and TLS 1.3 handshakes: about three one-way latencies.
		w.push(event{at: w.now + 3*e.lat, kind: evDialDone, node: int32(i), epoch: sn.epoch, aux: uint64(t)})
	}
}

// dialDone completes a dial if both nodes are still up and reachable.
func (nw *network) dialDone(ev *event) {
	w := nw.w
	cl := &w.cluster
	i, t := int(ev.node), int(ev.aux)
	sn := cl.nodes[i]
	if sn.n == nil || sn.epoch != ev.epoch {
		return
	}
	if cl.nodes[t].n == nil || !nw.reachable(i, t) {
		sn.stats.DialFailures++
		w.trace.record(traceRec{kind: evDialFail, node: ev.node, peer: int32(t)})
		sn.n.Step(cl.nodeTime(i), node.DialFailed{Peer: cl.nodes[t].mac,
			Err: fmt.Errorf("%w: %v went away during the handshake", ErrRefused, cl.nodes[t].addr)})
		cl.drain(i)
		return
	}
	nw.link(nw.edgeOf(i, t), i, t)
}

// dialFailed tells a node that its dial failed, unless it crashed since.
func (nw *network) dialFailed(ev *event) {
	w := nw.w
	cl := &w.cluster
	sn := cl.nodes[ev.node]
	if sn.n == nil || sn.epoch != ev.epoch {
		return
	}
	sn.stats.DialFailures++
	w.trace.record(traceRec{kind: evDialFail, node: ev.node, peer: int32(ev.aux)})
	sn.n.Step(cl.nodeTime(int(ev.node)), node.DialFailed{Peer: cl.nodes[ev.aux].mac, Err: ev.err})
	cl.drain(int(ev.node))
}

// relink schedules a static edge to come back up if it has no live link.
func (nw *network) relink(e *edge) {
	w := nw.w
	if e.relinking || !e.static || e.live() {
		return
	}
	if !w.Up(e.a) || !w.Up(e.b) || !nw.reachable(e.a, e.b) {
		return
	}
	e.relinking = true
	w.push(event{at: w.now + 3*e.lat, kind: evRelink, aux: pairKey(e.a, e.b)})
}

// relinkAround relinks every edge of node i.
func (nw *network) relinkAround(i int) {
	for _, e := range nw.edgeSeq {
		if e.a == i || e.b == i {
			nw.relink(e)
		}
	}
}

func (nw *network) relinkDone(ev *event) {
	w := nw.w
	e := nw.edges[ev.aux]
	e.relinking = false
	if e.live() {
		return
	}
	if !w.Up(e.a) || !w.Up(e.b) || !nw.reachable(e.a, e.b) {
		return
	}
	w.trace.record(traceRec{kind: evRelink, node: int32(e.a), peer: int32(e.b)})
	nw.link(e, e.a, e.b)
}

// connsOf returns node i's live conns in link-id order.
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

// cut marks the edge between a and b cut and breaks its links. It
// reports whether the edge was not cut before.
func (nw *network) cut(a, b int) (bool, error) {
	w := nw.w
	e, ok := nw.edges[pairKey(a, b)]
	if !ok {
		if !nw.allPair {
			return false, fmt.Errorf("sim: cut %s-%s: no such edge", w.Name(a), w.Name(b))
		}
		e = nw.newEdge(a, b, false, false)
	}
	if e.cut {
		return false, nil
	}
	e.cut = true
	w.trace.record(traceRec{kind: evCut, node: int32(a), peer: int32(b)})
	for _, c := range slices.Clone(e.conns) {
		nw.breakConn(c, fmt.Errorf("edge %s-%s", w.Name(a), w.Name(b)))
	}
	return true, nil
}

// heal repairs the edge between a and b and reports whether it was cut.
func (nw *network) heal(a, b int) bool {
	w := nw.w
	e, ok := nw.edges[pairKey(a, b)]
	if !ok || !e.cut {
		return false
	}
	e.cut = false
	w.trace.record(traceRec{kind: evHeal, node: int32(a), peer: int32(b)})
	if w.cfg.Relink {
		nw.relink(e)
	}
	return true
}

// partition puts the nodes of each group in a group of their own (the
// rest in group 0) and breaks the links across groups.
func (nw *network) partition(groups [][]int) {
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
			for _, c := range slices.Clone(e.conns) {
				nw.breakConn(c, errors.New("partition"))
			}
		}
	}
}

// healPartition puts every node back in one group.
func (nw *network) healPartition() {
	for i := range nw.part {
		nw.part[i] = 0
	}
	if nw.w.cfg.Relink {
		for _, e := range nw.edgeSeq {
			nw.relink(e)
		}
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
	// Carrying is true while some link over the edge still has its
	// transport: cutting the edge breaks something.
	Carrying bool
}

func (e *edge) state() EdgeState {
	return EdgeState{A: e.a, B: e.b, WAN: e.wan, Static: e.static, Cut: e.cut, Carrying: e.carrying()}
}

// EdgeStates returns every edge, in creation order: the static ones and,
// in an organic world, those dialled so far.
func (w *World) EdgeStates() []EdgeState {
	out := make([]EdgeState, len(w.net.edgeSeq))
	for k, e := range w.net.edgeSeq {
		out[k] = e.state()
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
	return e.state(), true
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
// link is live (not broken, both ends up).
func (nw *network) peerOf(i int, id node.LinkID) (int, bool) {
	c := nw.w.cluster.nodes[i].ends[id]
	if c == nil || !c.live() {
		return 0, false
	}
	if c.end[0].node == i {
		return c.end[1].node, true
	}
	return c.end[0].node, true
}

// LiveLinks returns, for each node, the peers of its live links.
func (w *World) LiveLinks() [][]int {
	out := make([][]int, w.N())
	for _, e := range w.net.edgeSeq {
		if e.live() {
			out[e.a] = append(out[e.a], e.b)
			out[e.b] = append(out[e.b], e.a)
		}
	}
	return out
}

// usable returns, for each node, the peers of its static edges that are
// neither cut nor across a partition: the links that should be up.
func (nw *network) usable() [][]int {
	adj := make([][]int, nw.w.N())
	for _, e := range nw.edgeSeq {
		if e.static && !e.cut && nw.part[e.a] == nw.part[e.b] {
			adj[e.a] = append(adj[e.a], e.b)
			adj[e.b] = append(adj[e.b], e.a)
		}
	}
	return adj
}
