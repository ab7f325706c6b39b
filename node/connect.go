package node

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/invpn/invpn/wire"
)

// dialer is the state of the connect policy: the peer cache, the dials
// in progress and the backoff of peers whose dials failed.
type dialer struct {
	cache   peerCache
	dialing map[wire.MAC]time.Time // pending dials and when they were asked for
	backoff map[wire.MAC]backoff
	dialAt  time.Time // below MinLinks: when a peer can next be dialled; zero if none
	seedAt  time.Time // when an unlinked seed can next be dialled; zero if none
	// directoryTried lists the bootstrap peers whose directory link ran
	// out while the node lacked mesh links: the next link is a mesh link.
	directoryTried map[wire.MAC]bool
}

// newDialer starts from the persisted peer cache, leaving out the node's
// own MAC and entries without an address.
func newDialer(self wire.MAC, cache []Peer) dialer {
	d := dialer{cache: peerCache{}, dialing: map[wire.MAC]time.Time{}, backoff: map[wire.MAC]backoff{}, directoryTried: map[wire.MAC]bool{}}
	for _, p := range cache {
		if p.MAC != self && p.Addr.IsValid() {
			d.cache.set(p.MAC, p.Addr)
		}
	}
	return d
}

// backoff is the redial state of one peer.
type backoff struct {
	fails int
	until time.Time
}

// dialFailed handles DialFailed.
func (n *Node) dialFailed(mac wire.MAC, err error) {
	delete(n.dialer.dialing, mac)
	b := n.dialer.backoff[mac]
	b.fails++
	d := n.cfg.DialBackoffMin << min(b.fails-1, 20)
	if d > n.cfg.DialBackoffMax || d <= 0 {
		d = n.cfg.DialBackoffMax
	}
	// Jitter: a uniform factor in [0.5, 1.5) so peers that lost the same
	// neighbour do not redial in step.
	d = d/2 + time.Duration(n.cfg.Rand.Uint64()%uint64(d))
	b.until = n.clock.now.Add(d)
	n.dialer.backoff[mac] = b
	n.scheduleDial()
	n.event(Event{Kind: EventDialFailed, MAC: mac, Err: fmt.Errorf("dial %s: %w (retry in %v)", mac, err, d)})
}

// dialTarget is how many mesh links the connect policy dials for: half
// way from MinLinks to MaxLinks, so that most nodes have room for the
// links others dial (docs/protocol.md#link-limit).
func (n *Node) dialTarget() int { return (n.cfg.MinLinks + n.cfg.MaxLinks + 1) / 2 }

// connect runs the connect policy (docs/protocol.md#connect-policy):
// dial the seeds that are not linked, then cached peers in random order
// until the node has or is dialling dialTarget links.
func (n *Node) connect() {
	// A dial the driver never answered is forgotten after one interval.
	for mac, at := range n.dialer.dialing {
		if n.clock.now.Sub(at) >= n.cfg.ConnectInterval {
			delete(n.dialer.dialing, mac)
		}
	}
	n.dialSeeds()
	target := n.dialTarget()
	if n.links.len()+len(n.dialer.dialing) >= target {
		return
	}
	var cands []Peer // not kept: every peer of the node, 40 MB at 1000 nodes
	for mac, addr := range n.dialer.cache.all() {
		if n.canDial(mac) && !n.isBootstrap(mac) {
			cands = append(cands, Peer{MAC: mac, Addr: addr})
		}
	}
	// Cached peers in random order, drawn one at a time (a partial
	// Fisher-Yates shuffle) until the node has or is dialling dialTarget.
	for i := range cands {
		if n.links.len()+len(n.dialer.dialing) >= target {
			break
		}
		j := i + int(n.cfg.Rand.Uint64()%uint64(len(cands)-i))
		cands[i], cands[j] = cands[j], cands[i]
		n.dial(cands[i])
	}
}

// quickDial reports whether the node dials as soon as a peer leaves its
// backoff: it has fewer than MinLinks links and room for another dial.
func (n *Node) quickDial() bool {
	return n.links.len() < n.cfg.MinLinks && n.links.len()+len(n.dialer.dialing) < n.dialTarget()
}

// scheduleDial recomputes when a quick dial is next possible. It scans the
// peer cache, so it runs when links, dials or backoffs change, not on
// every deadline query.
func (n *Node) scheduleDial() {
	n.dialer.dialAt = time.Time{}
	if n.quickDial() {
		n.dialer.dialAt = n.nextDialable()
	}
	n.dialer.seedAt = n.nextSeedDialable()
}

// dialSeeds dials the `init` seeds that are not linked, not being
// dialled and out of their backoff: seeds are dialled whenever they are
// not linked (docs/protocol.md#connect-policy), not only at the connect
// interval, so a link to a seed that failed comes back at its next
// backoff, however many other links the node has.
func (n *Node) dialSeeds() {
	for _, s := range n.cfg.Seeds {
		if n.canDial(s.MAC) {
			n.dial(s)
		}
	}
	n.dialBootstrap()
}

// nextSeedDialable returns the earliest time an unlinked seed that is
// not being dialled leaves its backoff; zero if there is none.
func (n *Node) nextSeedDialable() time.Time {
	var t time.Time
	peers := n.cfg.Seeds
	if n.needBootstrap() {
		peers = slices.Concat(peers, n.cfg.Bootstrap)
	}
	for _, s := range peers {
		if s.MAC == n.cfg.MAC || !s.Addr.IsValid() || n.links.to(s.MAC) != nil {
			continue
		}
		if _, ok := n.dialer.dialing[s.MAC]; ok {
			continue
		}
		u := n.dialer.backoff[s.MAC].until
		if u.IsZero() {
			u = n.clock.now
		}
		if t.IsZero() || u.Before(t) {
			t = u
		}
	}
	return t
}

func (n *Node) canDial(mac wire.MAC) bool {
	if mac == n.cfg.MAC {
		return false
	}
	if _, ok := n.links.byPeer[mac]; ok {
		return false
	}
	if _, ok := n.dialer.dialing[mac]; ok {
		return false
	}
	return !n.clock.now.Before(n.dialer.backoff[mac].until)
}

func (n *Node) dial(p Peer) {
	if !p.Addr.IsValid() {
		return
	}
	n.dialer.dialing[p.MAC] = n.clock.now
	n.ready.Dials = append(n.ready.Dials, p)
}

// nextDialable returns the earliest time a seed or cached peer that is not
// linked or being dialled comes out of backoff; zero if there is none.
func (n *Node) nextDialable() time.Time {
	var t time.Time
	consider := func(mac wire.MAC, addr netip.AddrPort) {
		if mac == n.cfg.MAC || !addr.IsValid() {
			return
		}
		if _, ok := n.links.byPeer[mac]; ok {
			return
		}
		if _, ok := n.dialer.dialing[mac]; ok {
			return
		}
		u := n.dialer.backoff[mac].until
		if u.IsZero() {
			u = n.clock.now
		}
		if t.IsZero() || u.Before(t) {
			t = u
		}
	}
	for _, s := range n.cfg.Seeds {
		consider(s.MAC, s.Addr)
	}
	if n.needBootstrap() {
		for _, s := range n.cfg.Bootstrap {
			consider(s.MAC, s.Addr)
		}
	}
	for mac, addr := range n.dialer.cache.all() {
		if !n.isBootstrap(mac) {
			consider(mac, addr)
		}
	}
	return t
}

// setSeeds handles SetSeeds.
func (n *Node) setSeeds(seeds, bootstrap []Peer) {
	n.cfg.Seeds, n.cfg.Bootstrap = slices.Clone(seeds), slices.Clone(bootstrap)
	n.scheduleDial()
}

// Cache returns the peer cache, sorted by MAC.
func (n *Node) Cache() []Peer {
	out := make([]Peer, 0, n.dialer.cache.len())
	for mac, addr := range n.dialer.cache.all() {
		out = append(out, Peer{MAC: mac, Addr: addr})
	}
	return out
}
