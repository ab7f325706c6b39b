package daemon

import (
	"log/slog"
	"maps"
	"net/netip"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/peercache"
	"github.com/invpn/invpn/wire"
)

// cacheFile is the in-memory peer cache and id floor, saved with
// peercache.Save at most once per interval. Owned by the loop.
type cacheFile struct {
	path     string
	interval time.Duration
	st       peercache.State
	dirty    bool
	lastSave time.Time
	known    *knownAddrs // follows the cached addresses
}

func (c *cacheFile) store(mac wire.MAC, addr netip.AddrPort) {
	if !addr.IsValid() {
		return
	}
	old, ok := c.st.Peers[mac]
	if ok && old == addr {
		return
	}
	if ok {
		c.known.remove(old.Addr())
	}
	c.known.add(addr.Addr())
	c.st.Peers[mac] = addr
	c.dirty = true
}

func (c *cacheFile) remove(mac wire.MAC) {
	if old, ok := c.st.Peers[mac]; ok {
		c.known.remove(old.Addr())
		delete(c.st.Peers, mac)
		c.dirty = true
	}
}

// saveAt returns when the pending changes are to be saved.
func (c *cacheFile) saveAt() (time.Time, bool) {
	if !c.dirty || c.path == "" {
		return time.Time{}, false
	}
	return c.lastSave.Add(c.interval), true
}

func (c *cacheFile) due(now time.Time) bool {
	at, ok := c.saveAt()
	return ok && !now.Before(at)
}

// snapshot returns a copy of the cache to save now, whether or not it
// changed since the last save; false when there is no cache file.
func (c *cacheFile) snapshot(now time.Time) (peercache.State, bool) {
	if c.path == "" {
		return peercache.State{}, false
	}
	c.lastSave = now
	c.dirty = false
	return peercache.State{Peers: maps.Clone(c.st.Peers), IDFloor: c.st.IDFloor}, true
}

// cacheSaver writes the loop's snapshots of the cache off the loop, so
// that a save (two fsyncs) never holds up frames. The newest snapshot
// replaces one not yet written: each holds the whole cache. The id floor
// may reach the disk a little after the node asked for it; that is safe
// because the node asks while half of its reserve (node.Config.IDReserve,
// an hour of ids by default) is still ahead of the ids it has issued.
type cacheSaver struct {
	path    string
	log     *slog.Logger
	next    chan peercache.State // the newest snapshot not yet written
	stopped chan struct{}        // closed when run returns
}

func newCacheSaver(path string, log *slog.Logger) *cacheSaver {
	return &cacheSaver{path: path, log: log, next: make(chan peercache.State, 1), stopped: make(chan struct{})}
}

// offer hands the saver st, replacing a snapshot it has not taken yet.
// Called by the loop only, so the send after the drain never blocks.
func (s *cacheSaver) offer(st peercache.State) {
	select {
	case s.next <- st:
		return
	default:
	}
	select {
	case <-s.next:
	default:
	}
	s.next <- st
}

// run writes snapshots until stop; it runs in its own goroutine.
func (s *cacheSaver) run() {
	defer close(s.stopped)
	for st := range s.next {
		if err := peercache.Save(s.path, st); err != nil {
			s.log.Error("saving the peer cache", "file", s.path, "err", err)
		}
	}
}

// stop writes the snapshot offered last, if not yet written, and returns
// when run has returned. Called by the loop, once, after its last offer.
func (s *cacheSaver) stop() {
	close(s.next)
	<-s.stopped
}
