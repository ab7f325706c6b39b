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

// flightPool recycles the arrays that hold the messages on the wire of
// a direction (direction.inFlight). A flood arrives in bursts: one
// direction may hold hundreds of messages for a moment and then none.
// An array beyond the smallest sizes goes back to the pool when its
// direction drains, so that the memory held is what the busiest instant
// needs, not the sum over directions of each one's busiest.
type flightPool struct {
	free [][][]inFlight // free[k]: empty, cleared arrays of capacity minFlights<<k
}

// minFlights is the capacity from which arrays are pooled; smaller ones
// stay with their direction.
const minFlights = 16

// grow returns an array with twice the room of fl (which is full),
// holding its messages; fl is cleared and pooled.
func (p *flightPool) grow(fl []inFlight) []inFlight {
	if 2*cap(fl) < minFlights {
		return append(make([]inFlight, 0, max(2*cap(fl), 2)), fl...)
	}
	k := 0
	for minFlights<<k < 2*cap(fl) {
		k++
	}
	var out []inFlight
	if k < len(p.free) && len(p.free[k]) > 0 {
		f := p.free[k]
		out = f[len(f)-1]
		f[len(f)-1] = nil
		p.free[k] = f[:len(f)-1]
	} else {
		out = make([]inFlight, 0, minFlights<<k)
	}
	out = append(out, fl...)
	clear(fl)
	p.put(fl)
	return out
}

// put takes back fl, whose entries are cleared, if it is large enough
// to pool, and returns what its direction keeps: nil, or fl emptied.
func (p *flightPool) put(fl []inFlight) []inFlight {
	c := cap(fl)
	if c < minFlights || c&(c-1) != 0 {
		return fl[:0]
	}
	k := 0
	for minFlights<<k < c {
		k++
	}
	for len(p.free) <= k {
		p.free = append(p.free, nil)
	}
	p.free[k] = append(p.free[k], fl[:0])
	return nil
}
