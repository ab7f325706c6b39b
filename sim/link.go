package sim

import (
	"errors"
	"fmt"
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

// conn is one link: a connection over an edge. end[0] dialled.
type conn struct {
	id     uint64
	e      *edge
	end    [2]connEnd
	broken bool // the transport is gone: nothing more is delivered
	dir    [2]direction
}

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
	// World.sendOnWire): the heap stays as small as the number of busy
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

// sendOnWire schedules msg to arrive at the far end of direction `from`
// of c at `at`, which is no earlier than any arrival already scheduled on
// it. The event is ordered exactly as if it were queued on its own.
func (w *World) sendOnWire(c *conn, from int, at int64, msg []byte) {
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
func (w *World) arrive(c *conn, from int) []byte {
	d := &c.dir[from]
	msg := d.inFlight[d.head].msg
	d.inFlight[d.head] = inFlight{}
	d.head++
	if d.head < len(d.inFlight) {
		next := &d.inFlight[d.head]
		w.queue.push(&event{at: next.at, kind: evDeliver, c: c, from: int8(from)}, next.seq)
	}
	return msg
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
	e := w.newEdge(a, b, wan, true)
	if w.Up(a) && w.Up(b) {
		w.link(e, a, b)
	}
}

// AllowAll lets every pair of nodes link (an organic world): edges
// appear when first dialled, with LAN latency.
func (w *World) AllowAll() { w.allPair = true }

func (w *World) newEdge(a, b int, wan, static bool) *edge {
	if e, ok := w.edges[pairKey(a, b)]; ok {
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
	w.edges[pairKey(a, b)] = e
	w.edgeSeq = append(w.edgeSeq, e)
	return e
}

// edgeOf returns the edge between a and b, creating it in an organic
// world; nil if they cannot link.
func (w *World) edgeOf(a, b int) *edge {
	if a == b {
		return nil
	}
	if e, ok := w.edges[pairKey(a, b)]; ok {
		return e
	}
	if w.allPair {
		return w.newEdge(a, b, false, false)
	}
	return nil
}

// reachable reports whether a can open a link to b now.
func (w *World) reachable(a, b int) bool {
	e := w.edgeOf(a, b)
	return e != nil && !e.cut && w.part[a] == w.part[b]
}

// link brings up a link over e: dialer a, acceptor b. Both must be up.
func (w *World) link(e *edge, a, b int) {
	w.nextID += 2
	w.totals.LinksCreated++
	if !e.ext {
		w.totals.SeedLinks++
	}
	c := &conn{id: w.totals.LinksCreated, e: e}
	c.end[0] = connEnd{node: a, id: w.nextID - 1, up: true, epoch: w.nodes[a].epoch}
	c.end[1] = connEnd{node: b, id: w.nextID, up: true, epoch: w.nodes[b].epoch}
	e.conns = append(e.conns, c)
	w.nodes[a].ends[c.end[0].id] = c
	w.nodes[b].ends[c.end[1].id] = c
	w.record(traceRec{kind: evLinkUp, node: int32(a), peer: int32(b), aux: c.id})
	// The acceptor sees the dialer's address with an ephemeral port.
	na, nb := w.nodes[a], w.nodes[b]
	na.n.Step(w.nodeTime(a), node.LinkUp{Link: c.end[0].id, Peer: nb.mac, Addr: nb.addr, Dialed: true, Extended: e.ext})
	w.drain(a)
	if c.end[1].up && nb.n != nil {
		from := netip.AddrPortFrom(na.addr.Addr(), uint16(32768+c.id%28000))
		nb.n.Step(w.nodeTime(b), node.LinkUp{Link: c.end[1].id, Peer: na.mac, Addr: from, Dialed: false, Extended: e.ext})
		w.drain(b)
	}
}

// transmit sends msg from end `from` of c.
func (w *World) transmit(c *conn, from int, msg []byte, control bool) {
	if c.broken {
		w.totals.Lost++
		return
	}
	d := &c.dir[from]
	if c.e.bandwidth <= 0 {
		at := max(w.now+c.e.lat, d.last)
		d.last = at
		w.sendOnWire(c, from, at, msg)
		return
	}
	if !d.busy {
		d.busy = true
		w.push(event{at: w.now + w.txTime(c, msg), kind: evTxDone, c: c, from: int8(from), msg: msg})
		return
	}
	if d.q == nil {
		d.q = &node.SendQueue{DataLimit: w.cfg.QueueLimit}
	}
	if !d.q.Push(node.Send{Msg: msg, Control: control}) {
		w.nodes[c.end[from].node].stats.QueueDrops++
	}
}

// txTime is how long msg takes to serialize onto c.
func (w *World) txTime(c *conn, msg []byte) int64 {
	return max(1, int64(len(msg)+2)*int64(time.Second)/c.e.bandwidth)
}

// txDone puts a serialized message on the wire and starts the next.
func (w *World) txDone(c *conn, from int, msg []byte) {
	d := &c.dir[from]
	if c.broken {
		d.busy = false
		d.q = nil
		w.totals.Lost++
		return
	}
	at := max(w.now+c.e.lat, d.last)
	d.last = at
	w.sendOnWire(c, from, at, msg)
	if d.q != nil {
		if next, ok := d.q.Pop(); ok {
			w.push(event{at: w.now + w.txTime(c, next), kind: evTxDone, c: c, from: int8(from), msg: next})
			return
		}
	}
	d.busy = false
}

// deliver hands msg, sent from end `from` of c, to the other end.
func (w *World) deliver(c *conn, from int, msg []byte) {
	to := 1 - from
	e := c.end[to]
	sn := w.nodes[e.node]
	if c.broken || !e.up || sn.n == nil || sn.epoch != e.epoch {
		w.totals.Lost++
		return
	}
	sender := c.end[from].node
	w.totals.Messages++
	w.record(traceRec{kind: evDeliver, node: int32(e.node), peer: int32(sender), msg: msg})
	w.obs.arrived(sender, e.node, msg)
	sn.n.Receive(w.nodeTime(e.node), e.id, msg)
	w.drainMessage(e.node)
}

// breakConn takes c's transport away: each end still up notices after
// the detection delay.
func (w *World) breakConn(c *conn, reason error) {
	if c.broken {
		return
	}
	c.broken = true
	w.lossSeq++
	for k := range c.end {
		if c.end[k].up {
			w.push(event{at: w.now + int64(w.cfg.Detect), kind: evLinkDown, c: c, from: int8(k),
				err: fmt.Errorf("%w: %w", ErrCut, reason)})
		}
	}
}

// linkDown tells end k of c that its link is gone.
func (w *World) linkDown(c *conn, k int, reason error) {
	e := &c.end[k]
	sn := w.nodes[e.node]
	if !e.up {
		return
	}
	e.up = false
	w.forget(c)
	if sn.n == nil || sn.epoch != e.epoch {
		return
	}
	delete(sn.ends, e.id)
	w.record(traceRec{kind: evLinkDown, node: int32(e.node), peer: int32(c.end[1-k].node), aux: c.id})
	sn.n.Step(w.nodeTime(e.node), node.LinkDown{Link: e.id, Reason: reason})
	w.drain(e.node)
	if w.cfg.Relink && c.e.static {
		w.relink(c.e)
	}
}

// forget drops c from its edge once neither end holds it.
func (w *World) forget(c *conn) {
	if c.end[0].up || c.end[1].up {
		return
	}
	if i := slices.Index(c.e.conns, c); i >= 0 {
		c.e.conns = slices.Delete(c.e.conns, i, i+1)
	}
}

// closeByNode carries out a Close: node i has forgotten the link; the
// other end sees end-of-stream after what i sent before it.
func (w *World) closeByNode(i int, cl node.Close) {
	sn := w.nodes[i]
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
	w.lossSeq++
	w.record(traceRec{kind: evClose, node: int32(i), peer: int32(c.end[1-k].node), aux: c.id})
	if c.end[1-k].up && !c.broken {
		at := max(w.now+c.e.lat, c.dir[k].last) + 1
		w.push(event{at: at, kind: evLinkDown, c: c, from: int8(1 - k),
			err: fmt.Errorf("%w: %v", ErrPeerClosed, cl.Reason)})
	}
	w.forget(c)
}

// dial carries out a Dial of node i.
func (w *World) dial(i int, p node.Peer) {
	sn := w.nodes[i]
	t, ok := w.byAddr[p.Addr]
	if !ok || !w.reachable(i, t) {
		aux := uint64(0)
		if j, ok := w.byMAC[p.MAC]; ok {
			aux = uint64(j)
		}
		w.push(event{at: w.now + int64(w.cfg.DialTimeout), kind: evDialFail, node: int32(i), epoch: sn.epoch,
			aux: aux, err: fmt.Errorf("%w: %v", ErrDialTimeout, p.Addr)})
		return
	}
	e := w.edgeOf(i, t)
	tn := w.nodes[t]
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
func (w *World) dialDone(ev *event) {
	i, t := int(ev.node), int(ev.aux)
	sn := w.nodes[i]
	if sn.n == nil || sn.epoch != ev.epoch {
		return
	}
	if w.nodes[t].n == nil || !w.reachable(i, t) {
		sn.stats.DialFailures++
		w.record(traceRec{kind: evDialFail, node: ev.node, peer: int32(t)})
		sn.n.Step(w.nodeTime(i), node.DialFailed{Peer: w.nodes[t].mac,
			Err: fmt.Errorf("%w: %v went away during the handshake", ErrRefused, w.nodes[t].addr)})
		w.drain(i)
		return
	}
	w.link(w.edgeOf(i, t), i, t)
}

// relink schedules a static edge to come back up if it has no live link.
func (w *World) relink(e *edge) {
	if e.relinking || !e.static {
		return
	}
	for _, c := range e.conns {
		if !c.broken && c.end[0].up && c.end[1].up {
			return
		}
	}
	if !w.Up(e.a) || !w.Up(e.b) || !w.reachable(e.a, e.b) {
		return
	}
	e.relinking = true
	w.push(event{at: w.now + 3*e.lat, kind: evRelink, aux: pairKey(e.a, e.b)})
}

func (w *World) relinkDone(ev *event) {
	e := w.edges[ev.aux]
	e.relinking = false
	for _, c := range e.conns {
		if !c.broken && c.end[0].up && c.end[1].up {
			return
		}
	}
	if !w.Up(e.a) || !w.Up(e.b) || !w.reachable(e.a, e.b) {
		return
	}
	w.record(traceRec{kind: evRelink, node: int32(e.a), peer: int32(e.b)})
	w.link(e, e.a, e.b)
}

// connsOf returns node i's live conns in link-id order.
func (w *World) connsOf(i int) []*conn {
	sn := w.nodes[i]
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

// Cut cuts the edge between a and b: its links break (each end notices
// after the detection delay) and no link can be opened over it until
// Heal.
func (w *World) Cut(a, b int) error {
	e, ok := w.edges[pairKey(a, b)]
	if !ok {
		if !w.allPair {
			return fmt.Errorf("sim: cut %s-%s: no such edge", w.nodes[a].name, w.nodes[b].name)
		}
		e = w.newEdge(a, b, false, false)
	}
	if e.cut {
		return nil
	}
	e.cut = true
	w.record(traceRec{kind: evCut, node: int32(a), peer: int32(b)})
	for _, c := range slices.Clone(e.conns) {
		w.breakConn(c, fmt.Errorf("edge %s-%s", w.nodes[a].name, w.nodes[b].name))
	}
	w.probe.fault(fmt.Sprintf("cut %s-%s", w.nodes[a].name, w.nodes[b].name), "cut")
	return nil
}

// Heal repairs the edge between a and b.
func (w *World) Heal(a, b int) {
	e, ok := w.edges[pairKey(a, b)]
	if !ok || !e.cut {
		return
	}
	e.cut = false
	w.record(traceRec{kind: evHeal, node: int32(a), peer: int32(b)})
	if w.cfg.Relink {
		w.relink(e)
	}
	w.probe.fault(fmt.Sprintf("heal %s-%s", w.nodes[a].name, w.nodes[b].name), "heal")
}

// Partition splits the nodes: nodes in different groups cannot reach
// each other; nodes in no group form one more group. Links across break.
func (w *World) Partition(groups [][]int) {
	for i := range w.part {
		w.part[i] = 0
	}
	for g, members := range groups {
		for _, i := range members {
			w.part[i] = g + 1
		}
	}
	for _, e := range w.edgeSeq {
		if w.part[e.a] != w.part[e.b] {
			for _, c := range slices.Clone(e.conns) {
				w.breakConn(c, errors.New("partition"))
			}
		}
	}
	w.probe.fault(fmt.Sprintf("partition into %d groups", len(groups)+1), "partition")
}

// HealPartition ends a partition.
func (w *World) HealPartition() {
	for i := range w.part {
		w.part[i] = 0
	}
	if w.cfg.Relink {
		for _, e := range w.edgeSeq {
			w.relink(e)
		}
	}
	w.probe.fault("partition healed", "heal")
}

// Edges returns the static edges, in creation order, as index pairs.
func (w *World) Edges() [][2]int {
	var out [][2]int
	for _, e := range w.edgeSeq {
		if e.static {
			out = append(out, [2]int{e.a, e.b})
		}
	}
	return out
}

// EdgeLatency returns the one-way latency of the edge between a and b.
func (w *World) EdgeLatency(a, b int) (time.Duration, bool) {
	e, ok := w.edges[pairKey(a, b)]
	if !ok {
		return 0, false
	}
	return time.Duration(e.lat), true
}

// IsWAN reports whether the edge between a and b is a WAN edge.
func (w *World) IsWAN(a, b int) bool {
	e, ok := w.edges[pairKey(a, b)]
	return ok && e.wan
}

// peerOf returns the node at the other end of node i's link id, if the
// link is live (not broken, both ends up).
func (w *World) peerOf(i int, id node.LinkID) (int, bool) {
	c := w.nodes[i].ends[id]
	if c == nil || c.broken || !c.end[0].up || !c.end[1].up {
		return 0, false
	}
	if c.end[0].node == i {
		return c.end[1].node, true
	}
	return c.end[0].node, true
}

// LiveLinks returns, for each node, the peers of its live links.
func (w *World) LiveLinks() [][]int {
	out := make([][]int, len(w.nodes))
	for _, e := range w.edgeSeq {
		for _, c := range e.conns {
			if !c.broken && c.end[0].up && c.end[1].up {
				out[e.a] = append(out[e.a], e.b)
				out[e.b] = append(out[e.b], e.a)
				break
			}
		}
	}
	return out
}
