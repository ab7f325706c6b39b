package daemon

// Inside to outside: frames from the host's TAP device to the links.
//
// The stages, in the order a frame passes them:
//
//  1. readTAP reads a frame, or a TCP super-frame after its virtio-net
//     header, into a pooled buffer with room before it (readTAPFrame).
//  2. It holds the frame while the link it goes to is congested
//     (holder.hold, backpressure.go) and hands it to the loop (d.in).
//  3. The loop (Daemon.receive, daemon.go) gives it to the node
//     (node.FrameFromTAP, node.OffloadFromTAP), which routes it and
//     encodes the message: a 0x90 in place, in the room before a
//     super-frame.
//  4. Daemon.process copies each Send into its link's queue
//     (peerLink.push, peerlink.go) and the buffer goes back to the pool.
//  5. writeLink takes the queue in batches and writes them to the link
//     (for TLS: framing, encryption, the socket).

import (
	"errors"
	"io"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev"
	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// readTAP runs in its own goroutine: it reads frames from the TAP device
// into pooled buffers for the loop until the device is closed.
func (d *Daemon) readTAP() {
	defer d.wg.Done()
	size := d.tap.MTU() + tapdev.EthernetHeaderLen + 8 // room for two VLAN tags
	var backoff time.Duration
	h := newHolder()
	for {
		m, err := d.readTAPFrame(size)
		if err != nil {
			if errors.Is(err, tapdev.ErrClosed) {
				return
			}
			select {
			case <-d.done:
				return
			default:
			}
			if errors.Is(err, io.ErrShortBuffer) || errors.Is(err, tapdev.ErrFrameLost) {
				d.log.Debug("TAP frame lost", "tap", d.tap.Name(), "err", err)
				continue // one frame lost
			}
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			d.log.Warn("TAP read failed", "tap", d.tap.Name(), "err", err)
			select {
			case <-time.After(backoff):
			case <-d.done:
				return
			}
			continue
		}
		backoff = 0
		if m.n < 6 {
			putBuf(m.buf)
			continue // a runt: the node would drop it
		}
		if dst := wire.MAC((*m.buf)[m.off:]); !dst.IsGroup() {
			if m.held = d.hops.link(dst); m.held != nil {
				m.weight = node.Weight((*m.buf)[m.off : m.off+m.n])
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

// readTAPFrame reads one frame of at most size bytes into a pooled
// buffer; from a device with offloads, one frame or super-frame into a
// large buffer, after its virtio-net header, moved to a small buffer when
// it fits one so that frames waiting for the loop hold little memory.
func (d *Daemon) readTAPFrame(size int) (loopInput, error) {
	if d.offload == nil {
		b := getBuf(size)
		n, err := d.tap.ReadFrame((*b)[:size])
		if err != nil {
			putBuf(b)
			return loopInput{}, err
		}
		return loopInput{buf: b, n: n}, nil
	}
	b := getBuf(largeBuf)
	n, m, err := d.offload.ReadOffload((*b)[tapHeadroom:])
	if err != nil {
		putBuf(b)
		return loopInput{}, err
	}
	const at = tapHeadroom + gso.HeaderLen
	if n <= smallBuf {
		sb := getBuf(n)
		copy(*sb, (*b)[at:at+n])
		putBuf(b)
		return loopInput{buf: sb, n: n, offload: m}, nil
	}
	return loopInput{buf: b, off: at, n: n, offload: m}, nil
}

// tapHeadroom is where the TAP reader puts the virtio-net header in a
// large buffer: with the header's own 10 bytes, the room before a
// super-frame holds the 0x90 the node builds around it in place
// (node.OffloadFromTAP) and the message's 2-byte length.
const tapHeadroom = 2 + wire.GSOFrameOverhead - gso.HeaderLen

// Batching of one link's writes: the writer takes at most this many
// messages, or about this many bytes, per WriteMessages call.
const (
	maxBatchMsgs  = 64
	maxBatchBytes = 128 << 10
)

// writeLink runs in its own goroutine per link: it drains the link's queue
// in batches until the link is closed. A write error closes the link.
func (d *Daemon) writeLink(pl *peerLink) {
	defer d.wg.Done()
	batch := make([][]byte, 0, maxBatchMsgs)
	for {
		select {
		case <-pl.wake:
		case <-pl.closed:
			return
		}
		for {
			size := 0
			pl.mu.Lock()
			before := pl.q.Data()
			for len(batch) < maxBatchMsgs && size < maxBatchBytes {
				b, ok := pl.q.Pop()
				if !ok {
					break
				}
				batch = append(batch, b)
				size += len(b) + 2
			}
			popped := before - pl.q.Data()
			pl.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			err := pl.link.WriteMessages(batch)
			if err == nil {
				pl.writes.Add(1)
				pl.framesOut.Add(uint64(len(batch)))
				pl.bytesOut.Add(uint64(size))
			}
			pl.mu.Lock()
			for _, b := range batch {
				pl.q.Release(b)
			}
			if err != nil && pl.werr == nil {
				pl.werr = err
			}
			if pl.load.Add(-int64(popped)) < int64(pl.low()) {
				pl.drain()
			}
			pl.mu.Unlock()
			clear(batch)
			batch = batch[:0]
			if err != nil {
				pl.close()
				return
			}
		}
	}
}
