package daemon

// peerLink is the daemon's side of one link: its send queue, the
// goroutines' stop channels and its congestion state (backpressure.go).

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
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

func (pl *peerLink) low() int { return pl.limit / 4 }

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
