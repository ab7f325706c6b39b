package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// checker checks the protocol's invariants against the world's own
// ground truth, as the messages, TAP writes and health answers happen:
//
//   - a broadcast reaches each node at most once and never its source,
//     and every node connected to its source when it was sent in a
//     converged mesh with no link lost before it settled;
//   - a unicast frame never visits a node twice, reaches only its
//     destination, and reaches it when sent over a complete route with
//     no link lost;
//   - a health answer's traceroute is the path the request travelled to
//     its origin, and its reverse path the one the answer took back;
//   - no node reports a protocol violation;
//   - (counted, for the expectation "no unicast frame dropped by a node")
//     where each lost unicast frame was: in a link a node closed, held by
//     TCP in a live link past its flood window, or dropped by a node;
//   - (checker_firstpath.go) every node's first-path route is the one a
//     naive model computes from the log of announcement arrivals.
//
// It counts what it checked (FrameStats, HealthStats, FirstPathCheck)
// so that a test can tell a property that held from one that checked
// nothing.
type checker struct {
	w *World
	// losses counts links and nodes lost: a frame is checked for
	// delivery only if none was lost while it was in flight.
	losses   uint64
	lastLoss int64 // when the last link or node was lost (virtual ns); long ago at first

	flows  map[uint64]*flow
	frames FrameStats
	// lostOn holds, for each lost unicast frame that was on a link, that
	// link: whether a node closed it may be known only after the frame
	// settled (a link failed by liveness many seconds into a stall).
	lostOn []*conn

	reqs   map[healthKey]*healthReq
	answer map[answerKey][]int32 // reverse path of a 0x03 so far
	checks HealthStats

	model []modelEntry // n*n, when ModelRouting

	violations []Violation
	violationN int
	violCat    map[string]int
}

func (c *checker) init(w *World) {
	c.w = w
	c.flows = map[uint64]*flow{}
	c.reqs = map[healthKey]*healthReq{}
	c.answer = map[answerKey][]int32{}
	c.violCat = map[string]int{}
	c.lastLoss = math.MinInt64 / 2 // never
}

// lost notes that a link or a node was lost.
func (c *checker) lost() { c.losses, c.lastLoss = c.losses+1, c.w.now }

// Violation is a broken invariant, with the events that led to it.
type Violation struct {
	At     time.Duration // virtual time since Start
	Kind   string
	Detail string
	Trace  string // the most recent events, oldest first
}

// String formats v as "at 1.5s: kind: detail".
func (v Violation) String() string {
	return fmt.Sprintf("at %v: %s: %s", v.At, v.Kind, v.Detail)
}

// violate records a violation.
func (c *checker) violate(kind, detail string) {
	w := c.w
	c.violationN++
	cat, _, _ := strings.Cut(kind, " ")
	c.violCat[cat]++
	v := Violation{At: time.Duration(w.now), Kind: kind, Detail: detail}
	if len(c.violations) < w.cfg.MaxViolations {
		v.Trace = w.Trace()
		c.violations = append(c.violations, v)
	}
	if w.OnViolation != nil {
		w.OnViolation(v)
	}
}

// ReportViolation records a violation found outside the world's own
// checks, such as a scenario whose fault names an edge that does not
// exist (kind "scenario").
func (w *World) ReportViolation(kind, detail string) { w.check.violate(kind, detail) }

// ViolationCounts returns how many violations of each category (the
// first word of their kind: broadcast, unicast, loop, health, protocol,
// scenario) happened.
func (w *World) ViolationCounts() map[string]int { return w.check.violCat }

// Violations returns the violations recorded so far (at most
// Config.MaxViolations) and how many there were in all.
func (w *World) Violations() ([]Violation, int) { return w.check.violations, w.check.violationN }

// Frames returns the frame counters so far.
func (w *World) Frames() FrameStats {
	fr := w.check.frames
	for _, c := range w.check.lostOn {
		if c.closed {
			fr.LostInClosedLinks++
		}
	}
	return fr
}

// HealthChecks returns the health counters so far.
func (w *World) HealthChecks() HealthStats { return w.check.checks }

// flow is one frame injected at a node's TAP, followed through the mesh.
type flow struct {
	id       uint64
	kind     FlowKind
	src, dst int
	sentAt   int64
	losses   uint64  // checker.losses at send time
	comp     []bool  // nodes connected to the source at send time
	knownAll bool    // every node of comp knew the source (broadcast) / the route was complete (unicast)
	got      []uint8 // deliveries per node
	visited  []int32 // unicast: nodes the frame reached, in order (the source first)
	stream   *stream // the stream it belongs to, if any
	seq      int     // its index in the stream
	answered bool    // a ping whose answer was sent
	// on is, for a unicast frame, the link it was last put on and has not
	// crossed yet (nil once it arrived): where it was lost, if it was.
	on *conn
}

// track starts following a frame the workload is about to inject, and
// notes what must become of it: which nodes it must reach, and whether
// the mesh is quiet enough to require that.
func (c *checker) track(id uint64, kind FlowKind, src, dst int) *flow {
	w := c.w
	f := &flow{id: id, kind: kind, src: src, dst: dst, sentAt: w.now, losses: c.losses,
		got: make([]uint8, w.N()), visited: []int32{int32(src)}}
	if w.net.lossy > 0 || w.now < w.net.lossTail || w.cluster.stalledN() > 0 {
		// A lossy link (or one still retransmitting what it lost) or a
		// paused node delays frames (TCP keeps them): one sent now may
		// take longer than its flood window.
		f.losses = ^c.losses
	}
	f.comp = c.component(src)
	if kind.broadcast() {
		f.knownAll = true
		for i, in := range f.comp {
			if in && i != src && !c.knows(i, src) {
				f.knownAll = false
				break
			}
		}
	} else {
		f.knownAll = c.routeComplete(src, dst)
	}
	c.flows[f.id] = f
	c.frames.Sent++
	return f
}

// knows reports whether node i would accept a broadcast from src: it is
// linked to src or routes to it.
func (c *checker) knows(i, src int) bool {
	cl := &c.w.cluster
	n := cl.nodes[i].n
	if n == nil {
		return false
	}
	if _, ok := n.Route(cl.nodes[src].mac); ok {
		return true
	}
	for _, l := range n.Links() {
		if l.Peer == cl.nodes[src].mac {
			return true
		}
	}
	return false
}

// routeComplete reports whether following next hops from src reaches dst
// over live links within the hop limit.
func (c *checker) routeComplete(src, dst int) bool {
	cl := &c.w.cluster
	u := src
	for range min(cl.n(), cl.hopLimit()+1) {
		if u == dst {
			return true
		}
		n := cl.nodes[u].n
		if n == nil {
			return false
		}
		ri, ok := n.Route(cl.nodes[dst].mac)
		if !ok {
			return false
		}
		v, ok := c.w.net.peerOf(u, ri.Via)
		if !ok {
			return false
		}
		u = v
	}
	return false
}

// component returns the nodes connected to src over live links, through
// nodes that relay.
func (c *checker) component(src int) []bool {
	w := c.w
	links := w.LiveLinks()
	in := make([]bool, w.N())
	in[src] = true
	stack := []int{src}
	for len(stack) > 0 {
		u := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if u != src && w.cluster.nodes[u].opts.NoRelay {
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

// tap checks a frame node i wrote to its TAP. It returns the flow when
// this is the frame's first delivery to i, nil otherwise.
func (c *checker) tap(i int, fr []byte) *flow {
	w := c.w
	cl := &w.cluster
	id, ok := flowID(fr)
	if !ok {
		return nil
	}
	f := c.flows[id]
	if f == nil {
		return nil // settled long ago
	}
	// fr is the node's until Advance: the trace keeps a copy of its own.
	w.trace.record(traceRec{kind: evTAP, node: int32(i), msg: fr})
	if f.kind.broadcast() {
		if i == f.src {
			c.violate("broadcast to source", fmt.Sprintf("flow %d from %s came back to its source", f.id, cl.nodes[i].name))
		}
	} else if i != f.dst {
		c.violate("unicast misdelivered", fmt.Sprintf("flow %d for %s written to %s's TAP", f.id, cl.nodes[f.dst].name, cl.nodes[i].name))
	}
	if f.got[i] < 255 {
		f.got[i]++
	}
	if f.got[i] > 1 {
		c.frames.Duplicated++
		if !cl.crashedSince(i, f.sentAt) {
			c.violate(category(f.kind)+" duplicate", fmt.Sprintf("flow %d (%s from %s) delivered %d times to %s",
				f.id, f.kind, cl.nodes[f.src].name, f.got[i], cl.nodes[i].name))
		}
		return nil
	}
	return f
}

// category is the first word of the kinds of violations about a flow.
func category(k FlowKind) string {
	if k.broadcast() {
		return "broadcast"
	}
	return "unicast"
}

// settle checks a flow once its flood window is over.
func (c *checker) settle(f *flow) {
	w := c.w
	cl := &w.cluster
	delete(c.flows, f.id)
	if st := f.stream; st != nil && !f.answered {
		// A ping that was answered settles with its answer.
		st.lost[f.seq], st.done[f.seq] = f.got[f.dst] == 0, true
	}
	quiet := c.losses == f.losses && f.knownAll
	if quiet && f.kind.broadcast() {
		c.frames.BroadcastChecked++
	} else if quiet {
		c.frames.UnicastChecked++
	}
	var missing []string
	for i, in := range f.comp {
		want := in && i != f.src && (f.kind.broadcast() || i == f.dst)
		switch {
		case want && f.got[i] > 0:
			c.frames.Expected++
			c.frames.Delivered++
		case want:
			c.frames.Expected++
			c.frames.Lost++
			if !f.kind.broadcast() {
				c.frames.UnicastLost++
				if f.on != nil {
					c.frames.LostInLinks++
					c.lostOn = append(c.lostOn, f.on)
				}
			}
			if quiet && w.Up(i) && !cl.crashedSince(i, f.sentAt) {
				missing = append(missing, cl.nodes[i].name)
			}
		case f.got[i] > 0 && i != f.src:
			c.frames.Stray++
		}
	}
	if len(missing) > 0 {
		if len(missing) > 10 {
			missing = append(missing[:10], "...")
		}
		c.violate(category(f.kind)+" lost", fmt.Sprintf("flow %d (%s from %s) sent at %v while converged, no link lost, not delivered to %v",
			f.id, f.kind, cl.nodes[f.src].name, time.Duration(f.sentAt), missing))
	}
}

// arrived watches a message delivered from node `from` to node `to`.
func (c *checker) arrived(from, to int, msg []byte) {
	switch wire.Type(msg[0]) {
	case wire.TypeTargetedFrame, wire.TypeLimitedFrame:
		c.hop(from, to, msg)
	case wire.TypeHealthRequest:
		c.healthHop(from, to, msg)
	case wire.TypeHealthResponse:
		if len(msg) >= 22 {
			k := answerKey{dest: wire.MAC(msg[2:8]), origin: wire.MAC(msg[8:14]), id: binary.BigEndian.Uint64(msg[14:22])}
			if p, ok := c.answer[k]; ok && k.dest != c.w.cluster.nodes[to].mac {
				c.answer[k] = append(p, int32(to))
			}
		}
	case wire.TypeInitialInfo, wire.TypeInfo, wire.TypeInfoPath:
		if c.w.cfg.ModelRouting {
			c.announcement(from, to, msg, 0)
		}
	case wire.TypeInfoBatch:
		if c.w.cfg.ModelRouting {
			if b, err := wire.DecodeInfoBatch(msg); err == nil {
				for i := range b.Entries {
					c.announcement(from, to, b.Entries[i].InfoPath.Append(nil), int64(b.Entries[i].Held))
				}
			}
		}
	}
}

// hop follows a unicast frame over the link from -> to and reports a
// loop: the frame crossing the same link in the same direction a second
// time, which means it went round a cycle of next hops. A frame may come
// back to a node whose route changed while it was in flight (a route
// moved at one node before the newer round reached the next) and leave
// it by another link: that detour is counted (Detours), not a loop.
func (c *checker) hop(from, to int, msg []byte) {
	cl := &c.w.cluster
	f := c.unicastFlow(msg)
	if f == nil {
		return
	}
	f.on = nil
	crossed := false
	for k := 1; k < len(f.visited); k++ {
		if f.visited[k-1] == int32(from) && f.visited[k] == int32(to) {
			crossed = true
		}
	}
	if slices.Contains(f.visited, int32(to)) && !crossed {
		c.frames.Detours++
	}
	// After several simultaneous failures, backups can point at each other
	// until a newer round confirms them or FailoverConfirm withdraws them
	// (docs/protocol.md#fast-failover): a loop of a frame sent within that
	// window of a loss is transient, counted but not a violation.
	transient := time.Duration(f.sentAt-c.lastLoss) <= cl.failoverConfirm()+time.Second
	if crossed && transient {
		c.frames.TransientLoops++
	}
	if crossed && !transient && !cl.crashedSince(from, f.sentAt) && !cl.crashedSince(to, f.sentAt) {
		c.frames.Loops++
		path := make([]string, 0, len(f.visited)+1)
		for _, v := range f.visited {
			path = append(path, cl.nodes[v].name)
		}
		path = append(path, cl.nodes[to].name)
		c.violate("loop", fmt.Sprintf("flow %d from %s to %s visited %v", f.id,
			cl.nodes[f.src].name, cl.nodes[f.dst].name, path))
	}
	f.visited = append(f.visited, int32(to))
}

// unicastFlow returns the flow of the frame a targeted or limited frame
// message carries, nil for any other message or a flow settled already.
func (c *checker) unicastFlow(msg []byte) *flow {
	var fr []byte
	switch wire.Type(msg[0]) {
	case wire.TypeTargetedFrame:
		fr = msg[1:]
	case wire.TypeLimitedFrame:
		fr = msg[2:]
	default:
		return nil
	}
	id, ok := flowID(fr)
	if !ok {
		return nil
	}
	return c.flows[id]
}

// onWire watches a message node i puts on link cn: a unicast frame is on
// that link until it arrives, and lost with it if it never does.
func (c *checker) onWire(cn *conn, msg []byte) {
	if f := c.unicastFlow(msg); f != nil {
		f.on = cn
	}
}

// sent watches messages as node i sends them: answers it originates.
func (c *checker) sent(i int, msg []byte) {
	if wire.Type(msg[0]) != wire.TypeHealthResponse || len(msg) < 22 {
		return
	}
	k := answerKey{dest: wire.MAC(msg[2:8]), origin: wire.MAC(msg[8:14]), id: binary.BigEndian.Uint64(msg[14:22])}
	if k.origin == c.w.cluster.nodes[i].mac {
		c.answer[k] = []int32{int32(i)}
	}
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

// healthStarted notes a health request node i started.
func (c *checker) healthStarted(i int, id uint64) {
	c.checks.Requests++
	c.reqs[healthKey{c.w.cluster.nodes[i].mac, id}] = &healthReq{requester: i, at: c.w.now,
		accepted: map[int32][]int32{int32(i): {int32(i)}}}
}

// healthHop follows a health request: the first copy a node gets is the
// one it accepts and answers.
func (c *checker) healthHop(from, to int, msg []byte) {
	if len(msg) < 16 {
		return
	}
	k := healthKey{requester: wire.MAC(msg[10:16]), id: binary.BigEndian.Uint64(msg[2:10])}
	r := c.reqs[k]
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
func (c *checker) health(i int, h node.HealthResult) {
	w := c.w
	cl := &w.cluster
	d := &w.trace.describe
	c.checks.Answers++
	resp := h.Response
	r := c.reqs[healthKey{cl.nodes[i].mac, resp.ID}]
	oi, ok := cl.byMAC[resp.Origin]
	if r == nil || !ok {
		c.violate("health unexpected answer", fmt.Sprintf("%s got an answer from %s to request %d it did not track",
			cl.nodes[i].name, d.MAC(resp.Origin), resp.ID))
		return
	}
	if cl.crashedSince(oi, r.at) {
		return
	}
	c.checks.Checked++
	want := cl.macsOf(r.accepted[int32(oi)])
	if !slices.Equal(resp.Traceroute, want) {
		c.violate("health traceroute", fmt.Sprintf("answer from %s to %s: traceroute %s, but the request travelled %s",
			cl.nodes[oi].name, cl.nodes[i].name, d.MACs(resp.Traceroute), d.MACs(want)))
	}
	k := answerKey{dest: cl.nodes[i].mac, origin: resp.Origin, id: resp.ID}
	back := cl.macsOf(c.answer[k])
	if !slices.Equal(resp.Reverse, back) {
		c.violate("health reverse", fmt.Sprintf("answer from %s to %s: reverse %s, but the answer travelled %s",
			cl.nodes[oi].name, cl.nodes[i].name, d.MACs(resp.Reverse), d.MACs(back)))
	}
	delete(c.answer, k)
}
