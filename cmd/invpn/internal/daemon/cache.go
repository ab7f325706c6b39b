package daemon

import (
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

// save writes the cache now, whether or not it changed since the last save.
func (c *cacheFile) save(now time.Time) error {
	if c.path == "" {
		return nil
	}
	c.lastSave = now
	c.dirty = false
	return peercache.Save(c.path, c.st)
}
