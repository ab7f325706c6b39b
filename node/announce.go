package node

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/invpn/invpn/wire"
)

// announce floods this node's own announcement to every neighbour.
// docs/protocol.md#behaviour: a node that takes incoming links sends 0x00 and
// the neighbour fills in the address it sees; a no_incoming or no_relay
// node sends an info without address itself. Extended neighbours get the
// 0x85 form of that info, with an empty path.
func (n *Node) announce() {
	n.timers.announceDue = time.Time{}
	if len(n.links.order) == 0 {
		// Isolated: the round is owed to the next link, which floods it
		// rather than greet quietly (routes to us were withdrawn while
		// no round could leave).
		n.clock.owed = true
		return
	}
	n.clock.owed = false

	id := n.newID()
	n.clock.announced, n.clock.announcedAt = id, n.clock.now
	var seedMsg, extMsg []byte
	if n.cfg.NoIncoming || n.cfg.NoRelay {
		info := wire.Info{ID: id, MAC: n.cfg.MAC}
		seedMsg = n.encode(&info)
		extMsg = n.encode(&wire.InfoPath{PathKnown: true, Info: info})
	} else {
		seedMsg = n.encode(&wire.InitialInfo{ID: id, MAC: n.cfg.MAC, Port: n.cfg.Port})
		extMsg = seedMsg
	}
	for _, l := range n.links.order {
		if l.extended {
			n.sendVouched(l, extMsg, n.cfg.MAC, id, n.ownInfo(id).Port)
		} else {
			n.send(l, seedMsg, true)
		}
	}
}

// receiveAnnouncement handles 0x00, 0x01 and 0x85.
func (n *Node) receiveAnnouncement(l *link, t wire.Type, msg []byte) {
	var (
		info      wire.Info
		path      []wire.MAC
		pathKnown bool
	)
	switch t {
	case wire.TypeInitialInfo:
		m, err := wire.DecodeInitialInfo(msg)
		if err != nil {
			n.malformed(l, err)
			return
		}
		// Defect 4: a 0x00 travels one hop, so it must announce the
		// certificate's MAC. Anything else is an attempt to take another
		// member's traffic: close the link, on every kind of link.
		if m.MAC != l.peer {
			n.violation(l, fmt.Errorf("%w: announced %s", ErrSpoofedMAC, m.MAC))
			return
		}
		// The neighbour turns 0x00 into 0x01 by adding the address it sees.
		info = wire.Info{ID: m.ID, MAC: m.MAC, Port: m.Port, Addr: l.addr.Addr()}
		pathKnown = true
	case wire.TypeInfo:
		m, err := wire.DecodeInfo(msg)
		if err != nil {
			n.malformed(l, err)
			return
		}
		info = m
		// A 0x01 about the neighbour itself (a no_incoming original) has
		// come straight from it; any other crossed unknown nodes.
		pathKnown = m.MAC == l.peer
	case wire.TypeInfoPath:
		m, err := wire.DecodeInfoPath(msg)
		if err != nil {
			n.malformed(l, err)
			return
		}
		info, path, pathKnown = m.Info, m.Path, m.PathKnown
		if pathKnown && (len(path) == 0 && m.MAC != l.peer || len(path) > 0 && path[len(path)-1] != l.peer) {
			n.violation(l, fmt.Errorf("0x85 for %s: path %v does not end at the sender", m.MAC, path))
			return
		}
	}
	n.announcement(l, info, path, pathKnown, false, 0)
}

// announcement handles one announcement of info.MAC's round info.ID that
// arrived on l over path (checked to end at the sender when known), as a
// change or, in a 0x88, as a refresh that relays held for held.
func (n *Node) announcement(l *link, info wire.Info, path []wire.MAC, pathKnown, refresh bool, held time.Duration) {
	info.Addr = info.Addr.Unmap()
	if !l.directory && !n.believed(l, info) {
		return
	}
	if info.MAC == n.cfg.MAC {
		// Our own announcement, echoed by an original node or handed back
		// by a neighbour's route copy after a restart: make sure our next
		// ids are newer than anything the mesh has seen from us. If the
		// mesh holds a newer round of ours than we sent in this run (a
		// restart that lost its id floor), every node drops our rounds as
		// old until we announce above it: do so now.
		if n.clock.observe(info.ID) {
			n.triggerAnnounce()
		}
		return
	}
	if info.MAC.IsGroup() || info.MAC.IsZero() {
		n.malformed(l, fmt.Errorf("announcement for non-unicast MAC %s", info.MAC))
		return
	}
	if l.directory {
		n.directoryAnnouncement(info)
		return
	}
	if pathKnown && slices.Contains(path, n.cfg.MAC) {
		// It already passed through us: a loop. In a quiet mesh the
		// sender's route now leads through us, so it is no backup.
		if r := n.routes.get(info.MAC); r != nil && n.quiet() {
			r.dropBackup(l.ref)
			if r.id == info.ID {
				n.nextHopHeard(l, r)
			}
		}
		return
	}
	r := n.routes.get(info.MAC)
	sent := stampOf(n.clock.now) - stamp(held)
	switch {
	case r != nil && info.ID < r.id:
		return // an older round
	case r != nil && info.ID == r.id && r.via != 0:
		// A later copy of the current round that batches held less, so
		// left first: the route moves to it. Otherwise it is a backup
		// next hop if it cannot lead back through us.
		if n.quiet() {
			n.switchFirst(l, info, path, pathKnown, r, refresh, sent)
		}
		if l.id != r.via && pathKnown {
			r.addBackup(l.ref)
		}
		n.nextHopHeard(l, r)
		return
	case r != nil && info.ID == r.id && !(pathKnown && len(path) < wire.MaxPath):
		return // a withdrawn round revives only over a path known to be loop-free
	}
	n.learn(l, info, path, pathKnown, r, refresh, sent)
}

// learn makes l the route to info.MAC for round info.ID and floods the
// announcement on (a refresh as a refresh).
func (n *Node) learn(l *link, info wire.Info, path []wire.MAC, pathKnown bool, r *route, refresh bool, sent stamp) {
	if r == nil {
		r = n.routes.add(info.MAC)
		r.learned = stampOf(n.clock.now)
		n.event(Event{Kind: EventRouteLearned, MAC: info.MAC, Link: l.id})
	} else if r.via != l.id {
		n.event(Event{Kind: EventRouteChanged, MAC: info.MAC, Link: l.id, From: r.via})
	}
	r.waitSlot, r.waitChange = 0, false
	if r.via != 0 && r.via != l.id {
		if refresh && !n.nextHopKeepsRound(r) {
			// The former next hop may have lost its route (a link on
			// its path was lost): its copy will not come, and the nodes
			// behind us that routed through it need the move now.
			refresh = false
		}
		n.waitForNextHop(r, info.ID, !refresh)
	}
	r.clearBackups()
	r.sent = sent
	n.keep(l, info, path, pathKnown, r, refresh)
}

// keep records round info of r's target, arrived over l, as the route
// (l becomes its next hop), and passes it on
// (docs/protocol.md#quiet-refresh for the batches of a quiet mesh).
func (n *Node) keep(l *link, info wire.Info, path []wire.MAC, pathKnown bool, r *route, refresh bool) {
	// The cache changes only when the announced address does: most rounds
	// repeat it, and the lookup is a cost of every flooded announcement.
	addr := packAddr(info.Addr)
	if fresh := r.id == 0; fresh || r.addr != addr || r.port != info.Port {
		n.updateCache(info)
	}
	r.id, r.via, r.refreshed, r.port, r.addr = info.ID, l.id, stampOf(n.clock.now), info.Port, addr
	r.confirmBy = 0 // a newer round: no longer a guess
	r.pathKnown = pathKnown
	n.routes.setPath(r, path)

	if n.cfg.NoRelay {
		return
	}
	if n.quiet() {
		if r.waitSlot == 0 {
			n.passOn(l, info, r, refresh)
		}
		return
	}
	// Flood on, never back to the link it came from (defect 1).
	out := wire.InfoPath{PathKnown: pathKnown && len(path) < wire.MaxPath, Info: info}
	var seedMsg, extMsg []byte
	for _, o := range n.links.order {
		if o == l {
			continue
		}
		if o.extended {
			if extMsg == nil {
				if out.PathKnown {
					out.Path = append(path[:len(path):len(path)], n.cfg.MAC)
				}
				extMsg = n.encodeInfoPath(&out)
			}
			n.sendVouched(o, extMsg, info.MAC, info.ID, info.Port)
		} else {
			if seedMsg == nil {
				seedMsg = n.encodeInfo(&info)
			}
			n.send(o, seedMsg, true)
		}
	}
}

// updateCache records the announced address in the peer cache; an
// announcement without address removes the entry
// (docs/protocol.md#first-path-routing). Only changes are output.
func (n *Node) updateCache(info wire.Info) {
	if !info.Addr.IsValid() {
		if n.dialer.cache.remove(info.MAC) {
			n.ready.CacheRemove = append(n.ready.CacheRemove, info.MAC)
		}
		return
	}
	ap := netip.AddrPortFrom(info.Addr, info.Port)
	old, known := n.dialer.cache.get(info.MAC)
	if known && old == ap {
		return
	}
	n.dialer.cache.set(info.MAC, ap)
	n.ready.CacheStore = append(n.ready.CacheStore, Peer{MAC: info.MAC, Addr: ap})
	if !known && n.quickDial() && (n.dialer.dialAt.IsZero() || n.clock.now.Before(n.dialer.dialAt)) {
		// A new peer to dial: do not wait for a backoff of others.
		if _, linked := n.links.byPeer[info.MAC]; !linked {
			n.dialer.dialAt = n.clock.now
		}
	}
}

// askAnnounce is called when a link is lost: routes that crossed it, here
// and anywhere in the mesh, are replaced by a fresh announcement round
// rather than at the next announce interval (defect 8, where no loop-free
// backup is known). The node floods a 0x86 to its extended neighbours and
// announces itself; every node that receives the 0x86 does the same.
func (n *Node) askAnnounce() {
	if len(n.links.order) == 0 {
		return
	}
	id := n.newID()
	n.dedup.asks.first(n.cfg.MAC, id, n.clock.now, n.cfg.DedupSpan)
	n.sendExtended(n.encode(&wire.AnnounceRequest{ID: id, Requester: n.cfg.MAC}))
	n.triggerAnnounce()
}

// sendExtended sends msg to every extended neighbour.
func (n *Node) sendExtended(msg []byte) {
	for _, l := range n.links.order {
		if l.extended {
			n.send(l, msg, true)
		}
	}
}

// receiveAnnounceRequest handles a 0x86: flood it on once and announce.
func (n *Node) receiveAnnounceRequest(l *link, msg []byte) {
	m, err := wire.DecodeAnnounceRequest(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if n.takeRequest(l, m.Requester, m.ID, msg) {
		n.triggerAnnounce()
	}
}

// takeRequest does what a 0x86 and a 0x89 share: it drops our own and
// those of requesters never linked or announced (no window per made-up
// MAC), de-duplicates per requester, and floods a new one on to the other
// extended neighbours. It reports whether msg was new.
func (n *Node) takeRequest(l *link, requester wire.MAC, id uint64, msg []byte) bool {
	if requester == n.cfg.MAC {
		return false
	}
	if !n.known(requester) {
		n.drop(DropUnknownSource, requester)
		return false
	}
	if !n.dedup.asks.first(requester, id, n.clock.now, n.cfg.DedupSpan) {
		return false
	}
	n.heardAsk(requester)
	if !n.cfg.NoRelay {
		for _, o := range n.links.order {
			if o != l && o.extended {
				n.send(o, msg, true)
			}
		}
	}
	return true
}

// triggerAnnounce announces now, or once TriggerGap has passed since the
// last triggered announcement.
func (n *Node) triggerAnnounce() {
	at := n.timers.lastTriggered.Add(n.cfg.TriggerGap)
	if !n.clock.now.Before(at) {
		n.timers.lastTriggered = n.clock.now
		n.announce()
		return
	}
	if n.timers.announceDue.IsZero() {
		n.timers.announceDue = at
		n.wakeAt(at)
	}
}

// sendTable gives a new neighbour a copy of the current round of every
// route, as if each announcement had been flooded to it, so that it (and
// the part of the mesh behind it) can reach everything at once instead of
// at the next announce interval of each node. The copies carry the rounds'
// ids, so nothing older replaces anything newer, and their paths, so none
// can loop back.
func (n *Node) sendTable(l *link) {
	if n.cfg.NoRelay {
		return
	}
	// Routes not refreshed for two intervals are not handed on: a copy
	// refreshes the receiver's expiry, and a route to a node that left
	// must not be kept alive by links that come up after it went.
	interval := n.cfg.AnnounceInterval
	if n.quiet() {
		interval = n.cfg.RefreshInterval
	}
	fresh := n.clock.now.Add(-2 * interval)
	macs := make([]wire.MAC, 0, n.routes.len())
	for r := range n.routes.all {
		mac := r.key.mac()
		if r.refreshed < stampOf(fresh) {
			continue
		}
		// The neighbour's own route goes too, withdrawn or not: it tells
		// a neighbour that restarted without its id floor which ids the
		// mesh has seen from it (it takes the copy as an echo).
		if r.via != 0 && r.via != l.id || mac == l.peer {
			macs = append(macs, mac)
		}
	}
	slices.SortFunc(macs, wire.MAC.Compare)
	for _, mac := range macs {
		r := n.routes.get(mac)
		if !l.extended {
			info := r.info()
			n.send(l, n.encode(&info), true)
			continue
		}
		if n.quiet() {
			// Held from when the round passed here: the neighbour sees the
			// copy as if the link had been up then, and moves its route
			// to it if it would have come first (quiet refresh).
			n.queueRoute(l, mac, r.slot, true, false)
			continue
		}
		out := wire.InfoPath{PathKnown: r.pathKnown && int(r.pathLen) < wire.MaxPath, Info: r.info()}
		if out.PathKnown {
			out.Path = append(n.routes.path(r), n.cfg.MAC)
		}
		n.sendVouched(l, n.encode(&out), out.MAC, out.ID, out.Port)
	}
}
