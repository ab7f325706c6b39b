package node

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/invpn/invpn/wire"
)

// route is how this node reaches one MAC: through the neighbour from which
// that MAC's newest announcement arrived first (first-path routing). A
// route lives by value in its routeTable's slots, with no pointer (the
// garbage collector does not scan the table): a node of a large mesh
// holds thousands, and a flooded announcement looks one up, so they are
// kept small and together.
type route struct {
	id  uint64 // the announcement round: its id
	key macKey // the target; 0 in a free slot
	via LinkID // 0 when withdrawn
	// refreshed is when the current round arrived, learned when the
	// first route to the target was learned.
	refreshed stamp
	learned   stamp
	// sent is when the route's copy of its round would have arrived had
	// no relay held it in a batch: its arrival less its held time. Copies
	// of one round compete on it (quiet refresh).
	sent stamp
	// confirmBy, when set, is the deadline of a route moved to a backup:
	// a newer round must arrive by then, or the route is withdrawn.
	confirmBy stamp
	// port and addr are what the round announced (the address as the
	// first relay saw it).
	addr packedAddr
	port uint16
	// The announcement's path as received over via (relayers, nearest
	// the target first; the last is the neighbour) is paths[pathOff:]
	// [:pathLen] of the table, in room for pathCap; pathKnown is false
	// when it crossed a seed-protocol node.
	pathLen uint8
	pathCap uint8
	// waitChange is set while the round held for the former next hop
	// (waitSlot) is a change, not a refresh.
	waitChange bool
	pathOff    uint32
	pathKnown  bool
	// backups[:nBackups] are other neighbours that delivered the same
	// round, in arrival order, whose path does not contain this node:
	// moving to one of them cannot loop back through us. A route keeps
	// at most maxBackups; later ones are not kept. They are named by
	// their links' refs.
	nBackups uint8
	// pending has the bit of each link whose batch holds the route
	// (link.pendingBit); changes and retracts, the bits of those whose
	// batch holds it as a change or a retract since a second queueing
	// (queueRoute).
	pending, changes, retracts uint16
	// slot is the route's place in its table's slots.
	slot int32
	// waitSlot, when set, is the ref of the link to the next hop of the
	// route's previous round, whose copy of the new round the node
	// waits for before passing the round on (Node.waitForNextHop).
	waitSlot linkRef
	backups  [maxBackups]linkRef
}

// maxBackups is the most backups a route keeps: a route with this many
// has outlived that many failures of its neighbours before a new round.
const maxBackups = 7

// info returns r's round as an info.
func (r *route) info() wire.Info {
	return wire.Info{ID: r.id, MAC: r.key.mac(), Port: r.port, Addr: r.addr.addr()}
}

// packedAddr is an IP address as it goes on the wire, 16 bytes and its
// family, without the zone pointer of a netip.Addr (an announced address
// has no zone): a route holds no pointer, so the garbage collector never
// scans the table.
type packedAddr struct {
	ip   [16]byte
	kind uint8 // 0: none, 4 or 6
}

// packAddr returns a as a packedAddr, its zone dropped.
func packAddr(a netip.Addr) packedAddr {
	switch {
	case a.Is4():
		return packedAddr{ip: a.As16(), kind: 4}
	case a.IsValid():
		return packedAddr{ip: a.As16(), kind: 6}
	}
	return packedAddr{}
}

// addr returns p as a netip.Addr.
func (p packedAddr) addr() netip.Addr {
	switch p.kind {
	case 4:
		return netip.AddrFrom16(p.ip).Unmap()
	case 6:
		return netip.AddrFrom16(p.ip)
	}
	return netip.Addr{}
}

// backupList returns r's backups, in order; it aliases r.
func (r *route) backupList() []linkRef { return r.backups[:r.nBackups] }

// backupIndex returns the position of id among r's backups, -1 if absent.
func (r *route) backupIndex(id linkRef) int {
	for i, b := range r.backups[:r.nBackups] {
		if b == id {
			return i
		}
	}
	return -1
}

// dropBackup removes id from r's backups, if it is one.
func (r *route) dropBackup(id linkRef) {
	if i := r.backupIndex(id); i >= 0 {
		copy(r.backups[i:r.nBackups], r.backups[i+1:r.nBackups])
		r.nBackups--
		r.backups[r.nBackups] = 0
	}
}

// addBackup appends id to r's backups, unless it is one, is none (a link
// without a ref) or there is no room.
func (r *route) addBackup(id linkRef) {
	if id != 0 && int(r.nBackups) < maxBackups && r.backupIndex(id) < 0 {
		r.backups[r.nBackups] = id
		r.nBackups++
	}
}

// firstBackup puts id first among r's backups (the last goes when they
// are full).
func (r *route) firstBackup(id linkRef) {
	if id == 0 {
		return
	}
	n := min(int(r.nBackups)+1, maxBackups)
	copy(r.backups[1:n], r.backups[:n-1])
	r.backups[0] = id
	r.nBackups = uint8(n)
}

// clearBackups forgets r's backups.
func (r *route) clearBackups() {
	r.backups = [maxBackups]linkRef{}
	r.nBackups = 0
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
// (via 0) until it expires, so that its round is remembered. Routes are
// slots of one slice, found through an index keyed by the MAC as a
// number (every flooded announcement looks a route up); their paths share
// one arena.
type routeTable struct {
	index routeIndex
	slots []route
	free  []int32 // slots of expired routes, to reuse
	// paths is the arena of the routes' paths; dead counts the MACs in
	// it that no route uses any more.
	paths []wire.MAC
	dead  int
}

// macKey is a MAC as a number.
type macKey uint64

// keyOf returns m's key.
func keyOf(m wire.MAC) macKey {
	return macKey(m[0])<<40 | macKey(m[1])<<32 | macKey(m[2])<<24 | macKey(m[3])<<16 | macKey(m[4])<<8 | macKey(m[5])
}

// mac returns the MAC of k.
func (k macKey) mac() wire.MAC {
	return wire.MAC{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
}

// len returns the number of routes, withdrawn ones included.
func (t *routeTable) len() int { return t.index.count }

// get returns the route to mac, nil if there is none. The pointer is
// good until the next add.
func (t *routeTable) get(mac wire.MAC) *route {
	if i, ok := t.index.find(keyOf(mac), t.slots); ok {
		return &t.slots[i]
	}
	return nil
}

// add returns a new, empty route to mac, which must have none. The
// pointer is good until the next add.
func (t *routeTable) add(mac wire.MAC) *route {
	var i int32
	if k := len(t.free); k > 0 {
		i, t.free = t.free[k-1], t.free[:k-1]
	} else {
		i = int32(len(t.slots))
		t.slots = append(t.slots, route{})
	}
	r := &t.slots[i]
	*r = route{key: keyOf(mac), slot: i}
	t.index.insert(r.key, i, t.slots)
	return r
}

// remove deletes the route to mac.
func (t *routeTable) remove(mac wire.MAC) {
	i, ok := t.index.find(keyOf(mac), t.slots)
	if !ok {
		return
	}
	t.index.remove(keyOf(mac), t.slots)
	t.dead += int(t.slots[i].pathCap)
	t.slots[i] = route{}
	t.free = append(t.free, i)
}

// all yields every route, in slot order.
func (t *routeTable) all(yield func(*route) bool) {
	for i := range t.slots {
		if r := &t.slots[i]; r.key != 0 && !yield(r) {
			return
		}
	}
}

// at returns the route in slot i if it is the route to mac, else the
// route to mac from the index (nil if none): a slot remembered from
// earlier spares the lookup unless the route expired meanwhile.
func (t *routeTable) at(i int32, mac wire.MAC) *route {
	if i >= 0 && int(i) < len(t.slots) && t.slots[i].key == keyOf(mac) {
		return &t.slots[i]
	}
	return t.get(mac)
}

// via returns the live next hop toward mac; 0 if there is none.
func (t *routeTable) via(mac wire.MAC) LinkID {
	if r := t.get(mac); r != nil {
		return r.via
	}
	return 0
}

// path returns r's path. It aliases the arena and has no room to
// append to: an append copies it.
func (t *routeTable) path(r *route) []wire.MAC {
	return t.paths[r.pathOff : r.pathOff+uint32(r.pathLen) : r.pathOff+uint32(r.pathLen)]
}

// setPath makes p (which must not alias the arena) r's path: in r's room
// when it fits, else at the end of the arena, which is compacted first
// when most of it is dead.
func (t *routeTable) setPath(r *route, p []wire.MAC) {
	if len(p) <= int(r.pathCap) {
		copy(t.paths[r.pathOff:], p)
		r.pathLen = uint8(len(p))
		return
	}
	t.dead += int(r.pathCap)
	r.pathLen, r.pathCap = 0, 0 // dead already: compact leaves it out
	if t.dead > 4096 && t.dead > len(t.paths)/2 {
		t.compact()
	}
	r.pathOff, r.pathLen, r.pathCap = uint32(len(t.paths)), uint8(len(p)), uint8(len(p))
	t.paths = append(t.paths, p...)
}

// compact moves every route's path into a new arena without the dead
// MACs.
func (t *routeTable) compact() {
	live := make([]wire.MAC, 0, len(t.paths)-t.dead+len(t.paths)/8)
	for i := range t.slots {
		r := &t.slots[i]
		if r.key == 0 {
			continue
		}
		off := len(live)
		live = append(live, t.path(r)...)
		r.pathOff, r.pathCap = uint32(off), r.pathLen
	}
	t.paths, t.dead = live, 0
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
func (t *routeTable) failover(down LinkID, downRef linkRef, peer wire.MAC, live func(linkRef) (LinkID, bool)) []wire.MAC {
	var affected []wire.MAC
	for r := range t.all {
		r.dropBackup(downRef)
		if r.via == down {
			affected = append(affected, r.key.mac())
		}
	}
	slices.SortFunc(affected, wire.MAC.Compare)
	for _, mac := range affected {
		r := t.get(mac)
		r.via = 0
		if mac == peer {
			r.clearBackups()
		}
		for r.nBackups > 0 && r.via == 0 {
			if id, ok := live(r.backups[0]); ok {
				r.via = id
			}
			r.dropBackup(r.backups[0])
		}
		if r.via != 0 {
			// The path over the backup is not stored; it is known to
			// avoid us, which is all later backup checks need.
			r.pathLen = 0
			r.pathKnown = false
		}
	}
	return affected
}

// repoint moves every route and backup through link from to link to (a
// new link to the same peer replaced it: the routes stay where they are).
func (t *routeTable) repoint(from, to LinkID, fromRef, toRef linkRef) {
	for r := range t.all {
		if r.via == from {
			r.via = to
		}
		if i := r.backupIndex(fromRef); i >= 0 && fromRef != 0 {
			if toRef == 0 {
				r.dropBackup(fromRef)
			} else {
				r.backups[i] = toRef
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
func (t *routeTable) expire(cutoff time.Time) []expiredRoute {
	var out []expiredRoute
	for r := range t.all {
		if r.refreshed <= stampOf(cutoff) {
			out = append(out, expiredRoute{r.key.mac(), r.via})
		}
	}
	slices.SortFunc(out, func(a, b expiredRoute) int { return a.target.Compare(b.target) })
	for _, x := range out {
		t.remove(x.target)
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
	r := n.routes.get(mac)
	if r == nil || r.via == 0 {
		return RouteInfo{}, false
	}
	return n.routeInfo(r), true
}

// EachNextHop calls fn with the target and next-hop link of every live
// route, in no particular order, without allocating: for drivers that
// walk the routes of many nodes (a simulator's checks).
func (n *Node) EachNextHop(fn func(target wire.MAC, via LinkID)) {
	for r := range n.routes.all {
		if r.via != 0 {
			fn(r.key.mac(), r.via)
		}
	}
}

// Routes returns every live route, sorted by target MAC.
func (n *Node) Routes() []RouteInfo {
	out := make([]RouteInfo, 0, n.routes.len())
	for r := range n.routes.all {
		if r.via != 0 {
			out = append(out, n.routeInfo(r))
		}
	}
	slices.SortFunc(out, func(a, b RouteInfo) int { return a.Target.Compare(b.Target) })
	return out
}

// backupIDs returns the links of r's backups, nil if none.
func (n *Node) backupIDs(r *route) []LinkID {
	var ids []LinkID
	for _, ref := range r.backupList() {
		if l := n.links.link(ref); l != nil {
			ids = append(ids, l.id)
		}
	}
	return ids
}

func (n *Node) routeInfo(r *route) RouteInfo {
	ri := RouteInfo{Target: r.key.mac(), Via: r.via, ID: r.id, Hops: -1, Backups: n.backupIDs(r),
		SinceRefresh: r.refreshed.since(n.clock.now), SinceLearned: r.learned.since(n.clock.now)}
	if l := n.links.byID[r.via]; l != nil {
		ri.NextHop = l.peer
	}
	if r.pathKnown {
		ri.Hops = int(r.pathLen) + 1
	}
	return ri
}

// failover moves every route through the link that went down to its first
// live backup, at once, or withdraws it (defect 8: no blackhole until the
// next announcement, no stale route until expiry). It returns the targets
// of the routes that went through it, sorted.
func (n *Node) failover(down LinkID, downRef linkRef, peer wire.MAC) []wire.MAC {
	affected := n.routes.failover(down, downRef, peer, func(ref linkRef) (LinkID, bool) {
		if l := n.links.link(ref); l != nil {
			return l.id, true
		}
		return 0, false
	})
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
	return n.routes.get(mac) != nil
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
			r.clearBackups()
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
