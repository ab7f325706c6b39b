package sim

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// This file holds the workload: what the hosts behind the nodes' TAP
// devices do. They send broadcast, unicast and ARP-like frames, each
// carrying a flow id the checker follows through the mesh, answer ARP
// requests, and start health requests. A scenario's traffic schedule is
// parsed here into typed entries and fired through the World's exported
// methods.

// FlowKind says what a simulated frame is.
type FlowKind uint8

// Flow kinds.
const (
	FlowBroadcast  FlowKind = iota + 1 // a broadcast frame
	FlowUnicast                        // a unicast frame
	FlowARPRequest                     // a broadcast asking for one node; it answers with FlowARPReply
	FlowARPReply                       // the unicast answer to an ARP request
	FlowPing                           // a unicast echo request; its destination answers with FlowPong
	FlowPong                           // the unicast answer to a ping
)

func (k FlowKind) broadcast() bool { return k == FlowBroadcast || k == FlowARPRequest }

// String names k: broadcast, unicast, arp request, arp reply.
func (k FlowKind) String() string {
	switch k {
	case FlowBroadcast:
		return "broadcast"
	case FlowUnicast:
		return "unicast"
	case FlowARPRequest:
		return "arp request"
	case FlowARPReply:
		return "arp reply"
	case FlowPing:
		return "ping"
	case FlowPong:
		return "pong"
	}
	return "?"
}

// The payload of simulated frames: an ethertype, then the flow id, the
// kind and the destination's index.
const (
	etherFlow = 0x88b5 // IEEE local experimental
	etherARP  = 0x0806
)

// flowID extracts the world's flow id from an Ethernet frame.
func flowID(f []byte) (uint64, bool) {
	if len(f) < wire.EthernetHeaderLen+8 {
		return 0, false
	}
	et := binary.BigEndian.Uint16(f[12:14])
	if et != etherFlow && et != etherARP {
		return 0, false
	}
	return binary.BigEndian.Uint64(f[14:22]), true
}

// workload injects the frames and health requests of the hosts.
type workload struct {
	w        *World
	nextFlow uint64
	streams  []*stream
}

// stream is a unicast or ping traffic entry between two fixed nodes: the
// fate of each of its frames (of a ping: of the echo request and its
// answer), in the order sent, gives the runs of lost frames around each
// fault, the way the end-to-end tests measure a failover with a ping
// every 50 ms.
type stream struct {
	desc  string
	every time.Duration
	sent  []int64 // send time of each frame
	lost  []bool  // whether it never reached its destination (set when it settles)
	done  []bool  // whether it has settled
}

// addStream registers a stream and returns it.
func (wl *workload) addStream(desc string, every time.Duration) *stream {
	st := &stream{desc: desc, every: every}
	wl.streams = append(wl.streams, st)
	return st
}

// lossRun returns the longest run of consecutive lost frames of st whose
// first frame was sent in [from, to), in frames.
func (st *stream) lossRun(from, to int64) int {
	best, run, start := 0, 0, int64(0)
	for k, at := range st.sent {
		if !st.done[k] {
			break
		}
		if st.lost[k] {
			if run == 0 {
				start = at
			}
			run++
			if start >= from && start < to {
				best = max(best, run)
			}
			continue
		}
		run = 0
	}
	return best
}

func (wl *workload) init(w *World) { wl.w = w }

// Broadcast injects a broadcast frame at node src's TAP.
func (w *World) Broadcast(src int) { w.traffic.inject(FlowBroadcast, src, -1) }

// Unicast injects a unicast frame from src to dst at src's TAP.
func (w *World) Unicast(src, dst int) { w.traffic.inject(FlowUnicast, src, dst) }

// ARP injects an ARP-like request from src for dst (a broadcast); dst
// answers with a unicast reply as soon as the request reaches it.
func (w *World) ARP(src, dst int) { w.traffic.inject(FlowARPRequest, src, dst) }

// Ping injects a unicast echo request from src to dst at src's TAP; dst
// answers with a unicast reply as soon as the request reaches it.
func (w *World) Ping(src, dst int) { w.traffic.inject(FlowPing, src, dst) }

// StartHealth makes node i start a health request (0x02); the answers
// are checked as they arrive.
func (w *World) StartHealth(i int) {
	sn := w.cluster.nodes[i]
	if sn.n == nil {
		return
	}
	epoch := sn.epoch
	w.cluster.input(i, func() {
		if sn.n == nil || sn.epoch != epoch {
			return
		}
		sn.n.Step(w.cluster.nodeTime(i), node.StartHealth{})
		for _, id := range sn.n.Ready().HealthStarted {
			w.check.healthStarted(i, id)
		}
		w.cluster.drain(i)
	})
}

// inject writes a frame of the given kind into src's TAP, tells the
// checker what must become of it, and has it settled when its flood
// window is over.
func (wl *workload) inject(kind FlowKind, src, dst int) { wl.injectStream(kind, src, dst, nil) }

// injectStream is inject for a frame of stream st (nil: none).
func (wl *workload) injectStream(kind FlowKind, src, dst int, st *stream) {
	wl.injectSeq(kind, src, dst, st, -1)
}

// injectSeq is injectStream for frame seq of st (-1: a new one; a pong
// answers the ping seq).
func (wl *workload) injectSeq(kind FlowKind, src, dst int, st *stream, seq int) {
	w := wl.w
	sn := w.cluster.nodes[src]
	if st != nil && seq < 0 {
		seq = len(st.sent)
		st.sent, st.lost, st.done = append(st.sent, w.now), append(st.lost, false), append(st.done, false)
	}
	if sn.n == nil || src == dst {
		if st != nil {
			st.lost[seq], st.done[seq] = true, true
		}
		return
	}
	wl.nextFlow++
	f := w.check.track(wl.nextFlow, kind, src, dst)
	f.stream, f.seq = st, seq
	dstMAC := wire.Broadcast
	if !kind.broadcast() {
		dstMAC = w.cluster.nodes[dst].mac
	}
	frame := flowFrame(kind, f.id, sn.mac, dstMAC, dst)
	w.trace.record(traceRec{kind: evTAP, node: int32(src), msg: frame})
	epoch := sn.epoch
	w.cluster.input(src, func() {
		if sn.n == nil || sn.epoch != epoch {
			return
		}
		sn.n.FrameFromTAP(w.cluster.nodeTime(src), frame)
		w.cluster.drainMessage(src)
	})
	w.After(w.cfg.FloodWindow, func() { w.check.settle(f) })
}

// flowFrame builds the Ethernet frame of flow id from src to dstMAC:
// after the header, the flow id, the kind and the destination's index
// (0 for none).
func flowFrame(kind FlowKind, id uint64, src, dstMAC wire.MAC, dst int) []byte {
	et := uint16(etherFlow)
	if kind == FlowARPRequest || kind == FlowARPReply {
		et = etherARP
	}
	frame := make([]byte, 0, 32)
	frame = append(frame, dstMAC[:]...)
	frame = append(frame, src[:]...)
	frame = binary.BigEndian.AppendUint16(frame, et)
	frame = binary.BigEndian.AppendUint64(frame, id)
	return append(frame, byte(kind), byte(max(dst, 0)>>8), byte(max(dst, 0)))
}

// delivered is called when flow f reaches node i's host for the first
// time: the target of an ARP request answers it.
func (wl *workload) delivered(i int, f *flow) {
	if f.kind == FlowARPRequest && i == f.dst {
		src, dst := f.dst, f.src
		wl.w.After(0, func() { wl.inject(FlowARPReply, src, dst) })
	}
	if f.kind == FlowPing && i == f.dst {
		src, dst, st, seq := f.dst, f.src, f.stream, f.seq
		f.answered = true
		wl.w.After(0, func() { wl.injectSeq(FlowPong, src, dst, st, seq) })
	}
}

// TrafficKind says what a traffic entry sends.
type TrafficKind uint8

// Traffic kinds.
const (
	TrafficBroadcast TrafficKind = iota + 1 // World.Broadcast
	TrafficUnicast                          // World.Unicast
	TrafficARP                              // World.ARP
	TrafficHealth                           // World.StartHealth
	TrafficPing                             // World.Ping
)

var trafficWords = [...]string{TrafficBroadcast: "broadcast", TrafficUnicast: "unicast", TrafficARP: "arp",
	TrafficHealth: "health", TrafficPing: "ping"}

// String returns the scenario's word for k.
func (k TrafficKind) String() string {
	if int(k) < len(trafficWords) && trafficWords[k] != "" {
		return trafficWords[k]
	}
	return "?"
}

// paired reports whether k sends from one node to another.
func (k TrafficKind) paired() bool { return k == TrafficUnicast || k == TrafficARP || k == TrafficPing }

// TrafficSpec is one entry of a scenario's traffic schedule.
type TrafficSpec struct {
	Line int // in the scenario file
	Kind TrafficKind
	// Src is the sending node, RandomNode for a random node that is up
	// (then Dst, for unicast and ARP, is random too). Dst is the
	// destination of unicast and ARP, -1 for the others.
	Src, Dst NodeRef
	Schedule
}

// fire sends the entry's traffic once; st is its stream, if any.
func (tr TrafficSpec) fire(w *World, st *stream) {
	src, dst := -1, -1
	if tr.Src == RandomNode {
		src = w.RandomUp()
		if tr.Kind.paired() {
			for range 10 {
				if dst = w.RandomUp(); dst != src {
					break
				}
			}
		}
	} else {
		src, dst = int(tr.Src), int(tr.Dst)
	}
	if src < 0 || !w.Up(src) {
		if st != nil {
			w.traffic.injectStream(FlowUnicast, src, dst, st) // noted as lost
		}
		return
	}
	switch tr.Kind {
	case TrafficBroadcast:
		w.Broadcast(src)
	case TrafficUnicast, TrafficPing:
		kind := FlowUnicast
		if tr.Kind == TrafficPing {
			kind = FlowPing
		}
		if st != nil {
			w.traffic.injectStream(kind, src, dst, st)
		} else if dst >= 0 && dst != src {
			w.traffic.inject(kind, src, dst)
		}
	case TrafficARP:
		if dst >= 0 && dst != src {
			w.ARP(src, dst)
		}
	case TrafficHealth:
		w.StartHealth(src)
	}
}

// schedule schedules every firing of tr.
func (tr TrafficSpec) schedule(w *World, end time.Duration) {
	var st *stream
	if (tr.Kind == TrafficUnicast || tr.Kind == TrafficPing) && tr.Src != RandomNode && tr.Every > 0 {
		st = w.traffic.addStream(fmt.Sprintf("%v %v-%v every %v", tr.Kind, tr.Src, tr.Dst, tr.Every), tr.Every)
	}
	for _, at := range tr.times(end) {
		w.At(at, func() { tr.fire(w, st) })
	}
}

// parseTraffic parses one entry of the traffic list.
func (s *Scenario) parseTraffic(y ynode) (TrafficSpec, error) {
	f, order, err := y.fields("broadcast", "unicast", "arp", "health", "ping", "at", "every", "until")
	if err != nil {
		return TrafficSpec{}, err
	}
	ts := TrafficSpec{Line: y.line(), Dst: -1}
	var kinds []string
	for _, k := range order {
		switch k {
		case "broadcast", "unicast", "arp", "health", "ping":
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		return ts, y.errf("want exactly one of broadcast, unicast, arp, health, ping; got %v", kinds)
	}
	for k, word := range trafficWords {
		if word == kinds[0] {
			ts.Kind = TrafficKind(k)
		}
	}
	kn := f[kinds[0]]
	target, err := kn.str()
	if err != nil {
		return ts, err
	}
	a, b, pair := strings.Cut(target, "-")
	switch {
	case target == "random":
		ts.Src = RandomNode
		if ts.Kind.paired() {
			ts.Dst = RandomNode
		}
	case pair && ts.Kind.paired():
		if ts.Src, err = s.parseNodeRef(kn, a, false); err != nil {
			return ts, err
		}
		if ts.Dst, err = s.parseNodeRef(kn, b, false); err != nil {
			return ts, err
		}
	case pair:
		return ts, kn.errf("%s takes one source node or random, got %q", ts.Kind, target)
	case ts.Kind.paired():
		return ts, kn.errf("%s takes nA-nB or random, got %q", ts.Kind, target)
	default:
		if ts.Src, err = s.parseNodeRef(kn, target, false); err != nil {
			return ts, err
		}
	}
	if err := setDurs(f, durField{"at", &ts.At}, durField{"every", &ts.Every}, durField{"until", &ts.Until}); err != nil {
		return ts, err
	}
	return ts, nil
}
