package sim

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/invpn/invpn/wire"
)

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

// tracer keeps the running hash of every record and a ring of the most
// recent ones, which it formats with the world's node names.
type tracer struct {
	w    *World
	hash uint64
	ring []traceRec
	// bufs[k] is the storage of ring[k].msg: the ring keeps copies, as
	// the messages it records are recycled once delivered.
	bufs [][]byte
	next int  // the next slot of ring
	full bool // ring has wrapped
	// describe formats messages and frames as everywhere else
	// (wire.Describer), with node names and flow ids.
	describe wire.Describer
}

func (t *tracer) init(w *World) {
	t.w = w
	t.hash = fnvOffset
	t.ring = make([]traceRec, w.cfg.TraceSize)
	t.bufs = make([][]byte, w.cfg.TraceSize)
	t.describe = wire.Describer{Name: w.cluster.nameOfMAC, Frame: t.frame}
}

// Hash returns the running hash of the event trace (FNV-1a steps over
// 64-bit words).
func (w *World) Hash() uint64 { return w.trace.hash }

// record adds r, at the current virtual time, to the trace hash and the
// ring of recent events. The message is hashed whole, eight bytes at a
// time, after its length.
func (t *tracer) record(r traceRec) {
	r.at = t.w.now
	h := mix(t.hash, uint64(r.at))
	h = mix(h, uint64(r.kind)|uint64(uint32(r.node))<<8|uint64(uint32(r.peer))<<40)
	h = mix(h, r.aux)
	if msg := r.msg; len(msg) > 0 {
		h = mix(h, uint64(len(msg)))
		for len(msg) >= 8 {
			h = mix(h, binary.LittleEndian.Uint64(msg))
			msg = msg[8:]
		}
		if len(msg) > 0 {
			var v uint64
			for k, b := range msg {
				v |= uint64(b) << (8 * k)
			}
			h = mix(h, v)
		}
	}
	t.hash = h
	if r.msg != nil {
		b := append(t.bufs[t.next][:0], r.msg...)
		t.bufs[t.next], r.msg = b, b
	}
	t.ring[t.next] = r
	if t.next++; t.next == len(t.ring) {
		t.next = 0
		t.full = true
	}
}

// Trace formats the most recent events, oldest first.
func (w *World) Trace() string { return w.trace.String() }

// String formats the ring, oldest record first.
func (t *tracer) String() string {
	var b strings.Builder
	first, n := 0, t.next
	if t.full {
		first, n = t.next, len(t.ring)
	}
	for k := range n {
		b.WriteString(t.format(t.ring[(first+k)%len(t.ring)]))
		b.WriteByte('\n')
	}
	return b.String()
}

// name names node i, "-" for none.
func (t *tracer) name(i int32) string {
	if i < 0 || int(i) >= t.w.cluster.n() {
		return "-"
	}
	return t.w.cluster.nodes[i].name
}

func (t *tracer) format(r traceRec) string {
	at := time.Duration(r.at).Truncate(time.Microsecond)
	head := fmt.Sprintf("  %12v %-11s", at, r.kind)
	switch r.kind {
	case evDeliver:
		return fmt.Sprintf("%s %s -> %s %s", head, t.name(r.peer), t.name(r.node), t.describe.Message(r.msg))
	case evLinkUp, evLinkDown, evClose, evCut, evHeal, evDialFail, evReset, evUserTimeout:
		return fmt.Sprintf("%s %s -- %s (link %d)", head, t.name(r.node), t.name(r.peer), r.aux)
	case evClock:
		return fmt.Sprintf("%s %s offset %v", head, t.name(r.node), time.Duration(int64(r.aux)))
	case evTAP:
		return fmt.Sprintf("%s %s %s", head, t.name(r.node), t.frame(r.msg))
	case evAction:
		return head
	}
	return fmt.Sprintf("%s %s", head, t.name(r.node))
}

// frame summarizes an Ethernet frame as wire.Describer does, with the
// world's flow id when the frame is one of the workload's.
func (t *tracer) frame(f []byte) string {
	s := t.describe.EthernetFrame(f)
	if id, ok := flowID(f); ok {
		s += fmt.Sprintf(" flow %d", id)
	}
	return s
}
