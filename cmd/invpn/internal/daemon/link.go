package daemon

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// Batching of one link's writes: the writer takes at most this many
// messages, or about this many bytes, per WriteMessages call.
const (
	maxBatchMsgs  = 64
	maxBatchBytes = 128 << 10
)

// peerLink is the daemon's side of one link: the link, its send queue and
// the channels that stop its goroutines.
type peerLink struct {
	id   node.LinkID
	link transport.Link
	peer wire.MAC
	addr netip.AddrPort

	// Owned by the loop.
	framesIn, bytesIn uint64
	queueDrops        uint64

	// Written by the writer goroutine, read by the loop.
	framesOut, bytesOut atomic.Uint64
	writes              atomic.Uint64 // WriteMessages calls: framesOut/writes is the batch size

	mu   sync.Mutex     // guards q and werr
	q    node.SendQueue // the loop pushes, the writer pops
	werr error          // why the writer stopped

	limit int

	// Back-pressure (hold): load is the weight (node.Weight) of the data
	// in q plus that of the frames readers have handed the loop for this
	// link and the loop has not yet taken. The link is congested from the
	// moment load reaches 3/4 of its limit until the writer brings it
	// below 1/4; drained is closed then. congested and load are written
	// under mu (load also by readers and the loop) and read without it.
	load      atomic.Int64
	congested atomic.Bool
	episode   uint64        // guarded by mu: counts congestion episodes
	drained   chan struct{} // guarded by mu

	wake      chan struct{} // holds a token when q may be non-empty
	closed    chan struct{} // closed by close
	closeOnce sync.Once
}

// Back-pressure is per link. A reader (the TAP reader, or a link reader
// whose messages are relayed) looks at where the frame in its hand goes
// (hopTable) and counts it in that link's load until the loop has taken
// it, so that frames on their way to the loop count as well as those in
// the link's queue. While the link is congested the reader holds the
// frame instead of handing over one that would be dropped at the full
// queue. The host's TCP then meets the TAP device's queue (and TCP small
// queues) instead of losses, which halve its congestion window, and
// frames for other links are not dropped on this one's account. A reader
// holds a frame while the congested link's writer keeps writing, at most
// maxHold per congestion episode, and gives up at once on a writer that
// completed nothing for holdCheck: a stuck or slow peer then loses frames
// rather than holding up the frames behind it, for other peers, in the
// same reader.
const (
	holdCheck = 10 * time.Millisecond
	maxHold   = 50 * time.Millisecond
)

// holder is one reader's side of back-pressure: it remembers the
// congestion episode it last gave up waiting for. Owned by one reader
// goroutine.
type holder struct {
	timer    *time.Timer
	gaveUp   *peerLink
	gaveUpEp uint64
}

func newHolder() *holder {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &holder{timer: t}
}

// hold counts a frame of weight w for pl in its load and first, while pl
// is congested, waits until pl's queue drains, pl closes, or pl's writer
// makes no progress, at most maxHold per episode. It returns false when
// done is closed. The loop takes w off again (inbound.held).
func (h *holder) hold(pl *peerLink, w int, done <-chan struct{}) bool {
	defer pl.load.Add(int64(w))
	if !pl.congested.Load() && pl.load.Load()+int64(w) < int64(pl.high()) {
		return true
	}
	pl.mu.Lock()
	if pl.load.Load()+int64(w) >= int64(pl.high()) {
		pl.congest()
	}
	ep, drained, congested := pl.episode, pl.drained, pl.congested.Load()
	pl.mu.Unlock()
	if !congested || (h.gaveUp == pl && h.gaveUpEp == ep) {
		return true
	}
	defer h.timer.Stop()
	writes := pl.writes.Load()
	for waited := holdCheck; ; waited += holdCheck {
		h.timer.Reset(holdCheck)
		select {
		case <-drained:
			return true
		case <-pl.closed:
			return true
		case <-done:
			return false
		case <-h.timer.C:
		}
		w := pl.writes.Load()
		if w == writes || waited >= maxHold {
			h.gaveUp, h.gaveUpEp = pl, ep
			return true
		}
		writes = w
	}
}

// hopTable maps unicast destinations to the links their frames leave by,
// for the readers' back-pressure. The loop publishes a new map when
// routes or links change (at most every hopRebuild); readers only load
// it. A stale entry costs at most a hold on the wrong link.
type hopTable struct {
	m atomic.Pointer[map[wire.MAC]*peerLink]
}

// hopRebuild is the least time between two rebuilds of the hop table.
const hopRebuild = 50 * time.Millisecond

// link returns the link frames to dst leave by, nil if unknown.
func (t *hopTable) link(dst wire.MAC) *peerLink {
	if m := t.m.Load(); m != nil {
		return (*m)[dst]
	}
	return nil
}

func newPeerLink(id node.LinkID, l transport.Link, limit int) *peerLink {
	pl := &peerLink{
		id: id, link: l, peer: l.Peer(), addr: l.RemoteAddr(), limit: limit,
		wake: make(chan struct{}, 1), closed: make(chan struct{}),
	}
	pl.q.DataLimit = limit
	return pl
}

// push queues a copy of s for the writer; false when s is data and the
// queue is full (node.SendQueue).
func (pl *peerLink) push(s node.Send) bool {
	pl.mu.Lock()
	before := pl.q.Data()
	ok := pl.q.Push(s)
	if pl.load.Add(int64(pl.q.Data()-before)) >= int64(pl.high()) {
		pl.congest()
	}
	pl.mu.Unlock()
	if ok {
		select {
		case pl.wake <- struct{}{}:
		default:
		}
	}
	return ok
}

// high and low are the loads at which the link becomes congested and
// stops being so.
func (pl *peerLink) high() int { return pl.limit * 3 / 4 }
func (pl *peerLink) low() int  { return pl.limit / 4 }

// congest starts a congestion episode, unless one is on. Called with mu
// held.
func (pl *peerLink) congest() {
	if !pl.congested.Load() {
		pl.episode++
		pl.drained = make(chan struct{})
		pl.congested.Store(true)
	}
}

// taken takes a frame of weight w that a reader counted off the load,
// once the loop has handed it to the node, and ends the congestion
// episode if that brings the load below low (the frame may have gone
// nowhere, so the writer would not see it).
func (pl *peerLink) taken(w int) {
	if pl.load.Add(-int64(w)) < int64(pl.low()) && pl.congested.Load() {
		pl.mu.Lock()
		if pl.load.Load() < int64(pl.low()) {
			pl.drain()
		}
		pl.mu.Unlock()
	}
}

// drain ends a congestion episode, if one is on. Called with mu held.
func (pl *peerLink) drain() {
	if pl.congested.Load() {
		pl.congested.Store(false)
		close(pl.drained)
	}
}

func (pl *peerLink) queued() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.q.Len()
}

func (pl *peerLink) writeErr() error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.werr
}

// close closes the link and stops the writer; the reader then sees EOF.
func (pl *peerLink) close() {
	pl.closeOnce.Do(func() {
		close(pl.closed)
		pl.mu.Lock()
		pl.drain()
		pl.mu.Unlock()
		pl.link.Close()
	})
}

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
func readMessage(l transport.Link, into transport.IntoReader) (inbound, error) {
	if into == nil {
		msg, err := l.ReadMessage()
		if err != nil {
			return inbound{}, err
		}
		b := getBuf(linkHeadroom + len(msg))
		return inbound{buf: b, off: linkHeadroom, n: copy((*b)[linkHeadroom:], msg)}, nil
	}
	b := getBuf(largeBuf)
	n, err := into.ReadMessageInto((*b)[linkHeadroom:])
	if err != nil {
		putBuf(b)
		return inbound{}, err
	}
	if linkHeadroom+n <= smallBuf {
		sb := getBuf(linkHeadroom + n)
		copy((*sb)[linkHeadroom:], (*b)[linkHeadroom:linkHeadroom+n])
		putBuf(b)
		b = sb
	}
	return inbound{buf: b, off: linkHeadroom, n: n}, nil
}

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
func (d *Daemon) readTAPFrame(size int) (inbound, error) {
	if d.offload == nil {
		b := getBuf(size)
		n, err := d.tap.ReadFrame((*b)[:size])
		if err != nil {
			putBuf(b)
			return inbound{}, err
		}
		return inbound{buf: b, n: n}, nil
	}
	b := getBuf(largeBuf)
	n, m, err := d.offload.ReadOffload((*b)[tapHeadroom:])
	if err != nil {
		putBuf(b)
		return inbound{}, err
	}
	const at = tapHeadroom + gso.HeaderLen
	if n <= smallBuf {
		sb := getBuf(n)
		copy(*sb, (*b)[at:at+n])
		putBuf(b)
		return inbound{buf: sb, n: n, offload: m}, nil
	}
	return inbound{buf: b, off: at, n: n, offload: m}, nil
}

// tapHeadroom is where the TAP reader puts the virtio-net header in a
// large buffer: with the header's own 10 bytes, the room before a
// super-frame holds the 0x90 the node builds around it in place
// (node.OffloadFromTAP) and the message's 2-byte length.
const tapHeadroom = 2 + wire.GSOFrameOverhead - gso.HeaderLen

// tapQueue is how many frames wait for the TAP writer; the loop waits
// when they are all taken (the TAP device is the one way in for every
// frame, so there is nothing to pass ahead meanwhile).
const tapQueue = 64

// outbound is a frame for the TAP writer in a pooled buffer, which the
// writer returns: the frame is (*buf)[off:off+n], and off is at least
// gso.HeaderLen, room for a virtio-net header in place.
type outbound struct {
	buf     *[]byte
	off, n  int
	offload gso.Meta
}

// queueTAP hands one of the node's frames to the TAP writer. A frame in
// the buffer of one of the inputs being processed (d.held), with room
// for a header before it, goes in that buffer, which the writer then
// owns; any other is copied. Called by the loop.
func (d *Daemon) queueTAP(f node.TAPFrame) {
	o := outbound{n: len(f.Frame), offload: f.Offload}
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
func (d *Daemon) writeTAP(o outbound) error {
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

// Buffer pools: inbound messages and frames travel to the loop in pooled
// buffers, small ones for ordinary frames and large ones for the rest: a
// message, or a super-frame read from the TAP after its virtio-net header.
const (
	smallBuf = 2048
	largeBuf = gso.HeaderLen + wire.MaxMessage
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}
)

// getBuf returns a buffer of at least n bytes, n <= largeBuf.
func getBuf(n int) *[]byte {
	if n <= smallBuf {
		return smallPool.Get().(*[]byte)
	}
	return largePool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	switch len(*b) {
	case smallBuf:
		smallPool.Put(b)
	case largeBuf:
		largePool.Put(b)
	}
}
