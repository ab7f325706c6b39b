package sim

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// FlowKind says what a simulated frame is.
type FlowKind uint8

// Flow kinds.
const (
	FlowBroadcast  FlowKind = iota + 1 // a broadcast frame
	FlowUnicast                        // a unicast frame
	FlowARPRequest                     // a broadcast asking for one node; it answers with FlowARPReply
	FlowARPReply                       // the unicast answer to an ARP request
)

func (k FlowKind) broadcast() bool { return k == FlowBroadcast || k == FlowARPRequest }

// flow is one frame injected at a node's TAP, followed through the mesh.
type flow struct {
	id       uint64
	kind     FlowKind
	src, dst int
	sentAt   int64
	lossSeq  uint64
	comp     []bool  // nodes connected to the source at send time
	knownAll bool    // every node of comp knew the source (broadcast) / the route was complete (unicast)
	got      []uint8 // deliveries per node
	visited  []int32 // unicast: nodes the frame reached
}

// FrameStats count the frames injected and their fate.
type FrameStats struct {
	Sent       uint64 // frames injected at a TAP
	Expected   uint64 // deliveries expected: connected recipients at send time
	Delivered  uint64 // expected deliveries that happened
	Lost       uint64 // expected deliveries that did not happen
	Duplicated uint64 // deliveries beyond the first at one node
	Stray      uint64 // deliveries to nodes not connected at send time
	// BroadcastChecked and UnicastChecked count the frames sent while the
	// mesh was converged (every node knew the source; the route was
	// complete) and no link was lost before they settled: each of those
	// must reach every connected node (its destination) exactly once.
	BroadcastChecked, UnicastChecked uint64
	Loops                            uint64 // unicast frames that visited a node twice
}

// observer watches traffic and control messages and checks invariants.
type observer struct {
	w      *World
	flows  map[uint64]*flow
	nextID uint64
	frames FrameStats

	reqs   map[healthKey]*healthReq
	answer map[answerKey][]int32 // reverse path of a 0x03 so far
	checks HealthStats

	model []modelEntry // n*n, when ModelRouting
}

// HealthStats count health requests and the answers checked.
type HealthStats struct {
	Requests, Answers, Checked uint64
}

type healthKey struct {
	requester wire.MAC
	id        uint64
}

type healthReq struct {
	requester int
	at        int64
	accepted  map[int32][]int32 // the path by which each node accepted the request
}

type answerKey struct {
	dest, origin wire.MAC
	id           uint64
}

type modelEntry struct {
	id  uint64
	via int32 // -1: nothing arrived
}

func (o *observer) init(w *World) {
	o.w = w
	o.flows = map[uint64]*flow{}
	o.reqs = map[healthKey]*healthReq{}
	o.answer = map[answerKey][]int32{}
}

// Broadcast injects a broadcast frame at node src's TAP.
func (w *World) Broadcast(src int) { w.inject(FlowBroadcast, src, -1) }

// Unicast injects a unicast frame from src to dst at src's TAP.
func (w *World) Unicast(src, dst int) { w.inject(FlowUnicast, src, dst) }

// ARP injects an ARP-like request from src for dst (a broadcast); dst
// answers with a unicast reply as soon as the request reaches it.
func (w *World) ARP(src, dst int) { w.inject(FlowARPRequest, src, dst) }

// Frames returns the frame counters so far.
func (w *World) Frames() FrameStats { return w.obs.frames }

// HealthChecks returns the health counters so far.
func (w *World) HealthChecks() HealthStats { return w.obs.checks }

func (w *World) inject(kind FlowKind, src, dst int) {
	sn := w.nodes[src]
	if sn.n == nil || src == dst {
		return
	}
	o := &w.obs
	o.nextID++
	f := &flow{id: o.nextID, kind: kind, src: src, dst: dst, sentAt: w.now, lossSeq: w.lossSeq,
		got: make([]uint8, len(w.nodes)), visited: []int32{int32(src)}}
	f.comp = w.component(src)
	if kind.broadcast() {
		f.knownAll = true
		for i, in := range f.comp {
			if in && i != src && !w.knows(i, src) {
				f.knownAll = false
				break
			}
		}
	} else {
		f.knownAll = w.routeComplete(src, dst)
	}
	o.flows[f.id] = f
	o.frames.Sent++
	dstMAC := wire.Broadcast
	et := uint16(etherFlow)
	if !kind.broadcast() {
		dstMAC = w.nodes[dst].mac
	}
	if kind == FlowARPRequest || kind == FlowARPReply {
		et = etherARP
	}
	frame := make([]byte, 0, 32)
	frame = append(frame, dstMAC[:]...)
	frame = append(frame, sn.mac[:]...)
	frame = binary.BigEndian.AppendUint16(frame, et)
	frame = binary.BigEndian.AppendUint64(frame, f.id)
	frame = append(frame, byte(kind), byte(max(dst, 0)>>8), byte(max(dst, 0)))
	w.record(traceRec{kind: evTAP, node: int32(src), msg: frame})
	sn.n.FrameFromTAP(w.nodeTime(src), frame)
	w.drainMessage(src)
	w.After(w.cfg.FloodWindow, func() { o.settle(f) })
}

// knows reports whether node i would accept a broadcast from src: it is
// linked to src or routes to it.
func (w *World) knows(i, src int) bool {
	n := w.nodes[i].n
	if n == nil {
		return false
	}
	if _, ok := n.Route(w.nodes[src].mac); ok {
		return true
	}
	for _, l := range n.Links() {
		if l.Peer == w.nodes[src].mac {
			return true
		}
	}
	return false
}

// routeComplete reports whether following next hops from src reaches dst
// over live links within the hop limit.
func (w *World) routeComplete(src, dst int) bool {
	u := src
	for range min(len(w.nodes), w.hopLimit()+1) {
		if u == dst {
			return true
		}
		n := w.nodes[u].n
		if n == nil {
			return false
		}
		ri, ok := n.Route(w.nodes[dst].mac)
		if !ok {
			return false
		}
		v, ok := w.peerOf(u, ri.Via)
		if !ok {
			return false
		}
		u = v
	}
	return false
}

// component returns the nodes connected to src over live links, through
// nodes that relay.
func (w *World) component(src int) []bool {
	links := w.LiveLinks()
	in := make([]bool, len(w.nodes))
	in[src] = true
	stack := []int{src}
	for len(stack) > 0 {
		u := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if u != src && w.nodes[u].opts.NoRelay {
			continue
		}
		for _, v := range links[u] {
			if !in[v] && w.Up(v) {
				in[v] = true
				stack = append(stack, v)
			}
		}
	}
	return in
}

// crashedSince reports whether node i crashed after virtual time t: it
// lost its de-duplication state, so a second delivery is no violation.
func (w *World) crashedSince(i int, t int64) bool { return w.nodes[i].crashedAt >= t }

// tap checks a frame node i wrote to its TAP.
func (o *observer) tap(i int, fr []byte) {
	w := o.w
	id, ok := flowID(fr)
	if !ok {
		return
	}
	f := o.flows[id]
	if f == nil {
		return // settled long ago
	}
	w.record(traceRec{kind: evTAP, node: int32(i), msg: fr})
	if f.kind.broadcast() {
		if i == f.src {
			w.violate("broadcast to source", fmt.Sprintf("flow %d from %s came back to its source", f.id, w.nodes[i].name))
		}
	} else if i != f.dst {
		w.violate("unicast misdelivered", fmt.Sprintf("flow %d for %s written to %s's TAP", f.id, w.nodes[f.dst].name, w.nodes[i].name))
	}
	if f.got[i] < 255 {
		f.got[i]++
	}
	if f.got[i] > 1 {
		o.frames.Duplicated++
		if !w.crashedSince(i, f.sentAt) {
			w.violate(category(f.kind)+" duplicate", fmt.Sprintf("flow %d (%s from %s) delivered %d times to %s",
				f.id, kindName(f.kind), w.nodes[f.src].name, f.got[i], w.nodes[i].name))
		}
	}
	if f.kind == FlowARPRequest && i == f.dst && f.got[i] == 1 {
		src, dst := f.dst, f.src
		w.After(0, func() { w.inject(FlowARPReply, src, dst) })
	}
}

// category is the first word of the kinds of violations about a flow.
func category(k FlowKind) string {
	if k.broadcast() {
		return "broadcast"
	}
	return "unicast"
}

func kindName(k FlowKind) string {
	switch k {
	case FlowBroadcast:
		return "broadcast"
	case FlowUnicast:
		return "unicast"
	case FlowARPRequest:
		return "arp request"
	case FlowARPReply:
		return "arp reply"
	}
	return "?"
}

// settle checks a flow once its flood window is over.
func (o *observer) settle(f *flow) {
	w := o.w
	delete(o.flows, f.id)
	quiet := w.lossSeq == f.lossSeq && f.knownAll
	if quiet && f.kind.broadcast() {
		o.frames.BroadcastChecked++
	} else if quiet {
		o.frames.UnicastChecked++
	}
	var missing []string
	for i, in := range f.comp {
		want := in && i != f.src && (f.kind.broadcast() || i == f.dst)
		switch {
		case want && f.got[i] > 0:
			o.frames.Expected++
			o.frames.Delivered++
		case want:
			o.frames.Expected++
			o.frames.Lost++
			if quiet && w.Up(i) && !w.crashedSince(i, f.sentAt) {
				missing = append(missing, w.nodes[i].name)
			}
		case f.got[i] > 0 && i != f.src:
			o.frames.Stray++
		}
	}
	if len(missing) > 0 {
		if len(missing) > 10 {
			missing = append(missing[:10], "...")
		}
		w.violate(category(f.kind)+" lost", fmt.Sprintf("flow %d (%s from %s) sent at %v while converged, no link lost, not delivered to %v",
			f.id, kindName(f.kind), w.nodes[f.src].name, time.Duration(f.sentAt), missing))
	}
}

// arrived watches a message delivered from node `from` to node `to`.
func (o *observer) arrived(from, to int, msg []byte) {
	switch wire.Type(msg[0]) {
	case wire.TypeTargetedFrame, wire.TypeLimitedFrame:
		o.hop(to, msg)
	case wire.TypeHealthRequest:
		o.healthHop(from, to, msg)
	case wire.TypeHealthResponse:
		if len(msg) >= 22 {
			k := answerKey{dest: wire.MAC(msg[2:8]), origin: wire.MAC(msg[8:14]), id: binary.BigEndian.Uint64(msg[14:22])}
			if p, ok := o.answer[k]; ok && k.dest != o.w.nodes[to].mac {
				o.answer[k] = append(p, int32(to))
			}
		}
	case wire.TypeInitialInfo, wire.TypeInfo, wire.TypeInfoPath:
		if o.w.cfg.ModelRouting {
			if n := len(o.w.nodes); len(o.model) != n*n {
				o.growModel()
			}
			o.announcement(from, to, msg)
		}
	}
}

// hop follows a unicast frame and reports a loop.
func (o *observer) hop(to int, msg []byte) {
	fr := msg[1:]
	if wire.Type(msg[0]) == wire.TypeLimitedFrame {
		fr = msg[2:]
	}
	id, ok := flowID(fr)
	if !ok {
		return
	}
	f := o.flows[id]
	if f == nil {
		return
	}
	if slices.Contains(f.visited, int32(to)) && !o.w.crashedSince(to, f.sentAt) {
		o.frames.Loops++
		path := make([]string, 0, len(f.visited)+1)
		for _, v := range f.visited {
			path = append(path, o.w.nodes[v].name)
		}
		path = append(path, o.w.nodes[to].name)
		o.w.violate("loop", fmt.Sprintf("flow %d from %s to %s visited %v", f.id,
			o.w.nodes[f.src].name, o.w.nodes[f.dst].name, path))
	}
	f.visited = append(f.visited, int32(to))
}

// sent watches messages as node i sends them: answers it originates.
func (o *observer) sent(i int, msg []byte) {
	if wire.Type(msg[0]) != wire.TypeHealthResponse || len(msg) < 22 {
		return
	}
	k := answerKey{dest: wire.MAC(msg[2:8]), origin: wire.MAC(msg[8:14]), id: binary.BigEndian.Uint64(msg[14:22])}
	if k.origin == o.w.nodes[i].mac {
		o.answer[k] = []int32{int32(i)}
	}
}

func (o *observer) healthStarted(i int, id uint64) {
	o.checks.Requests++
	o.reqs[healthKey{o.w.nodes[i].mac, id}] = &healthReq{requester: i, at: o.w.now,
		accepted: map[int32][]int32{int32(i): {int32(i)}}}
}

// healthHop follows a health request: the first copy a node gets is the
// one it accepts and answers.
func (o *observer) healthHop(from, to int, msg []byte) {
	if len(msg) < 16 {
		return
	}
	k := healthKey{requester: wire.MAC(msg[10:16]), id: binary.BigEndian.Uint64(msg[2:10])}
	r := o.reqs[k]
	if r == nil {
		return
	}
	if _, ok := r.accepted[int32(to)]; ok {
		return
	}
	p, ok := r.accepted[int32(from)]
	if !ok {
		return // the sender accepted it before a crash: not tracked
	}
	r.accepted[int32(to)] = append(slices.Clip(p), int32(to))
}

// health checks an answer to a request node i started: its traceroute is
// the path the request travelled, its reverse the path the answer took.
func (o *observer) health(i int, h node.HealthResult) {
	w := o.w
	o.checks.Answers++
	resp := h.Response
	r := o.reqs[healthKey{w.nodes[i].mac, resp.ID}]
	oi, ok := w.byMAC[resp.Origin]
	if r == nil || !ok {
		w.violate("health unexpected answer", fmt.Sprintf("%s got an answer from %s to request %d it did not track", w.nodes[i].name, w.macName(resp.Origin), resp.ID))
		return
	}
	if w.crashedSince(oi, r.at) {
		return
	}
	o.checks.Checked++
	want := w.macsOf(r.accepted[int32(oi)])
	if !slices.Equal(resp.Traceroute, want) {
		w.violate("health traceroute", fmt.Sprintf("answer from %s to %s: traceroute %s, but the request travelled %s",
			w.nodes[oi].name, w.nodes[i].name, w.macNamesFull(resp.Traceroute), w.macNamesFull(want)))
	}
	k := answerKey{dest: w.nodes[i].mac, origin: resp.Origin, id: resp.ID}
	back := w.macsOf(o.answer[k])
	if !slices.Equal(resp.Reverse, back) {
		w.violate("health reverse", fmt.Sprintf("answer from %s to %s: reverse %s, but the answer travelled %s",
			w.nodes[oi].name, w.nodes[i].name, w.macNamesFull(resp.Reverse), w.macNamesFull(back)))
	}
	delete(o.answer, k)
}

func (w *World) macsOf(idx []int32) []wire.MAC {
	out := make([]wire.MAC, len(idx))
	for k, i := range idx {
		out[k] = w.nodes[i].mac
	}
	return out
}

// announcement updates the naive first-path model: for each node and
// target, the neighbour over which the target's newest announcement
// arrived first. Copies whose path already holds the receiver are
// ignored, as the node ignores them.
func (o *observer) announcement(from, to int, msg []byte) {
	w := o.w
	body := msg[1:] // version, id, mac...
	if wire.Type(msg[0]) == wire.TypeInfoPath {
		if len(msg) < 2 {
			return
		}
		n := int(msg[1])
		body = msg[2:]
		if n != wire.PathUnknown {
			if len(body) < 6*n {
				return
			}
			me := w.nodes[to].mac
			for k := range n {
				if wire.MAC(body[6*k:6*k+6]) == me {
					return
				}
			}
			body = body[6*n:]
		}
	}
	if len(body) < 15 {
		return
	}
	id := binary.BigEndian.Uint64(body[1:9])
	x, ok := w.byMAC[wire.MAC(body[9:15])]
	if !ok || x == to {
		return
	}
	e := &o.model[to*len(w.nodes)+x]
	if e.via < 0 || id > e.id {
		e.id, e.via = id, int32(from)
	}
}

func (o *observer) growModel() {
	if !o.w.cfg.ModelRouting {
		return
	}
	n := len(o.w.nodes)
	o.model = make([]modelEntry, n*n)
	for k := range o.model {
		o.model[k].via = -1
	}
}
