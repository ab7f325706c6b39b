package node

import (
	"fmt"
	"slices"
	"time"

	"github.com/invpn/invpn/wire"
)

// Joining without a hub (docs/protocol.md#link-limit).
//
// A directory link carries one table, for the address cache, and then
// closes: no route, flood or frame crosses it, so closing it asks nothing
// of the mesh. A node opens one in two cases:
//
//   - it dialled one of its Bootstrap peers while it had fewer than
//     MinLinks mesh links: it takes the peer's table into its cache,
//     dials cached peers, and closes the directory link once it has
//     MinLinks mesh links (or after directoryHold). If that hold passes
//     and it still has fewer, its next link to the peer is a mesh link
//     (a mesh with no one else to link to);
//   - it accepted a link beyond MaxLinks mesh links: it sends a 0x8A
//     first, so that the dialler treats the link as a directory link
//     too, then its table if it has no route to the dialler (a joiner);
//     the dialler closes the link when it has MinLinks mesh links (or
//     after directoryHold), the full node, which has its mesh links, once
//     the table had time to arrive (directoryMinAge).
//
// The far end of a bootstrap peer's directory link sees an ordinary link
// that relays nothing: losing it asks for no rounds (removeLink).

// directoryHold is how long a directory link may stay up.
const directoryHold = 10 * time.Second

// directoryMinAge is how long a directory link stays up at least, so that
// the table it carries has arrived: four batch delays.
func (n *Node) directoryMinAge() time.Duration { return 4 * n.cfg.BatchDelay }

// isBootstrap reports whether mac is one of the node's Bootstrap peers.
func (n *Node) isBootstrap(mac wire.MAC) bool {
	return slices.ContainsFunc(n.cfg.Bootstrap, func(p Peer) bool { return p.MAC == mac })
}

// isSeed reports whether mac is one of the node's `init` seeds.
func (n *Node) isSeed(mac wire.MAC) bool {
	return slices.ContainsFunc(n.cfg.Seeds, func(p Peer) bool { return p.MAC == mac })
}

// needBootstrap reports whether the node dials its bootstrap peers: it
// has fewer than MinLinks mesh links.
func (n *Node) needBootstrap() bool { return n.links.len() < n.cfg.MinLinks }

// linkKind decides at link-up what l becomes: a mesh link or a
// directory link (full: because this node is at MaxLinks mesh links).
func (n *Node) linkKind(l *link) (directory, full bool) {
	switch {
	case !l.extended:
		// An original node knows no 0x8A and takes no orders: a link to
		// or from it is a mesh link (an operator listed it).
		return false, false
	case l.dialed && n.isBootstrap(l.peer) && !n.dialer.directoryTried[l.peer]:
		return true, false
	case !l.dialed && n.links.len() >= n.cfg.MaxLinks && !n.isSeed(l.peer):
		return true, true
	}
	return false, false
}

// openDirectory registers l as a directory link. A full node sends the
// 0x8A and its table at once.
func (n *Node) openDirectory(l *link, full bool) {
	l.directory = true
	n.startLiveness(l)
	n.links.add(l)
	n.event(Event{Kind: EventLinkUp, MAC: l.peer, Link: l.id, Directory: true})
	n.sendRevocation(l)
	if !full {
		return
	}
	n.send(l, n.encode(&wire.LinkFull{}), true)
	if n.routes.get(l.peer) == nil && len(n.links.directory) <= n.cfg.MaxLinks {
		// A dialler the mesh has no route to has not joined yet: it
		// needs the addresses. One that has (it dialled us from its
		// cache) has them: the table would be 50 KB at 1000 nodes for
		// nothing, and most dials a full node refuses are such. At most
		// MaxLinks tables are on their way at once.
		n.sendTable(l)
		n.flushBatch(l)
	}
}

// receiveLinkFull handles a 0x8A: the peer accepted l beyond its limit.
// The link becomes a directory link (its table is on the way) and the
// peer is not redialled for a connect interval.
func (n *Node) receiveLinkFull(l *link, msg []byte) {
	if _, err := wire.DecodeLinkFull(msg); err != nil {
		n.malformed(l, err)
		return
	}
	b := n.dialer.backoff[l.peer]
	b.fails = max(b.fails, 1)
	b.until = n.clock.now.Add(n.cfg.ConnectInterval/2 + time.Duration(n.cfg.Rand.Uint64()%uint64(max(n.cfg.ConnectInterval, 1))))
	n.dialer.backoff[l.peer] = b
	if l.directory {
		return
	}
	// The 0x8A is the peer's first message, so no route uses the link
	// yet; one that does (a peer that sent it late) fails over.
	n.links.remove(l)
	n.dropBatch(l)
	n.failover(l.id, l.ref, l.peer)
	l.ref = 0
	l.directory = true
	n.links.add(l)
	n.scheduleDial()
}

// directoryCarries reports whether a message of type t is taken over a
// directory link: announcements (their addresses go to the cache, see
// announcement), heartbeats and the 0x8A. Everything else is dropped.
func directoryCarries(t wire.Type) bool {
	switch t {
	case wire.TypeInitialInfo, wire.TypeInfo, wire.TypeInfoPath, wire.TypeInfoBatch, wire.TypeHeartbeat, wire.TypeLinkFull,
		wire.TypeRevocationList: // a joiner gets the list from its first neighbour
		return true
	}
	return false
}

// directoryAnnouncement takes the address of an announcement that came
// over a directory link into the cache; it is no route.
func (n *Node) directoryAnnouncement(info wire.Info) {
	if info.Addr.IsValid() {
		n.updateCache(info)
	}
}

// directoryEnd is when directory link l is closed: once the table had
// time to arrive if the node has MinLinks mesh links (enough), else at
// the end of the hold.
func (n *Node) directoryEnd(l *link, enough bool) time.Time {
	if enough {
		return l.up.Add(n.directoryMinAge())
	}
	return l.up.Add(directoryHold)
}

// checkDirectory closes the directory links whose job is done. A
// bootstrap peer whose directory link ran out while the node still lacked
// mesh links is linked as a mesh link next time.
func (n *Node) checkDirectory(now time.Time) {
	enough := n.links.len() >= n.cfg.MinLinks
	if enough {
		clear(n.dialer.directoryTried)
	}
	for i := 0; i < len(n.links.directory); i++ {
		l := n.links.directory[i]
		if now.Before(n.directoryEnd(l, enough)) {
			continue
		}
		if !enough && l.dialed && n.isBootstrap(l.peer) {
			n.dialer.directoryTried[l.peer] = true
		}
		n.closeLink(l, fmt.Errorf("link %d to %s: %w (%d mesh links, up %v)", l.id, l.peer, ErrDirectoryDone,
			n.links.len(), now.Sub(l.up).Round(time.Millisecond)))
		i--
	}
}

// directoryDeadline is when checkDirectory next has something to do.
func (n *Node) directoryDeadline() time.Time {
	var t time.Time
	enough := n.links.len() >= n.cfg.MinLinks
	for _, l := range n.links.directory {
		if d := n.directoryEnd(l, enough); t.IsZero() || d.Before(t) {
			t = d
		}
	}
	return t
}

// dialBootstrap dials the bootstrap peers that are not linked, while the
// node has fewer than MinLinks mesh links.
func (n *Node) dialBootstrap() {
	if !n.needBootstrap() {
		return
	}
	for _, p := range n.cfg.Bootstrap {
		if n.canDial(p.MAC) {
			n.dial(p)
		}
	}
}
