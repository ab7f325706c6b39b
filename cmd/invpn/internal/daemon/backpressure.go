package daemon

import (
	"sync/atomic"
	"time"

	"github.com/invpn/invpn/wire"
)

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
// done is closed. The loop takes w off again (loopInput.held).
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
