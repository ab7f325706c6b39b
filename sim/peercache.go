package sim

import (
	"net/netip"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// peerCache is the peer cache a node's driver persists across crashes
// (Ready.CacheStore, CacheRemove, given back as Config.Cache). In a mesh
// of n nodes each may cache all the others: a map of MACs to addresses
// per node is n² entries of some 50 bytes. Nearly every entry is a
// world node at its own listening address, so those are kept as one bit
// per node; anything else (an unknown MAC, another address) in a map.
type peerCache struct {
	// order is the insertion order, for a deterministic Config.Cache: a
	// node index, or ^k for other[k]. A MAC stored again after a removal
	// appears again.
	order []int32
	other []wire.MAC
	own   []uint64 // bit i: node i is cached at its own address
	addrs map[wire.MAC]netip.AddrPort
}

// nodeOfMAC returns the index of the node whose MAC is m (see macOf), if
// it is one of the n nodes.
func nodeOfMAC(m wire.MAC, n int) (int, bool) {
	if m[0] != 0x02 || m[1] != 0 || m[2] != 0 {
		return 0, false
	}
	v := int(m[3])<<16 | int(m[4])<<8 | int(m[5])
	return v - 1, v >= 1 && v <= n
}

func (pc *peerCache) hasOwn(i int) bool {
	return i>>6 < len(pc.own) && pc.own[i>>6]&(1<<(i&63)) != 0
}

func (pc *peerCache) setOwn(i int, on bool) {
	if !on && i>>6 >= len(pc.own) {
		return
	}
	for i>>6 >= len(pc.own) {
		pc.own = append(pc.own, 0)
	}
	if on {
		pc.own[i>>6] |= 1 << (i & 63)
	} else {
		pc.own[i>>6] &^= 1 << (i & 63)
	}
}

// has reports whether the cache holds m.
func (pc *peerCache) has(cl *cluster, m wire.MAC) bool {
	if i, ok := nodeOfMAC(m, cl.n()); ok && pc.hasOwn(i) {
		return true
	}
	_, ok := pc.addrs[m]
	return ok
}

// store caches p, noting its MAC in the insertion order if it was not
// cached.
func (pc *peerCache) store(cl *cluster, p node.Peer) {
	i, isNode := nodeOfMAC(p.MAC, cl.n())
	if !pc.has(cl, p.MAC) {
		if isNode {
			pc.order = append(pc.order, int32(i))
		} else {
			pc.other = append(pc.other, p.MAC)
			pc.order = append(pc.order, ^int32(len(pc.other)-1))
		}
	}
	if isNode && p.Addr == cl.nodes[i].addr {
		pc.setOwn(i, true)
		delete(pc.addrs, p.MAC)
		return
	}
	if isNode {
		pc.setOwn(i, false)
	}
	if pc.addrs == nil {
		pc.addrs = map[wire.MAC]netip.AddrPort{}
	}
	pc.addrs[p.MAC] = p.Addr
}

// remove forgets m.
func (pc *peerCache) remove(cl *cluster, m wire.MAC) {
	if i, ok := nodeOfMAC(m, cl.n()); ok {
		pc.setOwn(i, false)
	}
	delete(pc.addrs, m)
}

// peers returns the cached peers in insertion order.
func (pc *peerCache) peers(cl *cluster) []node.Peer {
	var out []node.Peer
	for _, k := range pc.order {
		var m wire.MAC
		if k >= 0 {
			m = cl.nodes[k].mac
		} else {
			m = pc.other[^k]
		}
		if i, ok := nodeOfMAC(m, cl.n()); ok && pc.hasOwn(i) {
			out = append(out, node.Peer{MAC: m, Addr: cl.nodes[i].addr})
		} else if a, ok := pc.addrs[m]; ok {
			out = append(out, node.Peer{MAC: m, Addr: a})
		}
	}
	return out
}
