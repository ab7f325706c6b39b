package node

import (
	"cmp"
	"iter"
	"net/netip"
	"slices"

	"github.com/invpn/invpn/wire"
)

// peerCache is the peer cache of the connect policy: the last announced
// address of each peer, by MAC. A simulator holds one per node, each with
// an entry per node, so it is kept small: the entries are one slice
// sorted by MAC, of 32 bytes each and without pointers (the garbage
// collector does not scan them), with the entries added since the last
// merge in a short unsorted tail; the rare address with a zone (a
// link-local underlay) is kept as it is beside them. At 1000 nodes a map
// took 89 MB. The walks whose order reaches the outputs or the random
// draws go in MAC order, as map order must not.
type peerCache struct {
	sorted []cacheEntry // by key
	tail   []cacheEntry // added since the last merge, at most cacheTail
	zoned  map[macKey]netip.AddrPort
}

// cacheEntry is one peer's address and port, without pointers; zoned
// says the address is in peerCache.zoned instead.
type cacheEntry struct {
	key   macKey
	addr  packedAddr
	port  uint16
	zoned bool
}

// cacheTail is the most entries the unsorted tail holds before it is
// merged into the sorted slice.
const cacheTail = 32

// sortedIndex returns where k is, or would be, in the sorted entries.
func (c *peerCache) sortedIndex(k macKey) (int, bool) {
	return slices.BinarySearchFunc(c.sorted, k, func(e cacheEntry, k macKey) int { return cmp.Compare(e.key, k) })
}

// find returns the entry of k, nil if there is none.
func (c *peerCache) find(k macKey) *cacheEntry {
	if i, ok := c.sortedIndex(k); ok {
		return &c.sorted[i]
	}
	for i := range c.tail {
		if c.tail[i].key == k {
			return &c.tail[i]
		}
	}
	return nil
}

// len returns the number of entries.
func (c *peerCache) len() int { return len(c.sorted) + len(c.tail) }

// get returns mac's address.
func (c *peerCache) get(mac wire.MAC) (netip.AddrPort, bool) {
	e := c.find(keyOf(mac))
	if e == nil {
		return netip.AddrPort{}, false
	}
	return c.addrOf(e), true
}

// addrOf returns e's address and port.
func (c *peerCache) addrOf(e *cacheEntry) netip.AddrPort {
	if e.zoned {
		return c.zoned[e.key]
	}
	return netip.AddrPortFrom(e.addr.addr(), e.port)
}

// set records ap as mac's address.
func (c *peerCache) set(mac wire.MAC, ap netip.AddrPort) {
	k := keyOf(mac)
	e := c.find(k)
	if e == nil {
		c.tail = append(c.tail, cacheEntry{key: k})
		e = &c.tail[len(c.tail)-1]
	}
	if ap.Addr().Zone() != "" {
		if c.zoned == nil {
			c.zoned = map[macKey]netip.AddrPort{}
		}
		*e = cacheEntry{key: k, zoned: true}
		c.zoned[k] = ap
	} else {
		if e.zoned {
			delete(c.zoned, k)
		}
		*e = cacheEntry{key: k, addr: packAddr(ap.Addr()), port: ap.Port()}
	}
	if len(c.tail) > cacheTail {
		c.merge()
	}
}

// remove forgets mac; it reports whether there was an entry.
func (c *peerCache) remove(mac wire.MAC) bool {
	k := keyOf(mac)
	delete(c.zoned, k)
	if i, ok := c.sortedIndex(k); ok {
		c.sorted = slices.Delete(c.sorted, i, i+1)
		return true
	}
	if i := slices.IndexFunc(c.tail, func(e cacheEntry) bool { return e.key == k }); i >= 0 {
		c.tail = slices.Delete(c.tail, i, i+1)
		return true
	}
	return false
}

// merge sorts the tail into the sorted slice, in a slice of just the room
// it needs.
func (c *peerCache) merge() {
	if len(c.tail) == 0 {
		return
	}
	slices.SortFunc(c.tail, func(a, b cacheEntry) int { return cmp.Compare(a.key, b.key) })
	out := make([]cacheEntry, 0, len(c.sorted)+len(c.tail))
	i, j := 0, 0
	for i < len(c.sorted) && j < len(c.tail) {
		if c.sorted[i].key < c.tail[j].key {
			out = append(out, c.sorted[i])
			i++
		} else {
			out = append(out, c.tail[j])
			j++
		}
	}
	out = append(append(out, c.sorted[i:]...), c.tail[j:]...)
	c.sorted, c.tail = out, c.tail[:0]
}

// all yields the entries in MAC order.
func (c *peerCache) all() iter.Seq2[wire.MAC, netip.AddrPort] {
	c.merge()
	return func(yield func(wire.MAC, netip.AddrPort) bool) {
		s := c.sorted // yield may change the cache
		for i := range s {
			e := &s[i]
			if !yield(e.key.mac(), c.addrOf(e)) {
				return
			}
		}
	}
}
