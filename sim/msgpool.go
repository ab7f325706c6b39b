package sim

import "math/bits"

// msgPool recycles the buffers of messages on the wire. Each message a
// node sends gets a buffer of its own (a flood's copies are not shared),
// owned by the link that carries it until it is delivered: after the
// receiving node's Advance, the buffer goes back to the pool. A buffer
// dropped on the way (a reset, a gone end, a closed queue) is left to the
// garbage collector. Reusing buffers last in, first out keeps the bytes
// of the messages in flight in few, recently touched cache lines, and
// spares the collector most of the simulator's allocations.
type msgPool struct {
	free [msgClasses][][]byte // free[k]: buffers of capacity minMsgCap<<k
}

const (
	minMsgCapLog = 6 // 64 bytes
	minMsgCap    = 1 << minMsgCapLog
	msgClasses   = 6 // up to 2 KiB; larger messages are allocated
)

// class returns the size class of a message of n bytes, msgClasses when
// it has none.
func msgClass(n int) int {
	if n <= minMsgCap {
		return 0
	}
	return min(bits.Len(uint(n-1))-minMsgCapLog, msgClasses)
}

// copyOf returns a pooled copy of msg.
func (p *msgPool) copyOf(msg []byte) []byte {
	k := msgClass(len(msg))
	if k == msgClasses {
		return append([]byte(nil), msg...)
	}
	var b []byte
	if f := p.free[k]; len(f) > 0 {
		b = f[len(f)-1][:len(msg)]
		f[len(f)-1] = nil
		p.free[k] = f[:len(f)-1]
	} else {
		b = make([]byte, len(msg), minMsgCap<<k)
	}
	copy(b, msg)
	return b
}

// put gives b back to the pool; nobody may use it after. Buffers the
// pool did not make are left to the garbage collector.
func (p *msgPool) put(b []byte) {
	c := cap(b)
	if c < minMsgCap || c&(c-1) != 0 {
		return
	}
	k := bits.Len(uint(c)) - 1 - minMsgCapLog
	if k >= msgClasses {
		return
	}
	p.free[k] = append(p.free[k], b[:0])
}
