package node

import (
	"fmt"
	"slices"
	"time"

	"github.com/invpn/invpn/wire"
)

// Quiet refresh (docs/protocol.md#quiet-refresh). With RefreshInterval
// set, a node floods a new round of its own announcement at once only
// when something changes: a link comes up or goes down, a round of it is
// asked for, or an echo says the mesh holds a newer one. Between changes it
// starts a refresh round every RefreshInterval, jittered. A relay passes a
// refresh on in its batches: it holds what it passes on to a neighbour for
// up to BatchDelay and sends it in one 0x88, so a refresh costs each node
// a few messages per link whatever the size of the mesh. Each entry
// carries how long relays held it; a receiver orders copies of a round by
// arrival time less that, and moves the route when a later copy turns out
// to have come first, so batching does not change which path arrives
// first: routing stays first-path.

// linkBatch is what a link's next 0x88 will carry: the targets whose
// route (or, for this node's MAC, own announcement) it re-advertises. The
// entries are encoded when the batch goes out, from the routes as they
// are then: a route that moved meanwhile is sent once, as it is, and not
// to the neighbour it now goes through.
type linkBatch struct {
	items []batchItem
	// own is the position+1 in items of the node's own announcement, 0
	// when it is not queued; index has the position of every item of a
	// link without a pending bit (queueRoute).
	own    int32
	index  map[macKey]int32
	due    time.Time // when the batch must go out; zero when empty
	sent   time.Time // when the last batch went out
	urgent bool      // it holds a change: it goes at the end of this input
}

// batchItem is one target of a link's next batch.
type batchItem struct {
	mac    wire.MAC
	slot   int32 // the route's slot in the table when queued; -1 for none
	change bool  // a change (else a refresh)
	// retract: the route now goes through this link, and the entry goes
	// to the next hop all the same, its path naming the next hop, so that
	// it stops counting us as a backup (it took our copy of the round
	// before we moved to its).
	retract bool
}

// quiet reports whether the node runs quiet refresh.
func (n *Node) quiet() bool { return n.cfg.RefreshInterval > 0 }

// nextRefresh returns when the node's next refresh is due: RefreshInterval
// from now, less a random jitter of up to a quarter of it, so that the
// nodes of a mesh that started together do not refresh together.
func (n *Node) nextRefresh(now time.Time) time.Time {
	span := uint64(n.cfg.RefreshInterval / 4)
	jitter := time.Duration(0)
	if span > 0 {
		jitter = time.Duration(n.cfg.Rand.Uint64() % span)
	}
	return now.Add(n.cfg.RefreshInterval - jitter)
}

// refresh starts a refresh round of this node's own announcement: a new
// id, sent to seed-protocol neighbours as an announcement (the original
// needs newer ids to keep its route) and to extended ones as a refresh
// entry in their next batch.
func (n *Node) refresh() {
	if len(n.links.order) == 0 {
		return
	}
	id := n.newID()
	n.clock.announced, n.clock.announcedAt = id, n.clock.now
	var seedMsg []byte
	for _, l := range n.links.order {
		if l.extended {
			n.queueRoute(l, n.cfg.MAC, -1, false, false)
			continue
		}
		if seedMsg == nil {
			seedMsg = n.ownSeedMessage(n.ownInfo(id))
		}
		n.send(l, seedMsg, true)
	}
}

// greetQuietly gives a new link this node's current round, held since it
// went out, instead of flooding a new round to the whole mesh: with the
// table that follows, the neighbour sees every round as if the link had
// been up when it flooded, and the routes the link shortens move to it
// hop by hop (docs/protocol.md#quiet-refresh).
func (n *Node) greetQuietly(l *link) {
	if l.extended {
		n.queueRoute(l, n.cfg.MAC, -1, true, false)
		return
	}
	n.send(l, n.ownSeedMessage(n.ownInfo(n.clock.announced)), true)
}

// noAddress reports whether the node announces no address (it takes no
// incoming links).
func (n *Node) noAddress() bool { return n.cfg.NoIncoming || n.cfg.NoRelay }

// ownInfo is this node's announcement of round id, without address: a
// neighbour fills in the address it sees, unless the node takes no links.
func (n *Node) ownInfo(id uint64) wire.Info {
	info := wire.Info{ID: id, MAC: n.cfg.MAC}
	if !n.noAddress() {
		info.Port = n.cfg.Port
	}
	return info
}

// ownSeedMessage encodes the node's own announcement for a seed-protocol
// neighbour: a 0x00, or a 0x01 without address for a node that takes no
// links.
func (n *Node) ownSeedMessage(own wire.Info) []byte {
	if n.noAddress() {
		return n.encode(&own)
	}
	return n.encode(&wire.InitialInfo{ID: own.ID, MAC: own.MAC, Port: own.Port})
}

// queueRoute adds mac to l's next batch, as a change or a refresh (a
// change wins when both are queued), its entry marked retract when
// switchFirst asks. A change goes out at the end of this input, together
// with any refreshes waiting, unless a batch went to l less than
// ChangeDelay ago: then it waits until ChangeDelay after that one, so that
// a burst of changes (the mesh's start, the rounds a lost link asks for)
// costs a link one message per ChangeDelay while a lone change loses no
// time. A refresh waits up to BatchDelay for others.
//
// A route is queued once per batch. Its pending bit for the link
// (route.pending) says whether it is, and its changes and retracts bits
// carry the flags of a second queueing, so a burst that queues a route
// twice looks nothing up; the node's own announcement has its place in
// the batch (own). Only a link without a pending bit (past the 16th)
// finds its items through the batch's index.
func (n *Node) queueRoute(l *link, mac wire.MAC, slot int32, change, retract bool) {
	b := &l.batch
	bit := l.pendingBit()
	switch {
	case slot >= 0 && bit != 0:
		r := &n.routes.slots[slot]
		if r.pending&bit == 0 {
			r.pending |= bit
			b.items = append(b.items, batchItem{mac: mac, slot: slot, change: change, retract: retract})
			break
		}
		if change {
			r.changes |= bit
		}
		if retract {
			r.retracts |= bit
		}
	case slot < 0:
		if b.own > 0 {
			it := &b.items[b.own-1]
			it.change, it.retract = it.change || change, it.retract || retract
			break
		}
		b.items = append(b.items, batchItem{mac: mac, slot: slot, change: change, retract: retract})
		b.own = int32(len(b.items))
	default:
		if b.index == nil {
			b.index = map[macKey]int32{}
		}
		if k, ok := b.index[keyOf(mac)]; ok {
			it := &b.items[k]
			it.change, it.retract = it.change || change, it.retract || retract
			break
		}
		b.index[keyOf(mac)] = int32(len(b.items))
		b.items = append(b.items, batchItem{mac: mac, slot: slot, change: change, retract: retract})
	}
	if b.due.IsZero() {
		b.due = n.clock.now.Add(n.cfg.BatchDelay)
	}
	switch {
	case !change:
	case n.cfg.ChangeDelay > 0 && n.clock.now.Before(b.sent.Add(n.cfg.ChangeDelay)):
		// A batch went out less than ChangeDelay ago: a burst. Changes
		// wait for the next, at most ChangeDelay after that one.
		b.due = minTime(b.due, b.sent.Add(n.cfg.ChangeDelay))
	default:
		b.urgent = true
		n.urgentBatches = true
	}
	n.wakeAt(b.due)
}

// queued returns the route an item of l's batch holds by its pending bit
// (nil if none: the node's own, a link without a bit, or a route that
// expired and whose slot went to another target meanwhile).
func (n *Node) queued(l *link, it *batchItem) *route {
	if bit := l.pendingBit(); bit != 0 && it.slot >= 0 && int(it.slot) < len(n.routes.slots) {
		if r := &n.routes.slots[it.slot]; r.key == keyOf(it.mac) && r.pending&bit != 0 {
			return r
		}
	}
	return nil
}

// flags returns whether item it of l's batch is a change and a retract:
// its own flags, or those of a second queueing, kept in its route.
func (n *Node) flags(l *link, it *batchItem) (change, retract bool) {
	change, retract = it.change, it.retract
	if r := n.queued(l, it); r != nil {
		bit := l.pendingBit()
		change, retract = change || r.changes&bit != 0, retract || r.retracts&bit != 0
	}
	return change, retract
}

// dropBatch empties l's batch without sending it, clearing the pending
// bits of its routes.
func (n *Node) dropBatch(l *link) {
	b := &l.batch
	for i := range b.items {
		n.unqueue(l, &b.items[i])
	}
	n.emptyBatch(l)
}

// unqueue clears the bits of it's route for l, if it holds them: the
// route is no longer in l's batch.
func (n *Node) unqueue(l *link, it *batchItem) {
	if r := n.queued(l, it); r != nil {
		bit := l.pendingBit()
		r.pending &^= bit
		r.changes &^= bit
		r.retracts &^= bit
	}
}

// emptyBatch empties l's batch, whose routes' bits are clear.
func (n *Node) emptyBatch(l *link) {
	b := &l.batch
	clear(b.index)
	items := b.items[:0]
	if cap(items) > batchKeep {
		// A burst's batch (the start, a new link's table, a cut's
		// rounds): its room would stay with the link for good, at 1000
		// nodes 60 MB of it.
		items, b.index = nil, nil
	}
	b.items, b.due, b.urgent, b.own = items, time.Time{}, false, 0
}

// batchKeep is the most items a link's emptied batch keeps room for.
const batchKeep = 64

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// flushBatch sends l's batch: as many 0x88 as the entries need, or a lone
// change that nobody held as it would travel unbatched (a 0x85, or the
// node's own as a 0x00). Each entry is the route as it is now, held since
// its round would have arrived (its sent time); a route that is gone,
// withdrawn, or now goes through l is left out (the neighbour's own route
// goes to it all the same: a new link's table tells it which ids the mesh
// holds of it).
func (n *Node) flushBatch(l *link) {
	b := &l.batch
	if len(b.items) == 0 {
		return
	}
	// Each entry is encoded as it is made, straight into the arena: its
	// path is the node's scratch, good until the next.
	start, count, size, total, lone := -1, 0, 0, 0, batchItem{}
	for i := range b.items {
		it := &b.items[i]
		change, retract := n.flags(l, it)
		n.unqueue(l, it) // the route is read below, once: one pass over the batch
		e, ok := n.batchEntry(l, it.mac, it.slot, !change, retract)
		if !ok {
			continue
		}
		el := wire.BatchEntryLen(&e)
		if start >= 0 && size+el > wire.MaxBatchBody {
			n.sendBatch(l, start, count)
			start = -1
		}
		if start < 0 {
			start, count, size = len(n.arena), 0, 0
			n.arena = wire.AppendBatchHeader(n.arena, 0)
		}
		n.vouch(l, e.MAC, e.ID, e.Port)
		n.arena = e.Append(n.arena)
		count, size, total, lone = count+1, size+el, total+1, batchItem{mac: it.mac, slot: it.slot, change: change, retract: retract}
	}
	if total == 1 {
		if e, _ := n.batchEntry(l, lone.mac, lone.slot, !lone.change, lone.retract); !e.Refresh && e.Held == 0 {
			n.arena = n.arena[:start]
			start = -1
			var msg []byte
			if e.Self {
				msg = n.encode(&wire.InitialInfo{ID: e.ID, MAC: e.MAC, Port: e.Port})
			} else {
				msg = n.encodeInfoPath(&e.InfoPath)
			}
			n.sendVouches(l) // the vouch of the entry, noted above
			n.send(l, msg, true)
		}
	}
	if start >= 0 {
		n.sendBatch(l, start, count)
	}
	n.emptyBatch(l)
	b.sent = n.clock.now
}

// sendBatch sends to l the 0x88 encoded in the arena from start, with
// its count of entries written in.
func (n *Node) sendBatch(l *link, start, count int) {
	wire.AppendBatchHeader(n.arena[start:start], count)
	msg := n.sinceMark(start)
	n.sendVouches(l) // encoded after msg: its bytes stay
	n.send(l, msg, true)
}

// batchEntry returns the entry that re-advertises mac to l now, and
// whether there is one. Its path is the node's scratch, good until the
// next call.
func (n *Node) batchEntry(l *link, mac wire.MAC, slot int32, refresh, retract bool) (wire.BatchEntry, bool) {
	if mac == n.cfg.MAC {
		return wire.BatchEntry{Refresh: refresh, Self: !n.noAddress(), Held: n.clock.now.Sub(n.clock.announcedAt),
			InfoPath: wire.InfoPath{PathKnown: true, Info: n.ownInfo(n.clock.announced)}}, true
	}
	r := n.routes.at(slot, mac)
	if r == nil || (r.via == 0 || r.via == l.id && !retract) && mac != l.peer {
		return wire.BatchEntry{}, false
	}
	e := wire.BatchEntry{Refresh: refresh, Held: r.sent.since(n.clock.now),
		InfoPath: wire.InfoPath{PathKnown: r.pathKnown && int(r.pathLen) < wire.MaxPath, Info: r.info()}}
	if e.PathKnown {
		n.pathScratch = append(append(n.pathScratch[:0], n.routes.path(r)...), n.cfg.MAC)
		e.Path = n.pathScratch
	}
	return e, true
}

// flushUrgent sends the batches that hold a change; called at the end of
// every input that can queue one.
func (n *Node) flushUrgent() {
	if !n.urgentBatches {
		return
	}
	n.urgentBatches = false
	for _, l := range n.links.order {
		if l.batch.urgent {
			n.flushBatch(l)
		}
	}
}

// flushDue sends the batches whose BatchDelay is over.
func (n *Node) flushDue(now time.Time) {
	for _, l := range n.links.order {
		if due(l.batch.due, now) {
			n.flushBatch(l)
		}
	}
}

// receiveBatch handles a 0x88: each entry as the announcement it carries.
//
// The entries are read one at a time, without allocating (at 1000 nodes
// decoding whole batches allocated 0.8 GB in the first 5 simulated
// seconds); a malformed entry closes the link after the entries before it
// were taken, as if they had come in a batch of their own.
func (n *Node) receiveBatch(l *link, msg []byte) {
	r := &n.batchReader
	if err := r.Reset(msg); err != nil {
		n.malformed(l, err)
		return
	}
	for i := 0; ; i++ {
		e, ok, err := r.Next()
		if err != nil {
			n.malformed(l, err)
			return
		}
		if !ok {
			return
		}
		info, path, pathKnown := e.Info, e.Path, e.PathKnown
		if e.Self {
			// The sender's own, like a 0x00: it must be the certificate's
			// MAC, and the address is the one seen on the link.
			if info.MAC != l.peer || !pathKnown || len(path) > 0 || info.Addr.IsValid() {
				n.violation(l, fmt.Errorf("%w: 0x88 entry %d announces %s as the sender's own (path %v, addr %v)",
					ErrSpoofedMAC, i, info.MAC, path, info.Addr))
				return
			}
			info.Addr = l.addr.Addr()
		} else if pathKnown && (len(path) == 0 && info.MAC != l.peer || len(path) > 0 && path[len(path)-1] != l.peer) {
			n.violation(l, fmt.Errorf("0x88 entry %d for %s: path %v does not end at the sender", i, info.MAC, path))
			return
		}
		n.announcement(l, info, path, pathKnown, e.Refresh, e.Held)
		if n.links.byID[l.id] != l {
			return // a violation in an entry closed the link
		}
	}
}

// switchFirst moves r's route to l when l's copy of the current round
// left its source earlier than the one the route took, less the time
// relays held each (a batch held the first copy longer, or the copy is a
// new link's table, held since the round passed the sender), and passes
// it on. The old next hop's copy came over a path that avoids us: it
// becomes the first backup. An earlier copy from the next hop itself only
// corrects the route's time and path. It reports whether it took the
// copy.
func (n *Node) switchFirst(l *link, info wire.Info, path []wire.MAC, pathKnown bool, r *route, refresh bool, sent stamp) bool {
	if !pathKnown || len(path) >= wire.MaxPath || sent >= r.sent {
		return false
	}
	old := r.via
	if old != l.id {
		r.dropBackup(l.ref)
		if ol := n.links.get(old); r.pathKnown && ol != nil {
			r.firstBackup(ol.ref)
		}
		n.event(Event{Kind: EventRouteChanged, MAC: info.MAC, Link: l.id, From: old})
	}
	r.sent = sent
	n.keep(l, info, path, pathKnown, r, refresh)
	if old != l.id && l.extended && !n.cfg.NoRelay && info.MAC != l.peer && r.waitSlot == 0 {
		// l had our copy of this round, from before we moved to its: as
		// a backup of l it would lead back here. The re-advertisement,
		// whose path names l, makes l drop it. (A round still held for
		// the former next hop went to nobody yet.)
		n.queueRoute(l, info.MAC, r.slot, !refresh, true)
	}
	return true
}

// passOn re-advertises the route to mac to every neighbour but l, in
// their batches: a change at the end of this input, a refresh within
// BatchDelay; a seed-protocol neighbour gets the 0x01 info at once.
func (n *Node) passOn(l *link, info wire.Info, r *route, refresh bool) {
	var seedMsg []byte
	for _, o := range n.links.order {
		if o == l {
			continue
		}
		if o.extended {
			n.queueRoute(o, info.MAC, r.slot, !refresh, false)
			continue
		}
		if seedMsg == nil {
			seedMsg = n.encodeInfo(&info)
		}
		n.send(o, seedMsg, true)
	}
}

// routedAcross returns, sorted, the targets the peer of l probably
// routes through us: those whose round we passed on to it and it did not
// pass back (it is neither our next hop nor a backup). When only the far
// end notices a cut, a round of these is what moves the routes that
// crossed the link the other way.
//
// A peer that passed no round on to us (none of our routes or backups
// goes through it) has no other link, or relays nothing: no round can
// reach it but over the lost link, so none is asked for, and relayed is
// false. This spares the mesh a round of every node when a leaf is cut
// off.
func (n *Node) routedAcross(l *link) (targets []wire.MAC, relayed bool) {
	var out []wire.MAC
	for r := range n.routes.all {
		mac := r.key.mac()
		if mac == l.peer {
			continue
		}
		if r.via == l.id || l.ref != 0 && r.backupIndex(l.ref) >= 0 {
			relayed = true
		} else if r.via != 0 {
			out = append(out, mac)
		}
	}
	if !relayed {
		return nil, false
	}
	slices.SortFunc(out, wire.MAC.Compare)
	return out, true
}

// mergeSorted returns the MACs of a and b, sorted, without duplicates.
func mergeSorted(a, b []wire.MAC) []wire.MAC {
	out := slices.Concat(a, b)
	slices.SortFunc(out, wire.MAC.Compare)
	return slices.Compact(out)
}

// askAnnounceFor floods a 0x89 naming targets, the routes that crossed a
// lost link, so that only they announce again (MaxRequestTargets per
// message), and announces this node.
func (n *Node) askAnnounceFor(targets []wire.MAC) {
	if len(n.links.order) == 0 {
		n.clock.owed = true // our next link floods a round
		return
	}
	n.requestRounds(targets)
	n.triggerAnnounce()
}

// requestRounds floods 0x89s asking targets for a new round.
func (n *Node) requestRounds(targets []wire.MAC) {
	for len(targets) > 0 {
		part := targets[:min(len(targets), wire.MaxRequestTargets)]
		targets = targets[len(part):]
		id := n.newID()
		n.dedup.asks.first(n.cfg.MAC, id, n.clock.now, n.cfg.DedupSpan)
		n.sendExtended(n.encode(&wire.AnnounceRequestFor{ID: id, Requester: n.cfg.MAC, Targets: part}))
	}
}

// receiveAnnounceRequestFor handles a 0x89: flood it on once, and announce
// if this node is one of its targets.
func (n *Node) receiveAnnounceRequestFor(l *link, msg []byte) {
	m, err := wire.DecodeAnnounceRequestFor(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if !n.takeRequest(l, m.Requester, m.ID, msg) {
		return
	}
	n.notePeerAsk(l, m)
	if slices.Contains(m.Targets, n.cfg.MAC) {
		n.triggerAnnounce()
	}
}

// Both ends of a silent cut find it within a few milliseconds of each
// other, and each asked at once for its own routes across the link and
// for those the peer probably routed across it (routedAcross): the same
// targets, twice. Each target announced twice, the second time
// TriggerGap later: at 1000 nodes a cut that 880 routes crossed cost 1766
// rounds where 883 do (the second asks came 0.5 to 9.4 ms after the
// first). Now a node whose link failed by liveness asks at once only for
// its own routes across it, which nobody else knows of, and for the
// peer's only AskWindow later, leaving out whatever the peer's own 0x89
// asked for meanwhile (or before: a peer's 0x89 that came over another
// link while the direct one was silent). A 0x89's requester is not
// authenticated: a member that forges one in a neighbour's name can only
// delay rounds here until FailoverConfirm asks again (signed requests
// would close that). The peer's ask, sent when it lost the link,
// asked for rounds that leave after the loss and cannot cross the link;
// the peer announces itself with it. When the peer did not notice (a
// one-way cut: it hears of it later), the rounds go AskWindow late. A
// link closed rather than found silent asks for both at once (askAfterLoss).

// acrossAsk is the ask for the routes the peer of a lost link probably
// routed across it, held AskWindow for the peer's own ask.
type acrossAsk struct {
	peer    wire.MAC
	targets []wire.MAC // sorted
	due     time.Time
}

// askAfterLoss asks, once the last link l to a peer is lost, for rounds
// of affected (the routes that crossed it here, sorted) and of across
// (those the peer probably routed across it, sorted), less those the
// peer asked for itself, and announces this node. The across part waits
// AskWindow when l failed by liveness (silent: the peer may be noticing
// too); when l was closed (by the peer, which may have crashed and will
// ask for nothing, or by its transport) it goes at once, in the same
// 0x89s.
func (n *Node) askAfterLoss(l *link, affected, across []wire.MAC, silent bool) {
	across = n.notAskedYet(l, subtractSorted(across, affected))
	if !silent || n.cfg.AskWindow <= 0 {
		n.askAnnounceFor(mergeSorted(affected, across))
		return
	}
	n.askAnnounceFor(affected)
	if len(across) == 0 || len(n.links.order) == 0 {
		return
	}
	due := n.clock.now.Add(n.cfg.AskWindow)
	n.acrossAsks = append(n.acrossAsks, acrossAsk{peer: l.peer, targets: across, due: due})
	n.wakeAt(due)
}

// notePeerAsk takes m, the first copy of a 0x89 that arrived over l, out
// of the held asks for its requester's routes; when its requester is a
// neighbour over another link that has been silent since, it notes m on
// that link for the moment the link is found lost.
func (n *Node) notePeerAsk(l *link, m wire.AnnounceRequestFor) {
	pl := n.links.to(m.Requester)
	overOther := pl != nil && pl != l && n.quiet() // the peer's ask, not over its link
	held := slices.ContainsFunc(n.acrossAsks, func(a acrossAsk) bool { return a.peer == m.Requester })
	if !held && !overOther {
		return
	}
	asked := slices.SortedFunc(slices.Values(m.Targets), wire.MAC.Compare) // a foreign node's need not be
	for i := range n.acrossAsks {
		if a := &n.acrossAsks[i]; a.peer == m.Requester {
			a.targets = subtractSorted(a.targets, asked)
		}
	}
	if !overOther {
		return
	}
	if !pl.lastRecv.Before(pl.peerAskedAt) {
		pl.peerAsked = pl.peerAsked[:0] // heard from since: that ask was about another link
	}
	pl.peerAsked = mergeSorted(pl.peerAsked, asked)
	pl.peerAskedAt = n.clock.now
}

// notAskedYet returns targets, sorted, less those the peer of the lost
// link l asked for while l was silent (notePeerAsk).
func (n *Node) notAskedYet(l *link, targets []wire.MAC) []wire.MAC {
	if len(l.peerAsked) == 0 || !l.lastRecv.Before(l.peerAskedAt) || n.clock.now.Sub(l.peerAskedAt) > n.cfg.LinkTimeout {
		return targets
	}
	return subtractSorted(targets, l.peerAsked)
}

// sendAcrossAsks sends the held asks that are due, with what is left of
// them.
func (n *Node) sendAcrossAsks(now time.Time) {
	k := 0
	for k < len(n.acrossAsks) && !now.Before(n.acrossAsks[k].due) {
		if a := n.acrossAsks[k]; len(a.targets) > 0 {
			n.requestRounds(a.targets)
		}
		k++
	}
	clear(n.acrossAsks[:k])
	n.acrossAsks = n.acrossAsks[k:]
	if len(n.acrossAsks) == 0 {
		n.acrossAsks = nil
	}
}

// acrossDeadline returns when the first held ask is due; zero if none.
func (n *Node) acrossDeadline() time.Time {
	if len(n.acrossAsks) == 0 {
		return time.Time{}
	}
	return n.acrossAsks[0].due
}

// subtractSorted returns the MACs of a (sorted) that are not in b
// (sorted), reusing a.
func subtractSorted(a, b []wire.MAC) []wire.MAC {
	return slices.DeleteFunc(a, func(mac wire.MAC) bool {
		_, found := slices.BinarySearchFunc(b, mac, wire.MAC.Compare)
		return found
	})
}

// A relay that passes on the first copy of a refresh round it receives
// sends the round down whatever path the batches happened to empty first,
// and then, as better copies come in, moves the route and re-advertises
// it, over and over: at 1000 nodes each refresh round was re-advertised
// about three times per node, so most of a refresh's entries were
// corrections. In a quiet mesh the copy that comes first in the
// competition (least arrival less held time) is almost always the one
// over the route's current next hop: paths changed little since the last
// round. So when the first copy of a refresh round comes from another
// neighbour, the node takes it as the route, as always, but passes the
// round on only once the former next hop's copy is in too (the copy that
// wins is then known, and goes out once), or after refreshWaitBatches
// batch delays if it does not come (the neighbour's own route moved, or the link went down).
// The rounds a cut asks for, a burst of changes held up to ChangeDelay at
// each relay, had the same disorder: a change waits likewise, but only
// changeWaitDelays change delays, and only where the former next hop's
// copy is likely to come (nextHopKeepsRound; docs/protocol.md#quiet-refresh).

// refreshWaitBatches is how many batch delays a refresh round waits for
// its former next hop's copy: each relay holds a copy up to one batch
// delay, so this covers paths whose holds differ by up to four batches.
const refreshWaitBatches = 4

// changeWaitDelays is how many change delays a change round waits for its
// former next hop's copy: a relay in a burst holds a copy up to one, so
// this covers paths whose holds differ by up to four (2 gave 5 % more
// bytes at 1000 nodes, 8 about 1 % less, against 4).
const changeWaitDelays = 4

// refreshWaits is a queue of rounds held for their former next hop's
// copy (one for refreshes, one for changes). The wait is the same for
// every round of a queue, so it is in deadline order.
type refreshWaits struct {
	queue []refreshWait
	head  int
}

// refreshWait is one round held for its former next hop's copy.
type refreshWait struct {
	mac  wire.MAC
	slot int32
	id   uint64
	due  stamp
}

// waitForNextHop holds r's round id, just learned over another neighbour
// than r's former next hop r.via, until that one's copy is in: a refresh
// for refreshWaitBatches batch delays at most, a change (change set) for
// changeWaitDelays change delays and only when nextHopKeepsRound. Only a
// next hop with a link slot (one of the first 16 links) is waited for:
// the route names it by its slot.
func (n *Node) waitForNextHop(r *route, id uint64, change bool) {
	old := n.links.byID[r.via]
	w, span := &n.waits, refreshWaitBatches*n.cfg.BatchDelay
	if change {
		if !n.nextHopKeepsRound(r) {
			return
		}
		w, span = &n.changeWaits, changeWaitDelays*n.cfg.ChangeDelay
	}
	if !n.quiet() || n.cfg.NoRelay || span <= 0 || old == nil || old.ref == 0 || old.ref > pendingRefs {
		return
	}
	due := n.clock.now.Add(span)
	r.waitSlot, r.waitChange = old.ref, change
	w.queue = append(w.queue, refreshWait{mac: r.key.mac(), slot: r.slot, id: id, due: stampOf(due)})
	n.wakeAt(due)
}

// nextHopKeepsRound reports whether r's former next hop will most likely
// pass on a change round of r's target too, so that the round is worth
// waiting for: r's path is known (a route moved to a backup has none),
// and neither its target nor any node on it asked for rounds lately (a
// node that asks lost a link: the path may cross it, and the next hop may
// have lost its route). Waiting for a next hop that lost its route would
// only delay the round toward the nodes behind it.
func (n *Node) nextHopKeepsRound(r *route) bool {
	if !r.pathKnown {
		return false
	}
	n.forgetAskers()
	for _, a := range n.askers {
		if a.mac == r.key.mac() || slices.Contains(n.routes.path(r), a.mac) {
			return false
		}
	}
	return true
}

// asker is a node heard asking for rounds (a 0x86 or 0x89), and when.
type asker struct {
	mac wire.MAC
	at  stamp
}

// heardAsk notes that mac asked for rounds now.
func (n *Node) heardAsk(mac wire.MAC) {
	n.forgetAskers()
	for i := range n.askers {
		if n.askers[i].mac == mac {
			n.askers = append(slices.Delete(n.askers, i, i+1), asker{mac, stampOf(n.clock.now)})
			return
		}
	}
	n.askers = append(n.askers, asker{mac, stampOf(n.clock.now)})
}

// forgetAskers forgets the askers heard more than FailoverConfirm ago:
// the rounds they asked for have come by then.
func (n *Node) forgetAskers() {
	limit := stampOf(n.clock.now.Add(-n.cfg.FailoverConfirm))
	k := 0
	for k < len(n.askers) && n.askers[k].at <= limit {
		k++
	}
	if k > 0 {
		n.askers = slices.Delete(n.askers, 0, k)
	}
}

// nextHopHeard ends the wait of r's round when l is the former next hop
// it waits for: its copy (or a sign that its route now leads through us)
// is in, so the route is what the round will be, and goes on.
func (n *Node) nextHopHeard(l *link, r *route) {
	if r.waitSlot == 0 || r.waitSlot != l.ref {
		return
	}
	n.passOnHeld(r)
}

// passOnHeld ends r's wait and passes its round on, held until now, to
// every neighbour but its next hop.
func (n *Node) passOnHeld(r *route) {
	change := r.waitChange
	r.waitSlot, r.waitChange = 0, false
	if r.via == 0 {
		return // withdrawn meanwhile: nothing to pass on
	}
	n.passOn(n.links.byID[r.via], r.info(), r, !change)
}

// endWaits passes on the held rounds whose wait is over.
func (n *Node) endWaits(now time.Time) {
	n.endWaitsOf(&n.waits, now)
	n.endWaitsOf(&n.changeWaits, now)
}

// endWaitsOf passes on the rounds of w whose wait is over.
func (n *Node) endWaitsOf(w *refreshWaits, now time.Time) {
	for w.head < len(w.queue) && w.queue[w.head].due <= stampOf(now) {
		it := w.queue[w.head]
		w.head++
		if r := n.routes.at(it.slot, it.mac); r != nil && r.id == it.id && r.waitSlot != 0 {
			n.passOnHeld(r)
		}
	}
	if w.head == len(w.queue) {
		w.queue, w.head = w.queue[:0], 0
	} else if w.head > len(w.queue)/2 {
		w.queue = w.queue[:copy(w.queue, w.queue[w.head:])]
		w.head = 0
	}
}

// waitDeadline returns when the oldest held round's wait is over; zero
// when none is held.
func (n *Node) waitDeadline() time.Time {
	a, b := n.waits.deadline(), n.changeWaits.deadline()
	if a == 0 || b != 0 && b < a {
		a = b
	}
	if a == 0 {
		return time.Time{}
	}
	return n.clock.now.Add(time.Duration(a - stampOf(n.clock.now)))
}

// deadline returns the due time of w's oldest wait; 0 if none.
func (w *refreshWaits) deadline() stamp {
	if w.head == len(w.queue) {
		return 0
	}
	return w.queue[w.head].due
}
