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

	fc        *flowControl
	congested bool // guarded by mu: counted in fc.congested
	limit     int

	wake      chan struct{} // holds a token when q may be non-empty
	closed    chan struct{} // closed by close
	closeOnce sync.Once
}

// flowControl lets the TAP reader and the link readers wait briefly for a link queue to drain
// instead of reading frames that would be dropped at a full queue. A link
// is congested from the moment its queue reaches 3/4 of its limit until its
// writer brings it below 1/4. Traffic from the host's own TCP then meets
// the TAP device's queue (and TCP small queues) instead of losses, which
// halve its congestion window. The wait is bounded per congestion episode
// (maxStall), so a stuck peer holds up traffic to other peers at most that
// long.
type flowControl struct {
	congested atomic.Int32  // links congested now
	epoch     atomic.Uint64 // counts links becoming congested

	mu      sync.Mutex
	drained chan struct{} // closed (and replaced) when congested drops to 0
}

// maxStall is the longest a reader waits for one congestion episode.
const maxStall = 2 * time.Millisecond

func newFlowControl() *flowControl { return &flowControl{drained: make(chan struct{})} }

func (fc *flowControl) enter() {
	fc.epoch.Add(1)
	fc.congested.Add(1)
}

func (fc *flowControl) leave() {
	if fc.congested.Add(-1) == 0 {
		fc.mu.Lock()
		close(fc.drained)
		fc.drained = make(chan struct{}) // once per episode, not per frame
		fc.mu.Unlock()
	}
}

// staller is one reader's side of flowControl: it remembers the episode it
// gave up waiting for. Owned by one reader goroutine.
type staller struct {
	fc     *flowControl
	timer  *time.Timer
	gaveUp uint64
}

func newStaller(fc *flowControl) *staller {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &staller{fc: fc, timer: t}
}

// wait returns at once unless a link is congested; then it waits until no
// link is, for at most maxStall per episode. It returns false when done is
// closed.
func (s *staller) wait(done <-chan struct{}) bool {
	if s.fc.congested.Load() == 0 {
		return true
	}
	ep := s.fc.epoch.Load()
	if ep == s.gaveUp {
		return true
	}
	s.fc.mu.Lock()
	ch := s.fc.drained
	s.fc.mu.Unlock()
	if s.fc.congested.Load() == 0 {
		return true
	}
	s.timer.Reset(maxStall)
	defer s.timer.Stop()
	select {
	case <-ch:
	case <-s.timer.C:
		s.gaveUp = ep
	case <-done:
		return false
	}
	return true
}

func newPeerLink(id node.LinkID, l transport.Link, limit int, fc *flowControl) *peerLink {
	pl := &peerLink{
		id: id, link: l, peer: l.Peer(), addr: l.RemoteAddr(), fc: fc, limit: limit,
		wake: make(chan struct{}, 1), closed: make(chan struct{}),
	}
	pl.q.DataLimit = limit
	return pl
}

// push queues a copy of s for the writer; false when s is data and the
// queue is full (node.SendQueue).
func (pl *peerLink) push(s node.Send) bool {
	pl.mu.Lock()
	ok := pl.q.Push(s)
	if !pl.congested && pl.q.Data() >= pl.limit*3/4 {
		pl.congested = true
		pl.fc.enter()
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
		if pl.congested {
			pl.congested = false
			pl.fc.leave()
		}
		pl.mu.Unlock()
		pl.link.Close()
	})
}

// readLink runs in its own goroutine per link: it copies each message into
// a pooled buffer for the loop and reports the end of the link.
func (d *Daemon) readLink(pl *peerLink) {
	defer d.wg.Done()
	st := newStaller(d.fc)
	for {
		if !st.wait(d.done) {
			return
		}
		msg, err := pl.link.ReadMessage()
		if err != nil {
			select {
			case d.down <- linkDown{link: pl.id, err: err}:
			case <-d.done:
			}
			return
		}
		b := getBuf(len(msg))
		n := copy(*b, msg)
		select {
		case d.in <- inbound{link: pl.id, buf: b, n: n}:
		case <-d.done:
			putBuf(b)
			return
		}
	}
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
			for len(batch) < maxBatchMsgs && size < maxBatchBytes {
				b, ok := pl.q.Pop()
				if !ok {
					break
				}
				batch = append(batch, b)
				size += len(b) + 2
			}
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
			if pl.congested && pl.q.Data() < pl.limit/4 {
				pl.congested = false
				pl.fc.leave()
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
	st := newStaller(d.fc)
	for {
		if !st.wait(d.done) {
			return
		}
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
	n, m, err := d.offload.ReadOffload(*b)
	if err != nil {
		putBuf(b)
		return inbound{}, err
	}
	if n <= smallBuf {
		sb := getBuf(n)
		copy(*sb, (*b)[gso.HeaderLen:gso.HeaderLen+n])
		putBuf(b)
		return inbound{buf: sb, n: n, offload: m}, nil
	}
	return inbound{buf: b, off: gso.HeaderLen, n: n, offload: m}, nil
}

// writeTAP writes one of the node's frames to the TAP device: a
// super-frame whole to a device with offloads, cut into ordinary frames
// for one without.
func (d *Daemon) writeTAP(f node.TAPFrame) error {
	if d.offload != nil {
		return d.offload.WriteOffload(f.Offload, f.Frame)
	}
	if !f.Offload.IsGSO() {
		return d.tap.WriteFrame(f.Frame)
	}
	if d.segments == nil {
		d.segments = make([]byte, wire.MaxMessage)
	}
	var werr error
	err := gso.Segment(f.Offload, f.Frame, d.segments, func(seg []byte) {
		if err := d.tap.WriteFrame(seg); err != nil && werr == nil {
			werr = err
		}
	})
	if err != nil {
		return fmt.Errorf("cut a %d-byte super-frame: %w", len(f.Frame), err)
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
