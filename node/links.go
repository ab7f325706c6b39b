package node

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/invpn/invpn/wire"
)

// link is one live link.
type link struct {
	id       LinkID
	peer     wire.MAC
	addr     netip.AddrPort
	dialed   bool
	extended bool
	up       time.Time
	lastRecv time.Time
	hb       heartbeat // liveness state of an extended link
	batch    linkBatch // what its next 0x88 carries (quiet refresh)
	// ref is the link's short name in the routes (their backups and
	// refresh waits), 0 when all 255 are taken; below pendingRefs, ref-1
	// is also its bit in route.pending.
	ref linkRef
	// peerAsked is what the peer's own 0x89s asked for, sorted, when
	// they came over other links while this one was silent (since
	// peerAskedAt): see notePeerAsk.
	peerAsked   []wire.MAC
	peerAskedAt time.Time
	// directory marks a link that carries only a table, for the address
	// cache, and then closes (bootstrap.go): no routes, floods or data
	// cross it. It is in linkSet.directory, not in order, and has no ref.
	directory bool
	// heard is set by the link's first message: a dialled link that ends
	// before it counts as a failed dial (a peer that refuses us after the
	// handshake, as a member refuses a revoked one under TLS 1.3, must not
	// be redialled at once, over and over).
	heard bool
	// certsHeld are the members whose certificates the peer has: sent to
	// it, or received from it (signed.go). nil until one is.
	certsHeld map[macKey]struct{}
	// features are the bits of the peer's 0x8F (wire.FeatureGSO): what
	// else it takes on this link. 0 until its 0x8F comes.
	features uint32
	// retireBy, set on a retiring link, is when the node closes it;
	// retireReason is why it was given up.
	retireBy     time.Time
	retireReason error
}

// linkRef is a live link as the routes name it, 1 to 255; 0 is none. A
// ref is freed when its link goes, and every route drops its backups
// through the link then (routeTable.failover), so a reused ref never
// names the wrong link. It is a byte where a LinkID is 8: at 1000 nodes a
// route's 7 backups took 56 of its 152 bytes.
type linkRef uint8

// pendingRefs is how many refs have a bit in route.pending (ref-1); the
// batch of a link with a higher ref, or none, finds queued routes through
// its index alone.
const pendingRefs = 16

// pendingBit returns l's bit in route.pending, 0 if it has none.
func (l *link) pendingBit() uint16 {
	if l.ref == 0 || l.ref > pendingRefs {
		return 0
	}
	return 1 << (l.ref - 1)
}

// linkSet is the live links: by id, by peer, and in id order, the order
// every flood goes out in (map order must not reach the wire). At most one
// link per peer is in byPeer; while a link replaces another, byPeer
// already names the new one.
type linkSet struct {
	byID   map[LinkID]*link
	order  []*link // sorted by id; the mesh links, directory links left out
	byPeer map[wire.MAC]*link
	// directory holds the directory links (bootstrap.go), sorted by id.
	directory []*link
	// byRef[r-1] is the link that holds ref r, nil when r is free.
	byRef []*link
	// holdDown is, per peer, how often its links failed by liveness
	// lately (see liveness.go); it outlives the links.
	holdDown map[wire.MAC]holdDown
	// retiring are the links given up for another link to the same peer
	// (a duplicate), sorted by id: out of the set above, nothing is sent
	// on them, but the frames still in them are taken until the peer
	// ends them or their retireBy (retireLink).
	retiring []*link
}

func newLinkSet() linkSet {
	return linkSet{byID: map[LinkID]*link{}, byPeer: map[wire.MAC]*link{}, holdDown: map[wire.MAC]holdDown{}}
}

// reserveRef gives l the lowest free ref, if it has none and one is left.
func (s *linkSet) reserveRef(l *link) {
	if l.ref != 0 {
		return
	}
	i := slices.Index(s.byRef, nil)
	if i < 0 {
		if len(s.byRef) == 255 {
			return
		}
		i = len(s.byRef)
		s.byRef = append(s.byRef, nil)
	}
	s.byRef[i] = l
	l.ref = linkRef(i + 1)
}

// link returns the live link ref names, nil if none.
func (s *linkSet) link(ref linkRef) *link {
	if ref == 0 || int(ref) > len(s.byRef) {
		return nil
	}
	return s.byRef[ref-1]
}

// add registers l under its id, its peer and its ref (given now, unless
// reserveRef gave it one already); a directory link gets no ref and goes
// to directory instead of order.
func (s *linkSet) add(l *link) {
	s.byID[l.id] = l
	s.byPeer[l.peer] = l
	if l.directory {
		s.directory = insertByID(s.directory, l)
		return
	}
	s.reserveRef(l)
	s.order = insertByID(s.order, l)
}

// insertByID inserts l into links, sorted by id.
func insertByID(links []*link, l *link) []*link {
	i, _ := slices.BinarySearchFunc(links, l.id, byID)
	return slices.Insert(links, i, l)
}

// deleteByID deletes l from links, sorted by id, if it is there.
func deleteByID(links []*link, l *link) []*link {
	if i, ok := slices.BinarySearchFunc(links, l.id, byID); ok && links[i] == l {
		return slices.Delete(links, i, i+1)
	}
	return links
}

func byID(l *link, id LinkID) int { return cmp.Compare(l.id, id) }

// remove forgets l; its peer stays linked if another link replaced it.
func (s *linkSet) remove(l *link) {
	if l.ref != 0 && s.byRef[l.ref-1] == l {
		s.byRef[l.ref-1] = nil
	}
	delete(s.byID, l.id)
	if s.byPeer[l.peer] == l {
		delete(s.byPeer, l.peer)
	}
	s.order = deleteByID(s.order, l)
	s.directory = deleteByID(s.directory, l)
}

// get returns the live link id, or nil.
func (s *linkSet) get(id LinkID) *link { return s.byID[id] }

// to returns the live link to peer, or nil.
func (s *linkSet) to(peer wire.MAC) *link { return s.byPeer[peer] }

// len returns the number of live mesh links (directory links left out).
func (s *linkSet) len() int { return len(s.order) }

// linkUp handles LinkUp.
func (n *Node) linkUp(in LinkUp) {
	id, peer, dialed := in.Link, in.Peer, in.Dialed
	l := &link{id: id, peer: peer, addr: unmap(in.Addr), dialed: dialed, extended: in.Extended, up: n.clock.now, lastRecv: n.clock.now}
	delete(n.dialer.dialing, peer)
	if peer == n.cfg.MAC {
		n.ready.Closes = append(n.ready.Closes, Close{Link: id, Reason: ErrSelfLink})
		n.scheduleDial()
		return
	}
	old, dup := n.links.byPeer[peer]
	if directory, full := n.linkKind(l); directory && !dup {
		n.openDirectory(l, full)
		n.scheduleDial()
		n.wakeAt(n.directoryDeadline())
		return
	}
	if dup {
		// One link per peer. Both ends keep the link dialled by the
		// smaller MAC, so simultaneous dials settle on the same one; a
		// redial by the same side replaces the old link, which its
		// dialler believes dead.
		if old.dialed != dialed && n.keepDialedBy(old) {
			n.retireLink(l, fmt.Errorf("link %d to %s kept instead: %w", old.id, peer, ErrDuplicateLink))
			n.scheduleDial()
			return
		}
		// The peer stays linked: registering the new link first keeps
		// the old one's removal from looking like a lost peer (no 0x86).
		n.links.byPeer[peer] = l
		if n.quiet() {
			// The peer is the same: its routes stay, over the new link,
			// rather than fail over and wait for rounds nobody asks for.
			n.links.reserveRef(l)
			n.routes.repoint(old.id, id, old.ref, l.ref)
		}
		reason := fmt.Errorf("replaced by link %d: %w", id, ErrDuplicateLink)
		n.removeLink(old, reason)
		n.retireLink(old, reason)
	}
	n.startLiveness(l)
	n.links.add(l)
	n.scheduleDial()
	n.event(Event{Kind: EventLinkUp, MAC: peer, Link: id})
	n.sendFeatures(l)
	n.sendOwnCertificate(l)
	// docs/protocol.md#behaviour: announce right after each link comes
	// up; in a quiet mesh only the first link floods a round.
	if n.quiet() && n.clock.announced != 0 && !n.clock.owed {
		n.greetQuietly(l)
	} else {
		n.announce()
	}
	n.sendTable(l)
	n.sendRevocation(l)
}

// keepDialedBy reports whether l is the link both ends keep: the one
// dialled by the smaller MAC.
func (n *Node) keepDialedBy(l *link) bool {
	weSmaller := macLess(n.cfg.MAC, l.peer)
	return l.dialed == weSmaller
}

// retireLink keeps l, a link given up for another link to the same peer,
// open for its detection time (DeadAfter for a link that never carried
// a heartbeat) without sending on it, and takes the frames that arrive
// on it, then closes it (checkRetiring). Both ends of simultaneous dials
// give up the same link, each when it sees both; closing it at once lost
// the frames the peer had put on it before it saw the other link (a
// round trip's worth, docs/protocol.md#link-liveness). Its control
// messages are not taken: the peer sends its table again over the link
// it keeps. l is already out of the live links (or never was in them).
func (n *Node) retireLink(l *link, reason error) {
	d := n.detectAfter(l)
	if d <= 0 {
		d = n.cfg.DeadAfter
	}
	if d <= 0 {
		d = n.cfg.LinkTimeout
	}
	l.retireBy, l.retireReason = n.clock.now.Add(d), reason
	n.links.retiring = insertByID(n.links.retiring, l)
	n.wakeAt(l.retireBy)
}

// retired returns the retiring link id, nil if there is none.
func (s *linkSet) retired(id LinkID) *link {
	if i, ok := slices.BinarySearchFunc(s.retiring, id, byID); ok {
		return s.retiring[i]
	}
	return nil
}

// checkRetiring closes the retiring links whose time is up.
func (n *Node) checkRetiring(now time.Time) {
	kept := n.links.retiring[:0]
	for _, l := range n.links.retiring {
		if now.Before(l.retireBy) {
			kept = append(kept, l)
			continue
		}
		n.ready.Closes = append(n.ready.Closes, Close{Link: l.id, Reason: l.retireReason})
	}
	clear(n.links.retiring[len(kept):])
	n.links.retiring = kept
}

// endRetiring forgets the retiring link l; close asks the driver to
// close it first (the driver ends a link it reported down itself).
func (n *Node) endRetiring(l *link, close bool, reason error) {
	n.links.retiring = deleteByID(n.links.retiring, l)
	if close {
		n.ready.Closes = append(n.ready.Closes, Close{Link: l.id, Reason: reason})
	}
}

// receiveRetiring handles a message on the retiring link l that passed
// the checks of every link (Receive): frames are taken as from any link
// to the peer; anything else is left, since the peer sends its
// announcements again over the link it keeps.
func (n *Node) receiveRetiring(l *link, t wire.Type, msg []byte) {
	switch t {
	case wire.TypeTargetedFrame, wire.TypeLimitedFrame:
		n.receiveTargeted(l, t, msg)
	case wire.TypeBroadcastFrame, wire.TypeGroupFrame:
		n.receiveFlooded(l, t, msg)
	case wire.TypeGSOFrame:
		n.receiveGSO(l, msg)
	}
}

// closeLink asks the driver to close l and forgets it (a retiring l is
// already out of the live links: it only ends).
func (n *Node) closeLink(l *link, reason error) {
	if !l.retireBy.IsZero() {
		n.endRetiring(l, true, reason)
		return
	}
	n.ready.Closes = append(n.ready.Closes, Close{Link: l.id, Reason: reason})
	n.removeLink(l, reason)
}

// endRetiringTo closes the retiring links to peer: the link they gave way
// to is gone, and the peer, if it took one of them for its only link,
// must hear that it is over rather than wait for its liveness check.
func (n *Node) endRetiringTo(peer wire.MAC, reason error) {
	for i := 0; i < len(n.links.retiring); {
		if l := n.links.retiring[i]; l.peer == peer {
			n.endRetiring(l, true, reason)
			continue
		}
		i++
	}
}

func (n *Node) removeLink(l *link, reason error) {
	n.dropBatch(l)
	n.links.remove(l)
	if len(n.links.retiring) > 0 && n.links.to(l.peer) == nil {
		n.endRetiringTo(l.peer, fmt.Errorf("link %d to %s, which it gave way to, is down: %w", l.id, l.peer, ErrDuplicateLink))
	}
	n.event(Event{Kind: EventLinkDown, MAC: l.peer, Link: l.id, Err: reason, Directory: l.directory})
	if l.dialed && !l.heard && n.links.to(l.peer) == nil {
		n.dialFailed(l.peer, fmt.Errorf("link %d closed before the peer sent anything: %w", l.id, reason))
	}
	if l.directory {
		n.scheduleDial() // no route crossed it: nothing to move or ask
		return
	}
	var across []wire.MAC
	relayed := true
	if n.quiet() && n.links.to(l.peer) == nil {
		across, relayed = n.routedAcross(l)
	}
	affected := n.failover(l.id, l.ref, l.peer)
	n.scheduleDial()
	if n.quiet() && len(affected) == 0 && !relayed {
		// The peer relayed nothing and no route went through it (a
		// node's directory link to us, a leaf): only it could route to
		// us over the link, and it is gone. Nothing to ask for.
		return
	}
	if n.links.to(l.peer) == nil {
		if n.quiet() {
			silent := errors.Is(reason, ErrLinkDead) || errors.Is(reason, ErrLinkSilent)
			n.askAfterLoss(l, affected, across, silent)
		} else {
			n.askAnnounce()
		}
	}
}

// malformed handles a message that failed to decode
// (docs/protocol.md#malformed-input): on a seed-protocol link it is
// dropped and counted (an original node relays what it receives
// unchecked, so closing would let one bad member partition the mesh); on
// an extended link it is a violation and closes the link.
func (n *Node) malformed(l *link, err error) {
	if !l.extended {
		n.drop(DropMalformed, l.peer)
		return
	}
	n.violation(l, fmt.Errorf("%w: %w", ErrMalformed, err))
}

func (n *Node) violation(l *link, err error) {
	n.stats.Violations++
	// A peer that broke the protocol is not redialled from the cache, and
	// not before the longest backoff.
	if n.dialer.cache.remove(l.peer) {
		n.ready.CacheRemove = append(n.ready.CacheRemove, l.peer)
	}
	n.dialer.backoff[l.peer] = backoff{fails: 64, until: n.clock.now.Add(n.cfg.DialBackoffMax)}
	err = fmt.Errorf("link %d to %s at %s: %w", l.id, l.peer, l.addr, err)
	n.event(Event{Kind: EventViolation, MAC: l.peer, Link: l.id, Err: err})
	n.closeLink(l, err)
}

// Links returns the peers of the live links: the mesh links in link
// order, then the directory links.
func (n *Node) Links() []LinkInfo {
	out := make([]LinkInfo, 0, len(n.links.order)+len(n.links.directory))
	for _, links := range [][]*link{n.links.order, n.links.directory} {
		for _, l := range links {
			li := LinkInfo{ID: l.id, Peer: l.peer, Addr: l.addr, Dialed: l.dialed, Extended: l.extended, Directory: l.directory,
				Age: n.clock.now.Sub(l.up), Silent: n.clock.now.Sub(l.lastRecv), DetectAfter: n.cfg.LinkTimeout}
			if n.liveness(l) {
				li.Heartbeats = true
				li.RTT = l.hb.rtt.srtt
				li.DetectAfter = n.detectAfter(l)
			}
			li.Suspect = li.Silent >= li.DetectAfter/2
			out = append(out, li)
		}
	}
	return out
}

// LinkCounts returns how many mesh links and directory links the node
// has (docs/protocol.md#link-limit).
func (n *Node) LinkCounts() (mesh, directory int) {
	return len(n.links.order), len(n.links.directory)
}

// LinkInfo describes a live link.
type LinkInfo struct {
	ID       LinkID
	Peer     wire.MAC
	Addr     netip.AddrPort
	Dialed   bool
	Extended bool
	// Directory is set on a link that carries only a table for the
	// address cache and then closes (docs/protocol.md#link-limit).
	Directory bool
	// Age is how long the link has been up, on the node's clock.
	Age time.Duration
	// Heartbeats says whether liveness detection runs on the link (an
	// extended link with heartbeats on); RTT is its smoothed round-trip
	// time (zero until measured).
	Heartbeats bool
	RTT        time.Duration
	// Silent is how long nothing has arrived; DetectAfter how long that
	// may last before the link is failed (LinkTimeout without
	// heartbeats). Suspect is set once half of it has passed.
	Silent      time.Duration
	DetectAfter time.Duration
	Suspect     bool
}

func macLess(a, b wire.MAC) bool { return a.Compare(b) < 0 }
