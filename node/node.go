package node

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/invpn/invpn/wire"
)

// Errors given as reasons in Close and Event.
var (
	ErrSelfLink      = errors.New("link to own MAC")
	ErrDuplicateLink = errors.New("a link to this peer already exists")
	ErrSpoofedMAC    = errors.New("0x00 announces a MAC other than the link certificate's")
	ErrMalformed     = errors.New("malformed message from a peer that speaks the invpn protocol")
	ErrLinkSilent    = errors.New("nothing received within the link timeout")
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
}

// Node is the protocol engine of one mesh member. Create it with New.
type Node struct {
	cfg   Config
	now   time.Time // the node's own clock, which never goes back
	input time.Time // the driver's time at the last input

	links     map[LinkID]*link
	linkOrder []*link // sorted by id: the flooding order
	byPeer    map[wire.MAC]*link

	routes map[wire.MAC]*route

	frameSeen  map[wire.MAC]*window // 0x81 and 0x82, keyed by source
	healthSeen map[wire.MAC]*window // 0x02, keyed by requester
	askSeen    map[wire.MAC]*window // 0x86, keyed by requester

	lastID      uint64 // every id issued is greater
	announced   uint64 // the id of this node's latest announcement
	floorStored uint64 // the id floor the driver has been told to persist

	cache   map[wire.MAC]netip.AddrPort
	dialing map[wire.MAC]time.Time // pending dials and when they were asked for
	backoff map[wire.MAC]backoff
	dialAt  time.Time // below MinLinks: when a peer can next be dialled; zero if none

	nextAnnounce  time.Time
	lastTriggered time.Time // last announcement triggered by a lost link
	announceDue   time.Time // a triggered announcement waiting for TriggerGap; zero if none
	nextConnect   time.Time
	nextSweep     time.Time
	started       bool

	healthPending map[uint64]time.Time // ids of health requests we started

	stats Stats
	ready Ready
	arena []byte // holds encoded messages until Advance
}

// New returns a Node for cfg. It does nothing until its first input.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:           cfg,
		links:         map[LinkID]*link{},
		byPeer:        map[wire.MAC]*link{},
		routes:        map[wire.MAC]*route{},
		frameSeen:     map[wire.MAC]*window{},
		healthSeen:    map[wire.MAC]*window{},
		askSeen:       map[wire.MAC]*window{},
		lastID:        cfg.IDFloor,
		floorStored:   cfg.IDFloor,
		cache:         map[wire.MAC]netip.AddrPort{},
		dialing:       map[wire.MAC]time.Time{},
		backoff:       map[wire.MAC]backoff{},
		healthPending: map[uint64]time.Time{},
		arena:         make([]byte, 0, 64<<10),
	}
	for _, p := range cfg.Cache {
		if p.MAC != cfg.MAC && p.Addr.IsValid() {
			n.cache[p.MAC] = p.Addr
		}
	}
	return n, nil
}

// MAC returns the node's MAC.
func (n *Node) MAC() wire.MAC { return n.cfg.MAC }

// Config returns the node's configuration.
func (n *Node) Config() Config { return n.cfg }

// Stats returns the node's counters.
func (n *Node) Stats() Stats { return n.stats }

// Ready returns what the node asks its driver to do. Call Advance once
// the driver is done with it.
func (n *Node) Ready() *Ready { return &n.ready }

// Advance releases the outputs of the last Ready: their buffers are reused.
func (n *Node) Advance() {
	r := &n.ready
	clear(r.Sends)
	clear(r.TAP)
	clear(r.Closes)
	clear(r.Health)
	clear(r.Events)
	*r = Ready{
		Sends: r.Sends[:0], Closes: r.Closes[:0], TAP: r.TAP[:0], Dials: r.Dials[:0],
		CacheStore: r.CacheStore[:0], CacheRemove: r.CacheRemove[:0],
		HealthStarted: r.HealthStarted[:0], Health: r.Health[:0], Events: r.Events[:0],
	}
	n.arena = n.arena[:0]
}

// tick advances the node's own clock by the time that passed since the
// last input; it starts the timers on the first input. The node's clock
// only moves forward: a clock that the driver's time steps back is not
// followed back (the node's timers would freeze until the driver's time
// caught up), and ids come from the driver's time (see newID).
func (n *Node) tick(now time.Time) {
	if !n.started {
		n.started = true
		n.now, n.input = now, now
		n.nextAnnounce = now
		n.nextConnect = now
		n.nextSweep = now.Add(n.sweepInterval())
		return
	}
	if d := now.Sub(n.input); d > 0 {
		n.now = n.now.Add(d)
	}
	n.input = now
}

// tickInput handles Tick: it runs what is due at now.
func (n *Node) tickInput(now time.Time) {
	n.tick(now)
	now = n.now
	for _, l := range slices.Clone(n.linkOrder) {
		if now.Sub(l.lastRecv) >= n.cfg.LinkTimeout {
			n.closeLink(l, fmt.Errorf("link %d to %s: %w (%v)", l.id, l.peer, ErrLinkSilent, n.cfg.LinkTimeout))
		}
	}
	if !now.Before(n.nextAnnounce) {
		n.announce()
		n.nextAnnounce = now.Add(n.cfg.AnnounceInterval)
	} else if !n.announceDue.IsZero() && !now.Before(n.announceDue) {
		n.lastTriggered = now
		n.announce()
	}
	if !now.Before(n.nextSweep) {
		n.sweep()
		n.nextSweep = now.Add(n.sweepInterval())
	}
	if !now.Before(n.nextConnect) || (n.quickDial() && !n.dialAt.IsZero() && !now.Before(n.dialAt)) {
		n.connect()
		if !now.Before(n.nextConnect) {
			n.nextConnect = now.Add(n.cfg.ConnectInterval)
		}
		n.scheduleDial()
	}
}

// NextDeadline returns when, in the driver's time, the node next needs a
// Tick. It is after the time of the last input unless something is due.
func (n *Node) NextDeadline() time.Time {
	d := n.nextDeadline()
	if d.IsZero() {
		return d
	}
	return n.input.Add(d.Sub(n.now))
}

// nextDeadline returns the next deadline on the node's own clock.
func (n *Node) nextDeadline() time.Time {
	if !n.started {
		return time.Time{}
	}
	d := n.nextAnnounce
	later := func(t time.Time) {
		if !t.IsZero() && t.Before(d) {
			d = t
		}
	}
	later(n.nextConnect)
	later(n.nextSweep)
	later(n.announceDue)
	for _, l := range n.linkOrder {
		later(l.lastRecv.Add(n.cfg.LinkTimeout))
	}
	if n.quickDial() {
		later(n.dialAt)
	}
	return d
}

func (n *Node) sweepInterval() time.Duration {
	// The original swept every RouteExpiry, so stale routes lived up to
	// twice as long; a tenth keeps the overshoot at 10 %.
	return n.cfg.RouteExpiry / 10
}

// linkUp handles LinkUp.
func (n *Node) linkUp(in LinkUp) {
	id, peer, dialed := in.Link, in.Peer, in.Dialed
	l := &link{id: id, peer: peer, addr: unmap(in.Addr), dialed: dialed, extended: in.Extended, up: n.now, lastRecv: n.now}
	delete(n.dialing, peer)
	if peer == n.cfg.MAC {
		n.ready.Closes = append(n.ready.Closes, Close{Link: id, Reason: ErrSelfLink})
		n.scheduleDial()
		return
	}
	if old, ok := n.byPeer[peer]; ok {
		// One link per peer. Both ends keep the link dialled by the
		// smaller MAC, so simultaneous dials settle on the same one; a
		// redial by the same side replaces the old link, which its
		// dialler believes dead.
		if old.dialed != dialed && n.keepDialedBy(old) {
			n.ready.Closes = append(n.ready.Closes, Close{Link: id, Reason: ErrDuplicateLink})
			n.scheduleDial()
			return
		}
		// The peer stays linked: registering the new link first keeps
		// the old one's removal from looking like a lost peer (no 0x86).
		n.byPeer[peer] = l
		n.closeLink(old, fmt.Errorf("replaced by link %d: %w", id, ErrDuplicateLink))
	}
	delete(n.backoff, peer)
	n.links[id] = l
	n.byPeer[peer] = l
	i, _ := slices.BinarySearchFunc(n.linkOrder, id, func(l *link, id LinkID) int { return cmpID(l.id, id) })
	n.linkOrder = slices.Insert(n.linkOrder, i, l)
	n.scheduleDial()
	n.event(Event{Kind: EventLinkUp, MAC: peer, Link: id})
	// PROTOCOL.md "Behaviour": announce right after each link comes up.
	n.announce()
	n.sendTable(l)
}

// keepDialedBy reports whether l is the link both ends keep: the one
// dialled by the smaller MAC.
func (n *Node) keepDialedBy(l *link) bool {
	weSmaller := macLess(n.cfg.MAC, l.peer)
	return l.dialed == weSmaller
}

// closeLink asks the driver to close l and forgets it.
func (n *Node) closeLink(l *link, reason error) {
	n.ready.Closes = append(n.ready.Closes, Close{Link: l.id, Reason: reason})
	n.removeLink(l, reason)
}

func (n *Node) removeLink(l *link, reason error) {
	delete(n.links, l.id)
	if n.byPeer[l.peer] == l {
		delete(n.byPeer, l.peer)
	}
	if i, ok := slices.BinarySearchFunc(n.linkOrder, l.id, func(l *link, id LinkID) int { return cmpID(l.id, id) }); ok {
		n.linkOrder = slices.Delete(n.linkOrder, i, i+1)
	}
	n.event(Event{Kind: EventLinkDown, MAC: l.peer, Link: l.id, Err: reason})
	n.failover(l.id)
	n.scheduleDial()
	if _, ok := n.byPeer[l.peer]; !ok {
		n.askAnnounce()
	}
}

// Receive is Step(now, Receive{id, msg}) without the interface value: the
// per-frame path's allocation-free entry.
func (n *Node) Receive(now time.Time, id LinkID, msg []byte) {
	n.tick(now)
	l, ok := n.links[id]
	if !ok {
		return
	}
	l.lastRecv = n.now
	t, err := wire.TypeOf(msg)
	if err != nil {
		if errors.Is(err, wire.ErrUnknownType) {
			n.drop(DropUnknownType, l.peer)
			return
		}
		n.malformed(l, err)
		return
	}
	if !l.extended && t >= wire.TypeGroupFrame {
		// Extensions exist only on links that negotiated them: from a
		// seed-protocol peer they are unknown types.
		n.drop(DropUnknownType, l.peer)
		return
	}
	switch t {
	case wire.TypeTargetedFrame, wire.TypeLimitedFrame:
		n.receiveTargeted(l, t, msg)
	case wire.TypeBroadcastFrame, wire.TypeGroupFrame:
		n.receiveFlooded(l, t, msg)
	case wire.TypeInitialInfo, wire.TypeInfo, wire.TypeInfoPath:
		n.receiveAnnouncement(l, t, msg)
	case wire.TypeHealthRequest:
		n.receiveHealthRequest(l, msg)
	case wire.TypeHealthResponse:
		n.receiveHealthResponse(l, msg)
	case wire.TypeAnnounceRequest:
		n.receiveAnnounceRequest(l, msg)
	}
}

// malformed handles a message that failed to decode. PROTOCOL.md
// "Malformed input": on a seed-protocol link it is dropped and counted
// (an original node relays what it receives unchecked, so closing would
// let one bad member partition the mesh); on an extended link it is a
// violation and closes the link.
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
	if _, ok := n.cache[l.peer]; ok {
		delete(n.cache, l.peer)
		n.ready.CacheRemove = append(n.ready.CacheRemove, l.peer)
	}
	n.backoff[l.peer] = backoff{fails: 64, until: n.now.Add(n.cfg.DialBackoffMax)}
	err = fmt.Errorf("link %d to %s at %s: %w", l.id, l.peer, l.addr, err)
	n.event(Event{Kind: EventViolation, MAC: l.peer, Link: l.id, Err: err})
	n.closeLink(l, err)
}

func (n *Node) drop(reason DropReason, mac wire.MAC) {
	n.stats.Drops[reason]++
	n.event(Event{Kind: EventDrop, MAC: mac, Drop: reason})
}

func (n *Node) event(e Event) { n.ready.Events = append(n.ready.Events, e) }

// send queues msg on l.
func (n *Node) send(l *link, msg []byte, control bool) {
	n.ready.Sends = append(n.ready.Sends, Send{Link: l.id, Msg: msg, Control: control})
}

// encode appends m to the arena and returns its bytes. The interface call
// moves m to the heap: the per-frame path appends concrete types itself
// and calls sinceMark.
func (n *Node) encode(m wire.Message) []byte {
	start := len(n.arena)
	n.arena = m.Append(n.arena)
	return n.sinceMark(start)
}

// sinceMark returns the arena bytes appended since len(arena) was start.
func (n *Node) sinceMark(start int) []byte {
	return n.arena[start:len(n.arena):len(n.arena)]
}

// newID returns a fresh id: greater than every id issued before, in this
// run or (through the persisted floor) an earlier one, and at least the
// clock in milliseconds, as the original's ids.
func (n *Node) newID() uint64 {
	id := max(n.clockMillis(), n.lastID+1)
	n.lastID = id
	if id+n.cfg.IDReserve/2 > n.floorStored {
		n.floorStored = id + n.cfg.IDReserve
		n.ready.IDFloor = n.floorStored
	}
	return id
}

// clockMillis is the driver's clock in milliseconds since 1970; a clock
// set before 1970 reads 0 (a negative value would wrap the id counter).
func (n *Node) clockMillis() uint64 { return uint64(max(0, n.input.UnixMilli())) }

// Links returns the peers of the live links, in link order.
func (n *Node) Links() []LinkInfo {
	out := make([]LinkInfo, 0, len(n.linkOrder))
	for _, l := range n.linkOrder {
		out = append(out, LinkInfo{ID: l.id, Peer: l.peer, Addr: l.addr, Dialed: l.dialed, Extended: l.extended, Age: n.now.Sub(l.up)})
	}
	return out
}

// LinkInfo describes a live link.
type LinkInfo struct {
	ID       LinkID
	Peer     wire.MAC
	Addr     netip.AddrPort
	Dialed   bool
	Extended bool
	// Age is how long the link has been up, on the node's clock.
	Age time.Duration
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func cmpID(a, b LinkID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func macLess(a, b wire.MAC) bool { return a.Compare(b) < 0 }
