package sim

import (
	"encoding/binary"
)

// msgPool recycles the buffers of messages on the wire. A node's send is
// copied once, into a pooled buffer shared by the links it goes out on
// (a flood sends the same bytes on many); the buffer counts the links
// that hold it, and goes back to the pool when the last one has
// delivered it (after the receiving node's Advance). A buffer dropped on
// the way (a reset, a gone end, a closed queue) is left to the garbage
// collector. Reusing buffers last in, first out keeps the bytes of the
// messages in flight in few, recently touched cache lines, and spares
// the collector most of the simulator's allocations.
//
// The count is kept in the last two bytes of the buffer's capacity,
// beyond the message: everyone else sees the message clipped to its
// length.
type msgPool struct {
	free [msgClasses][][]byte // free[k]: buffers of capacity msgCap(k)
}

// The size classes of buffers: every 16 bytes up to 512 (as small as the
// messages are, and as the allocator's own), then 1 KiB and 2 KiB;
// larger messages are allocated.
const (
	msgFine     = 32 // classes of 16, 32, ... 512 bytes
	msgClasses  = msgFine + 2
	msgMaxCap   = 2048
	msgRefBytes = 2 // the count, beyond the message
)

// msgCap returns the capacity of the buffers of class k.
func msgCap(k int) int {
	if k < msgFine {
		return 16 * (k + 1)
	}
	return 1024 << (k - msgFine)
}

// msgClass returns the size class of a buffer for a message of n bytes,
// msgClasses when it has none.
func msgClass(n int) int {
	switch n += msgRefBytes; {
	case n <= 16*msgFine:
		return (n+15)/16 - 1
	case n <= 1024:
		return msgFine
	case n <= msgMaxCap:
		return msgFine + 1
	}
	return msgClasses
}

// pooled returns the class of buffer b, and whether the pool made it:
// larger messages have a capacity above every class's.
func pooled(b []byte) (int, bool) { return pooledCap(cap(b)) }

// pooledCap returns the class whose buffers have capacity c, if one has.
func pooledCap(c int) (int, bool) {
	switch {
	case c > 0 && c <= 16*msgFine && c%16 == 0:
		return c/16 - 1, true
	case c == 1024:
		return msgFine, true
	case c == msgMaxCap:
		return msgFine + 1, true
	}
	return 0, false
}

// share returns a copy of msg, held by nobody yet: each link that takes
// it calls hold.
func (p *msgPool) share(msg []byte) []byte {
	k := msgClass(len(msg))
	if k == msgClasses {
		c := len(msg)
		if _, ok := pooledCap(c); ok {
			c++ // a capacity no class has
		}
		b := make([]byte, len(msg), c)
		copy(b, msg)
		return b
	}
	var b []byte
	if f := p.free[k]; len(f) > 0 {
		b = f[len(f)-1]
		f[len(f)-1] = nil
		p.free[k] = f[:len(f)-1]
	} else {
		b = make([]byte, msgCap(k))
	}
	b = b[:cap(b)]
	binary.LittleEndian.PutUint16(b[len(b)-msgRefBytes:], 0)
	return b[:copy(b, msg)]
}

// hold notes one more link holding b.
func (p *msgPool) hold(b []byte) {
	if _, ok := pooled(b); ok {
		r := b[cap(b)-msgRefBytes : cap(b)]
		binary.LittleEndian.PutUint16(r, binary.LittleEndian.Uint16(r)+1)
	}
}

// release notes that a link delivered b: once the last has, b goes back
// to the pool, and nobody may use it after.
func (p *msgPool) release(b []byte) {
	k, ok := pooled(b)
	if !ok {
		return
	}
	r := b[cap(b)-msgRefBytes : cap(b)]
	n := binary.LittleEndian.Uint16(r) - 1
	binary.LittleEndian.PutUint16(r, n)
	if n == 0 {
		p.free[k] = append(p.free[k], b[:0])
	}
}
