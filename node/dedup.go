package node

import (
	"time"

	"github.com/invpn/invpn/wire"
)

// windowSize bounds the ids remembered per source.
const windowSize = 64

// window remembers the ids seen from one source over a span of time, so
// that broadcasts arriving out of order over paths of different latency
// are each delivered once (defect 2: the original kept only the highest id
// and dropped a broadcast that arrived after a newer one). An id at or
// below floor is treated as seen: floor rises to each id that leaves the
// window, by age or because the window is full, so nothing is delivered
// twice; a broadcast delayed past the span may be lost. The ring starts
// small and grows to windowSize only for sources that send that much:
// every node keeps a window per source, so their size is the mesh's
// memory squared.
type window struct {
	floor uint64
	ids   []uint64 // a ring, oldest at head
	at    []int64  // when each id was seen, UnixNano on the node's clock
	head  int
	n     int
}

// check reports whether id is new, and records it if so.
func (w *window) check(id uint64, now time.Time, span time.Duration) bool {
	w.expire(now, span)
	if id <= w.floor {
		return false
	}
	for i := range w.n {
		if w.ids[(w.head+i)%len(w.ids)] == id {
			return false
		}
	}
	if w.n == len(w.ids) {
		if len(w.ids) < windowSize {
			w.grow()
		} else {
			w.pop()
		}
	}
	j := (w.head + w.n) % len(w.ids)
	w.ids[j], w.at[j] = id, now.UnixNano()
	w.n++
	return true
}

// grow doubles the ring (from 4), keeping the order of its entries.
func (w *window) grow() {
	size := min(max(4, 2*len(w.ids)), windowSize)
	ids, at := make([]uint64, size), make([]int64, size)
	for i := range w.n {
		k := (w.head + i) % len(w.ids)
		ids[i], at[i] = w.ids[k], w.at[k]
	}
	w.ids, w.at, w.head = ids, at, 0
}

// expire forgets ids seen longer than span ago.
func (w *window) expire(now time.Time, span time.Duration) {
	limit := now.Add(-span).UnixNano()
	for w.n > 0 && w.at[w.head] <= limit {
		w.pop()
	}
}

func (w *window) pop() {
	w.floor = max(w.floor, w.ids[w.head])
	w.head = (w.head + 1) % len(w.ids)
	w.n--
}

func (w *window) empty() bool { return w.n == 0 }

// seenIDs holds one window per source.
type seenIDs map[wire.MAC]*window

// first reports whether id from src is seen for the first time within
// span, and records it.
func (s seenIDs) first(src wire.MAC, id uint64, now time.Time, span time.Duration) bool {
	w := s[src]
	if w == nil {
		w = &window{}
		s[src] = w
	}
	return w.check(id, now, span)
}

// expire forgets what was seen longer than span ago, and the windows
// left empty: an empty window holds only its floor, and every id below it
// was seen more than span ago, so no copy is still on its way.
func (s seenIDs) expire(now time.Time, span time.Duration) {
	for mac, w := range s {
		w.expire(now, span)
		if w.empty() {
			delete(s, mac)
		}
	}
}

// dedup is what the node remembers of flooded messages, one set of windows
// per kind (defect 2: the original's broadcasts and health requests shared
// one counter and dropped each other).
type dedup struct {
	frames seenIDs // 0x81 and 0x82, keyed by source
	health seenIDs // 0x02, keyed by requester
	asks   seenIDs // 0x86, keyed by requester
}

func newDedup() dedup { return dedup{frames: seenIDs{}, health: seenIDs{}, asks: seenIDs{}} }

// expire runs seenIDs.expire on every kind.
func (d *dedup) expire(now time.Time, span time.Duration) {
	d.frames.expire(now, span)
	d.health.expire(now, span)
	d.asks.expire(now, span)
}
