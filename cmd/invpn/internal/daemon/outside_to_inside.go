package daemon

// Outside to inside: messages from the links to the host's TAP device,
// or on to another link.
//
// The stages, in the order a message passes them:
//
//  1. readLink reads a message into a pooled buffer with room before it
//     (readMessage), straight from the link when it can
//     (transport.IntoReader).
//  2. A frame relayed to another link is held while that link is
//     congested (holder.hold, backpressure.go); then it goes to the loop
//     (d.in).
//  3. The loop (Daemon.receive, daemon.go) gives it to the node
//     (node.Receive), which answers, relays (a Send: stages 4 and 5 of
//     inside_to_outside.go) or delivers it (Ready.TAP).
//  4. queueTAP hands a frame for our TAP to the TAP writer, in the
//     input's own buffer when there is room before the frame for the
//     virtio-net header, else copied.
//  5. writeTAPFrames writes it (writeTAP: whole to a device with
//     offloads, cut for one without) and returns the buffer.

import (
	"errors"
	"fmt"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// readLink runs in its own goroutine per link: it reads each message into
// a pooled buffer for the loop, at linkHeadroom, and reports the end of
// the link.
func (d *Daemon) readLink(pl *peerLink) {
	defer d.wg.Done()
	h := newHolder()
	into, _ := pl.link.(transport.IntoReader)
	for {
		m, err := readMessage(pl.link, into)
		if err != nil {
			select {
			case d.down <- linkDown{link: pl.id, err: err}:
			case <-d.done:
			}
			return
		}
		m.link = pl.id
		msg := (*m.buf)[m.off : m.off+m.n]
		if dst, ok := wire.UnicastDst(msg); ok {
			if m.held = d.hops.link(dst); m.held != nil {
				m.weight = node.Weight(msg)
				if !h.hold(m.held, m.weight, d.done) {
					putBuf(m.buf)
					return
				}
			}
		}
		select {
		case d.in <- m:
		case <-d.done:
			putBuf(m.buf)
			return
		}
	}
}

// linkHeadroom is where a link reader puts a message in its buffer: with
// the 2 bytes of a 0x84's type and hops, the room before its frame holds
// a virtio-net header, which the TAP writer then puts there in place.
const linkHeadroom = gso.HeaderLen - 2

// readMessage reads one message from l into a pooled buffer at
// linkHeadroom: straight into a large buffer from a link that can
// (into), moved to a small one when it fits so that messages waiting for
// the loop hold little memory; otherwise copied out of the link's own
// buffer.
func readMessage(l transport.Link, into transport.IntoReader) (loopInput, error) {
	if into == nil {
		msg, err := l.ReadMessage()
		if err != nil {
			return loopInput{}, err
		}
		b := getBuf(linkHeadroom + len(msg))
		return loopInput{buf: b, off: linkHeadroom, n: copy((*b)[linkHeadroom:], msg)}, nil
	}
	b := getBuf(largeBuf)
	n, err := into.ReadMessageInto((*b)[linkHeadroom:])
	if err != nil {
		putBuf(b)
		return loopInput{}, err
	}
	if linkHeadroom+n <= smallBuf {
		sb := getBuf(linkHeadroom + n)
		copy((*sb)[linkHeadroom:], (*b)[linkHeadroom:linkHeadroom+n])
		putBuf(b)
		b = sb
	}
	return loopInput{buf: b, off: linkHeadroom, n: n}, nil
}

// tapQueue is how many frames wait for the TAP writer; the loop waits
// when they are all taken (the TAP device is the one way in for every
// frame, so there is nothing to pass ahead meanwhile).
const tapQueue = 64

// tapWrite is a frame for the TAP writer in a pooled buffer, which the
// writer returns: the frame is (*buf)[off:off+n], and off is at least
// gso.HeaderLen, room for a virtio-net header in place.
type tapWrite struct {
	buf     *[]byte
	off, n  int
	offload gso.Meta
}

// queueTAP hands one of the node's frames to the TAP writer. A frame in
// the buffer of one of the inputs being processed (d.held), with room
// for a header before it, goes in that buffer, which the writer then
// owns; any other is copied. Called by the loop.
func (d *Daemon) queueTAP(f node.TAPFrame) {
	o := tapWrite{n: len(f.Frame), offload: f.Offload}
	for i := range d.held {
		if in := &d.held[i]; in.buf != nil {
			if off, ok := within(*in.buf, f.Frame); ok && off >= gso.HeaderLen {
				o.buf, o.off, in.buf = in.buf, off, nil
				break
			}
		}
	}
	if o.buf == nil {
		o.buf, o.off = getBuf(gso.HeaderLen+len(f.Frame)), gso.HeaderLen
		copy((*o.buf)[o.off:], f.Frame)
	}
	select {
	case d.tapOut <- o:
	case <-d.done:
		putBuf(o.buf)
	}
}

// within reports whether b is a slice of buf's array that ends where
// buf's does (a plain reslice, as the node makes of a message it
// decodes), and where in buf it starts.
func within(buf, b []byte) (int, bool) {
	if cap(b) == 0 || cap(b) > cap(buf) {
		return 0, false
	}
	full, part := buf[:cap(buf)], b[:cap(b)]
	if &full[len(full)-1] != &part[len(part)-1] {
		return 0, false
	}
	return cap(buf) - cap(b), true
}

// writeTAPFrames runs in its own goroutine: it writes the loop's frames
// to the TAP device until the daemon stops, so that a TAP write (which
// takes the frame up the host's stack) never holds up the loop.
func (d *Daemon) writeTAPFrames() {
	defer d.wg.Done()
	for {
		select {
		case o := <-d.tapOut:
			if err := d.writeTAP(o); err != nil && !errors.Is(err, tapdev.ErrClosed) {
				d.log.Warn("TAP write failed", "tap", d.tap.Name(), "len", o.n, "err", err)
			}
			putBuf(o.buf)
		case <-d.done:
			return
		}
	}
}

// writeTAP writes one of the node's frames to the TAP device: a
// super-frame whole to a device with offloads, cut into ordinary frames
// for one without.
func (d *Daemon) writeTAP(o tapWrite) error {
	frame := (*o.buf)[o.off : o.off+o.n]
	if d.offload != nil {
		return d.offload.WriteOffload(o.offload, (*o.buf)[o.off-gso.HeaderLen:o.off+o.n])
	}
	if !o.offload.IsGSO() {
		return d.tap.WriteFrame(frame)
	}
	if d.segments == nil {
		d.segments = make([]byte, wire.MaxMessage)
	}
	var werr error
	err := gso.Segment(o.offload, frame, d.segments, func(seg []byte) {
		if err := d.tap.WriteFrame(seg); err != nil && werr == nil {
			werr = err
		}
	})
	if err != nil {
		return fmt.Errorf("cut a %d-byte super-frame: %w", len(frame), err)
	}
	return werr
}
