package sim

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/invpn/invpn/wire"
)

// evKind says what an event does.
type evKind uint8

const (
	evTick     evKind = iota + 1 // a node's deadline
	evDeliver                    // a message arrives at the far end of a link
	evTxDone                     // a message finished serializing onto a link
	evLinkDown                   // one end notices its link is gone
	evDialDone                   // a dial's handshake completes
	evDialFail                   // a dial fails
	evRelink                     // a static edge comes back up
	evAction                     // a scheduled fault, traffic or check
	// Trace-only kinds.
	evStart
	evCrash
	evClock
	evLinkUp
	evClose
	evCut
	evHeal
	evTAP
)

var evNames = [...]string{"", "tick", "deliver", "tx done", "link down", "dial done", "dial failed",
	"relink", "action", "start", "crash", "clock", "link up", "close", "cut", "heal", "tap"}

func (k evKind) String() string {
	if int(k) < len(evNames) {
		return evNames[k]
	}
	return fmt.Sprintf("ev(%d)", k)
}

// event is one entry of the world's queue.
type event struct {
	at    int64
	seq   uint64
	kind  evKind
	from  int8 // the sending end of c
	node  int32
	epoch uint32
	aux   uint64
	c     *conn
	msg   []byte
	err   error
	fn    func()
}

// eventHeap is a binary min-heap ordered by (at, seq).
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].seq < h[j].seq
}

func (h *eventHeap) push(ev event) {
	*h = append(*h, ev)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = event{}
	q = q[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(q) {
			break
		}
		m := l
		if r := l + 1; r < len(q) && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// traceRec is one entry of the trace: what happened, for the hash and
// for failure reports.
type traceRec struct {
	at   int64
	kind evKind
	node int32
	peer int32
	aux  uint64
	msg  []byte
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvUint64(h, v uint64) uint64 {
	for range 8 {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}

// record adds r to the trace hash and the ring of recent events.
func (w *World) record(r traceRec) {
	r.at = w.now
	h := fnvUint64(w.hash, uint64(r.at))
	h = fnvUint64(h, uint64(r.kind)|uint64(uint32(r.node))<<8|uint64(uint32(r.peer))<<40)
	h = fnvUint64(h, r.aux)
	for _, b := range r.msg {
		h ^= uint64(b)
		h *= fnvPrime
	}
	w.hash = h
	w.trace[w.traceN%len(w.trace)] = r
	w.traceN++
}

// Trace formats the most recent events, oldest first.
func (w *World) Trace() string {
	var b strings.Builder
	n := min(w.traceN, len(w.trace))
	for k := w.traceN - n; k < w.traceN; k++ {
		b.WriteString(w.formatRec(w.trace[k%len(w.trace)]))
		b.WriteByte('\n')
	}
	return b.String()
}

func (w *World) nameOf(i int32) string {
	if i < 0 || int(i) >= len(w.nodes) {
		return "-"
	}
	return w.nodes[i].name
}

func (w *World) formatRec(r traceRec) string {
	at := time.Duration(r.at).Truncate(time.Microsecond)
	head := fmt.Sprintf("  %12v %-11s", at, r.kind)
	switch r.kind {
	case evDeliver:
		return fmt.Sprintf("%s %s -> %s %s", head, w.nameOf(r.peer), w.nameOf(r.node), w.describe(r.msg))
	case evLinkUp, evLinkDown, evClose, evCut, evHeal, evDialFail, evDialDone, evRelink:
		return fmt.Sprintf("%s %s -- %s (link %d)", head, w.nameOf(r.node), w.nameOf(r.peer), r.aux)
	case evClock:
		return fmt.Sprintf("%s %s offset %v", head, w.nameOf(r.node), time.Duration(int64(r.aux)))
	case evTAP:
		return fmt.Sprintf("%s %s %s", head, w.nameOf(r.node), w.describeFrame(r.msg))
	case evAction:
		return head
	}
	return fmt.Sprintf("%s %s", head, w.nameOf(r.node))
}

// describe summarizes a message for the trace.
func (w *World) describe(msg []byte) string {
	m, err := wire.Decode(msg)
	if err != nil {
		return fmt.Sprintf("%d bytes: %v", len(msg), err)
	}
	switch m := m.(type) {
	case *wire.InitialInfo:
		return fmt.Sprintf("%v %s id %d", m.Type(), w.macName(m.MAC), m.ID)
	case *wire.Info:
		return fmt.Sprintf("%v %s id %d", m.Type(), w.macName(m.MAC), m.ID)
	case *wire.InfoPath:
		return fmt.Sprintf("%v %s id %d path %s", m.Type(), w.macName(m.MAC), m.ID, w.macNames(m.Path))
	case *wire.HealthRequest:
		return fmt.Sprintf("%v from %s id %d trace %s", m.Type(), w.macName(m.Requester), m.ID, w.macNames(m.Traceroute))
	case *wire.HealthResponse:
		return fmt.Sprintf("%v %s -> %s id %d trace %s reverse %s", m.Type(), w.macName(m.Origin), w.macName(m.Dest), m.ID,
			w.macNames(m.Traceroute), w.macNames(m.Reverse))
	case *wire.TargetedFrame:
		return fmt.Sprintf("%v %s", m.Type(), w.describeFrame(m.Frame))
	case *wire.LimitedFrame:
		return fmt.Sprintf("%v hops %d %s", m.Type(), m.Hops, w.describeFrame(m.Frame))
	case *wire.BroadcastFrame:
		return fmt.Sprintf("%v id %d from %s", m.Type(), m.ID, w.macName(m.Src))
	case *wire.GroupFrame:
		return fmt.Sprintf("%v id %d %s", m.Type(), m.ID, w.describeFrame(m.Frame))
	}
	return m.Type().String()
}

func (w *World) describeFrame(f []byte) string {
	if len(f) < wire.EthernetHeaderLen {
		return fmt.Sprintf("short frame %x", f)
	}
	s := fmt.Sprintf("%s > %s", w.macName(wire.MAC(f[6:12])), w.macName(wire.MAC(f[0:6])))
	if id, ok := flowID(f); ok {
		s += fmt.Sprintf(" flow %d", id)
	}
	return s
}

func (w *World) macName(m wire.MAC) string {
	if m.IsBroadcast() {
		return "broadcast"
	}
	if i, ok := w.byMAC[m]; ok {
		return w.nodes[i].name
	}
	return m.String()
}

// macNames lists names; a long list keeps its ends.
func (w *World) macNames(ms []wire.MAC) string {
	s := make([]string, 0, len(ms))
	for i, m := range ms {
		if len(ms) > 12 && i == 5 {
			s = append(s, fmt.Sprintf("...(%d more)...", len(ms)-10))
		}
		if len(ms) > 12 && i >= 5 && i < len(ms)-5 {
			continue
		}
		s = append(s, w.macName(m))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// macNamesFull lists every name.
func (w *World) macNamesFull(ms []wire.MAC) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = w.macName(m)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// Violation is a broken invariant, with the events that led to it.
type Violation struct {
	At     time.Duration // virtual time since Start
	Kind   string
	Detail string
	Trace  string // the most recent events, oldest first
}

func (v Violation) String() string {
	return fmt.Sprintf("at %v: %s: %s", v.At, v.Kind, v.Detail)
}

// violate records a violation.
func (w *World) violate(kind, detail string) {
	w.violationN++
	cat, _, _ := strings.Cut(kind, " ")
	w.violCat[cat]++
	v := Violation{At: time.Duration(w.now), Kind: kind, Detail: detail}
	if len(w.violations) < w.cfg.MaxViolations {
		v.Trace = w.Trace()
		w.violations = append(w.violations, v)
	}
	if w.OnViolation != nil {
		w.OnViolation(v)
	}
}

// ViolationCounts returns how many violations of each category (the
// first word of their kind: broadcast, unicast, loop, health, protocol)
// happened.
func (w *World) ViolationCounts() map[string]int { return w.violCat }

// Violations returns the violations recorded so far (at most
// Config.MaxViolations) and how many there were in all.
func (w *World) Violations() ([]Violation, int) { return w.violations, w.violationN }

// The payload of simulated frames: an ethertype, then the flow id.
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
