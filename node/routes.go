package node

import (
	"fmt"
	"slices"
	"time"

	"github.com/invpn/invpn/wire"
)

// route is how this node reaches one MAC: through the neighbour from which
// that MAC's newest announcement arrived first (first-path routing).
type route struct {
	id  uint64 // the announcement round: its id
	via LinkID // 0 when withdrawn
	// path is the announcement's path as received over via (relayers,
	// nearest the target first; the last is the neighbour), pathKnown
	// false when it crossed a seed-protocol node.
	path      []wire.MAC
	pathKnown bool
	// backups are other neighbours that delivered the same round, in
	// arrival order, whose path does not contain this node: moving to
	// one of them cannot loop back through us.
	backups   []LinkID
	info      wire.Info // the announcement, as an info (address filled in)
	refreshed stamp
	learned   stamp
	// sent is when the route's copy of its round would have arrived had
	// no relay held it in a batch: its arrival less its held time. Copies
	// of one round compete on it (quiet refresh).
	sent stamp
	// confirmBy, when set, is the deadline of a route moved to a backup:
	// a newer round must arrive by then, or the route is withdrawn.
	confirmBy stamp
}

// stamp is an instant on the node's clock, in nanoseconds since the Unix
// epoch: 8 bytes where a time.Time takes 24, in each of the thousands of
// routes a node holds. Zero means unset.
type stamp int64

// stampOf returns t as a stamp.
func stampOf(t time.Time) stamp { return stamp(t.UnixNano()) }

// since returns how long before now s was.
func (s stamp) since(now time.Time) time.Duration { return time.Duration(stampOf(now) - s) }

// routeTable maps each known MAC to its route; a withdrawn route stays
// (via 0) until it expires, so that its round is remembered. It is keyed
// by the MAC as a number: every flooded announcement looks a route up,
// and a uint64 key takes the map's fast path.
type routeTable map[macKey]*route

// macKey is a MAC as a map key.
type macKey uint64

// keyOf returns m's key.
func keyOf(m wire.MAC) macKey {
	return macKey(m[0])<<40 | macKey(m[1])<<32 | macKey(m[2])<<24 | macKey(m[3])<<16 | macKey(m[4])<<8 | macKey(m[5])
}

// mac returns the MAC of k.
func (k macKey) mac() wire.MAC {
	return wire.MAC{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
}

// get returns the route to mac, nil if there is none.
func (t routeTable) get(mac wire.MAC) *route { return t[keyOf(mac)] }

// via returns the live next hop toward mac; 0 if there is none.
func (t routeTable) via(mac wire.MAC) LinkID {
	if r, ok := t[keyOf(mac)]; ok {
		return r.via
	}
	return 0
}

// failover handles the loss of link down, to peer: it leaves the backups
// of every route, and every route through it moves to its first backup
// that is still live, or is withdrawn (via 0). The route to peer itself is
// withdrawn, not moved: when peer is gone, every neighbour of peer loses
// it at once and their backups point at each other, a loop that no fresh
// round would end; when only the link is gone, peer's own announcement,
// which it sends as it notices, brings the route back within one flood. It
// returns the targets of the routes that were through down, sorted (a
// deterministic event order).
func (t routeTable) failover(down LinkID, peer wire.MAC, live func(LinkID) bool) []wire.MAC {
	var affected []wire.MAC
	for k, r := range t {
		mac := k.mac()
		if i := slices.Index(r.backups, down); i >= 0 {
			r.backups = slices.Delete(r.backups, i, i+1)
		}
		if r.via == down {
			affected = append(affected, mac)
		}
	}
	slices.SortFunc(affected, wire.MAC.Compare)
	for _, mac := range affected {
		r := t.get(mac)
		r.via = 0
		if mac == peer {
			r.backups = r.backups[:0]
		}
		for len(r.backups) > 0 && r.via == 0 {
			if live(r.backups[0]) {
				r.via = r.backups[0]
			}
			r.backups = r.backups[1:]
		}
		if r.via != 0 {
			// The path over the backup is not stored; it is known to
			// avoid us, which is all later backup checks need.
			r.path = r.path[:0]
			r.pathKnown = false
		}
	}
	return affected
}

// repoint moves every route and backup through link from to link to (a
// new link to the same peer replaced it: the routes stay where they are).
func (t routeTable) repoint(from, to LinkID) {
	for _, r := range t {
		if r.via == from {
			r.via = to
		}
		for i, b := range r.backups {
			if b == from {
				r.backups[i] = to
			}
		}
	}
}

// expiredRoute is a route removed by expire.
type expiredRoute struct {
	target wire.MAC
	via    LinkID
}

// expire removes the routes last refreshed at or before cutoff and
// returns them, sorted by target.
func (t routeTable) expire(cutoff time.Time) []expiredRoute {
	var out []expiredRoute
	for k, r := range t {
		if r.refreshed <= stampOf(cutoff) {
			out = append(out, expiredRoute{k.mac(), r.via})
		}
	}
	slices.SortFunc(out, func(a, b expiredRoute) int { return a.target.Compare(b.target) })
	for _, x := range out {
		delete(t, keyOf(x.target))
	}
	return out
}

// RouteInfo describes a route for status displays and tests.
type RouteInfo struct {
	Target  wire.MAC
	Via     LinkID
	NextHop wire.MAC
	ID      uint64
	Hops    int // links to the target; -1 when the path is unknown
	Backups []LinkID
	// SinceRefresh is how long ago the route's current round arrived, and
	// SinceLearned how long ago the first route to Target was learned, on
	// the node's clock.
	SinceRefresh time.Duration
	SinceLearned time.Duration
}

// Route returns the route to mac, if there is one with a live next hop.
func (n *Node) Route(mac wire.MAC) (RouteInfo, bool) {
	r, ok := n.routes[keyOf(mac)]
	if !ok || r.via == 0 {
		return RouteInfo{}, false
	}
	return n.routeInfo(mac, r), true
}

// EachNextHop calls fn with the target and next-hop link of every live
// route, in no particular order, without allocating: for drivers that
// walk the routes of many nodes (a simulator's checks).
func (n *Node) EachNextHop(fn func(target wire.MAC, via LinkID)) {
	for k, r := range n.routes {
		if r.via != 0 {
			fn(k.mac(), r.via)
		}
	}
}

// Routes returns every live route, sorted by target MAC.
func (n *Node) Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(n.routes))
	for k, r := range n.routes {
		if r.via != 0 {
			out = append(out, n.routeInfo(k.mac(), r))
		}
	}
	slices.SortFunc(out, func(a, b RouteInfo) int { return a.Target.Compare(b.Target) })
	return out
}

func (n *Node) routeInfo(mac wire.MAC, r *route) RouteInfo {
	ri := RouteInfo{Target: mac, Via: r.via, ID: r.id, Hops: -1, Backups: slices.Clone(r.backups),
		SinceRefresh: r.refreshed.since(n.clock.now), SinceLearned: r.learned.since(n.clock.now)}
	if l := n.links.byID[r.via]; l != nil {
		ri.NextHop = l.peer
	}
	if r.pathKnown {
		ri.Hops = len(r.path) + 1
	}
	return ri
}

// failover moves every route through the link that went down to its first
// live backup, at once, or withdraws it (defect 8: no blackhole until the
// next announcement, no stale route until expiry). It returns the targets
// of the routes that went through it, sorted.
func (n *Node) failover(down LinkID, peer wire.MAC) []wire.MAC {
	affected := n.routes.failover(down, peer, func(id LinkID) bool { return n.links.get(id) != nil })
	for _, mac := range affected {
		if r := n.routes.get(mac); r.via != 0 {
			// The backup was loop-free for this one failure; when several
			// links failed at once (a node that vanished with all its
			// links) backups may point at each other. A newer round of the
			// target, which the 0x86 asks for, confirms the route; without
			// one within FailoverConfirm it is withdrawn.
			r.confirmBy = stampOf(n.clock.now.Add(n.cfg.FailoverConfirm))
			n.unconfirmed = append(n.unconfirmed, mac)
			n.stats.Failovers++
			n.event(Event{Kind: EventRouteFailover, MAC: mac, Link: r.via, From: down})
			continue
		}
		n.stats.Withdrawals++
		n.event(Event{Kind: EventRouteWithdrawn, MAC: mac, From: down})
	}
	return affected
}

// known reports whether mac was linked or announced and not expired.
func (n *Node) known(mac wire.MAC) bool {
	if n.links.to(mac) != nil {
		return true
	}
	_, ok := n.routes[keyOf(mac)]
	return ok
}

// nextHop returns the live link toward mac.
func (n *Node) nextHop(mac wire.MAC) *link {
	return n.links.get(n.routes.via(mac))
}

// confirmFailovers withdraws the routes moved to a backup whose target
// sent no newer round within FailoverConfirm, and forgets those that got
// one (or were withdrawn or expired meanwhile).
func (n *Node) confirmFailovers(now time.Time) {
	var withdrawn []wire.MAC
	keep := n.unconfirmed[:0]
	for _, mac := range n.unconfirmed {
		r := n.routes.get(mac)
		switch {
		case r == nil || r.confirmBy == 0 || r.via == 0:
		case stampOf(now) < r.confirmBy:
			keep = append(keep, mac)
		default:
			from := r.via
			r.via, r.confirmBy = 0, 0
			r.backups = r.backups[:0]
			n.stats.Withdrawals++
			n.event(Event{Kind: EventRouteWithdrawn, MAC: mac, From: from,
				Err: fmt.Errorf("no newer round of %s within %v of the failover", mac, n.cfg.FailoverConfirm)})
			withdrawn = append(withdrawn, mac)
		}
	}
	clear(n.unconfirmed[len(keep):])
	n.unconfirmed = keep
	if n.quiet() && len(withdrawn) > 0 {
		// In a quiet mesh no periodic round would bring them back soon:
		// ask their targets for one.
		slices.SortFunc(withdrawn, wire.MAC.Compare)
		n.requestRounds(withdrawn)
	}
}

// confirmDeadline returns the earliest confirmBy of the unconfirmed
// routes; zero if there is none.
func (n *Node) confirmDeadline() time.Time {
	var d stamp
	for _, mac := range n.unconfirmed {
		if r := n.routes.get(mac); r != nil && r.confirmBy != 0 && (d == 0 || r.confirmBy < d) {
			d = r.confirmBy
		}
	}
	if d == 0 {
		return time.Time{}
	}
	return n.clock.now.Add(time.Duration(d - stampOf(n.clock.now)))
}
