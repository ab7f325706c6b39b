package node

import (
	"iter"
	"net/netip"
	"slices"

	"github.com/invpn/invpn/wire"
)

// peerCache is the peer cache of the connect policy: the last announced
// address of each peer, by MAC. A simulator holds one per node, each with
// an entry per node, so the addresses are held without pointers (the
// garbage collector does not scan them); the rare address with a zone (a
// link-local underlay) is kept as it is, beside them. The MACs in order
// are kept for the walks whose order reaches the outputs or the random
// draws (map order must not), and sorted again only after a change.
type peerCache struct {
	addrs  map[macKey]packedAddrPort
	zoned  map[macKey]netip.AddrPort
	order  []macKey // every key once when !sorted is false; may hold removed keys until then
	sorted bool
}

// packedAddrPort is an address and port without pointers.
type packedAddrPort struct {
	addr packedAddr
	port uint16
}

func newPeerCache() peerCache {
	return peerCache{addrs: map[macKey]packedAddrPort{}, zoned: map[macKey]netip.AddrPort{}, sorted: true}
}

// len returns the number of entries.
func (c *peerCache) len() int { return len(c.addrs) + len(c.zoned) }

// get returns mac's address.
func (c *peerCache) get(mac wire.MAC) (netip.AddrPort, bool) {
	k := keyOf(mac)
	if p, ok := c.addrs[k]; ok {
		return netip.AddrPortFrom(p.addr.addr(), p.port), true
	}
	ap, ok := c.zoned[k]
	return ap, ok
}

// set records ap as mac's address.
func (c *peerCache) set(mac wire.MAC, ap netip.AddrPort) {
	k := keyOf(mac)
	_, plain := c.addrs[k]
	_, zoned := c.zoned[k]
	if !plain && !zoned {
		c.order = append(c.order, k)
		c.sorted = c.sorted && (len(c.order) == 1 || c.order[len(c.order)-2] < k)
	}
	if ap.Addr().Zone() != "" {
		delete(c.addrs, k)
		c.zoned[k] = ap
		return
	}
	delete(c.zoned, k)
	c.addrs[k] = packedAddrPort{addr: packAddr(ap.Addr()), port: ap.Port()}
}

// remove forgets mac; it reports whether there was an entry.
func (c *peerCache) remove(mac wire.MAC) bool {
	k := keyOf(mac)
	_, plain := c.addrs[k]
	_, zoned := c.zoned[k]
	if !plain && !zoned {
		return false
	}
	delete(c.addrs, k)
	delete(c.zoned, k)
	c.sorted = false // order still holds k
	return true
}

// all yields the entries in MAC order.
func (c *peerCache) all() iter.Seq2[wire.MAC, netip.AddrPort] {
	if !c.sorted {
		c.order = c.order[:0]
		for k := range c.addrs {
			c.order = append(c.order, k)
		}
		for k := range c.zoned {
			c.order = append(c.order, k)
		}
		slices.Sort(c.order)
		c.sorted = true
	}
	return func(yield func(wire.MAC, netip.AddrPort) bool) {
		for _, k := range c.order {
			mac := k.mac()
			ap, _ := c.get(mac)
			if !yield(mac, ap) {
				return
			}
		}
	}
}
