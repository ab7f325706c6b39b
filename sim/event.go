package sim

import (
	"encoding/binary"
	"fmt"
	"math/bits"
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

// event is one entry of the world's queue. It lives in the queue's slab
// while pending; the heap orders small keys that point at it.
type event struct {
	at    int64
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

// The heap key packs the sequence number above the slab slot, so that
// comparing (at, key) orders events by (at, seq) exactly: seq is unique.
const (
	slotBits = 26 // up to 64 Mi pending events
	slotMask = 1<<slotBits - 1
	maxSeq   = 1<<(64-slotBits) - 1 // about 2.7e11 events per world
)

// qkey is one entry of the heap: 16 bytes and no pointers, so sifting
// moves little memory and needs no write barriers; four children share a
// cache line.
type qkey struct {
	at int64
	sk uint64 // seq<<slotBits | slot
}

func (a qkey) less(b qkey) bool { return a.at < b.at || a.at == b.at && a.sk < b.sk }

// eventQueue is the world's pending events: a 4-ary min-heap of keys
// ordered by (at, seq) over a slab of events with a free list.
type eventQueue struct {
	keys []qkey
	slab []event
	free []int32
}

func (q *eventQueue) len() int { return len(q.keys) }

// next returns the time of the earliest event; the queue must not be
// empty.
func (q *eventQueue) next() int64 { return q.keys[0].at }

// push adds ev with sequence number seq.
func (q *eventQueue) push(ev *event, seq uint64) {
	var slot int32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.slab[slot] = *ev
	} else {
		if len(q.slab) > slotMask {
			panic("sim: more than 64 Mi events pending")
		}
		if seq > maxSeq {
			panic("sim: event sequence numbers exhausted")
		}
		slot = int32(len(q.slab))
		q.slab = append(q.slab, *ev)
	}
	k := qkey{at: ev.at, sk: seq<<slotBits | uint64(slot)}
	q.keys = append(q.keys, k)
	q.up(len(q.keys)-1, k)
}

// up places k at hole i or above it.
func (q *eventQueue) up(i int, k qkey) {
	keys := q.keys
	for i > 0 {
		p := (i - 1) / 4
		if !k.less(keys[p]) {
			break
		}
		keys[i] = keys[p]
		i = p
	}
	keys[i] = k
}

// pop removes the earliest event into *ev; the queue must not be empty.
func (q *eventQueue) pop(ev *event) {
	keys := q.keys
	slot := int32(keys[0].sk & slotMask)
	last := len(keys) - 1
	k := keys[last]
	keys = keys[:last]
	q.keys = keys
	if last > 0 {
		// Move the hole down to a leaf along the smallest children, then
		// sift the former last key up from there: it usually belongs
		// near the bottom, so this compares less than a plain sift-down.
		i := 0
		for {
			c := 4*i + 1
			if c >= last {
				break
			}
			m := c
			end := min(c+4, last)
			for j := c + 1; j < end; j++ {
				if keys[j].less(keys[m]) {
					m = j
				}
			}
			keys[i] = keys[m]
			i = m
		}
		q.up(i, k)
	}
	*ev = q.slab[slot]
	q.slab[slot] = event{}
	q.free = append(q.free, slot)
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

// mix folds one 64-bit word into the trace hash: an FNV-1a step over the
// whole word, then a rotation so that high bits reach the low ones too.
func mix(h, v uint64) uint64 { return bits.RotateLeft64((h^v)*fnvPrime, 29) }

// record adds r to the trace hash and the ring of recent events. The
// message is hashed whole, eight bytes at a time, after its length.
func (w *World) record(r traceRec) {
	r.at = w.now
	h := mix(w.hash, uint64(r.at))
	h = mix(h, uint64(r.kind)|uint64(uint32(r.node))<<8|uint64(uint32(r.peer))<<40)
	h = mix(h, r.aux)
	if msg := r.msg; len(msg) > 0 {
		h = mix(h, uint64(len(msg)))
		for len(msg) >= 8 {
			h = mix(h, binary.LittleEndian.Uint64(msg))
			msg = msg[8:]
		}
		if len(msg) > 0 {
			var t uint64
			for k, b := range msg {
				t |= uint64(b) << (8 * k)
			}
			h = mix(h, t)
		}
	}
	w.hash = h
	w.trace[w.traceN] = r
	if w.traceN++; w.traceN == len(w.trace) {
		w.traceN = 0
		w.traceFull = true
	}
}

// Trace formats the most recent events, oldest first.
func (w *World) Trace() string {
	var b strings.Builder
	first, n := 0, w.traceN
	if w.traceFull {
		first, n = w.traceN, len(w.trace)
	}
	for k := range n {
		b.WriteString(w.formatRec(w.trace[(first+k)%len(w.trace)]))
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
