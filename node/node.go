package node

import (
	"errors"
	"net/netip"
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
	ErrLinkDead      = errors.New("link failed: nothing received within its detection time")
	// ErrDirectoryDone closes a directory link whose table was taken
	// (docs/protocol.md#link-limit).
	ErrDirectoryDone = errors.New("directory link done")
)

// Node is the protocol engine of one mesh member. Create it with New.
type Node struct {
	cfg    Config
	clock  idClock
	timers timers
	links  linkSet
	routes routeTable
	// unconfirmed lists the targets of routes moved to a backup that
	// await a newer round (route.confirmBy); usually empty.
	unconfirmed []wire.MAC
	dedup       dedup
	dialer      dialer
	// urgentBatches is set while some link's batch holds a change.
	urgentBatches bool
	// pathScratch holds the path of a batch entry while it is encoded.
	pathScratch []wire.MAC
	// waits are the refresh rounds held for their former next hop's copy,
	// oldest first (Node.waitForNextHop).
	waits refreshWaits
	// changeWaits are the change rounds held likewise.
	changeWaits refreshWaits
	// askers are the nodes heard asking for rounds lately, oldest first
	// (Node.nextHopKeepsRound).
	askers []asker
	// acrossAsks are the asks for lost links' peers' routes, held
	// AskWindow for the peers' own asks (deadline order).
	acrossAsks []acrossAsk
	// batchReader reads a 0x88's entries (its path scratch is reused).
	batchReader wire.InfoBatchReader
	// segments holds one ordinary frame at a time while a super-frame is
	// cut for a neighbour that takes no 0x90 (offload.go); nil until then.
	segments []byte

	healthPending map[uint64]time.Time // ids of health requests we started
	// revocation is the group's revocation list as the driver last
	// installed it (revocation.go).
	revocation revocation
	// sign holds the signatures of announcements (signed.go).
	sign signing

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
		clock:         newIDClock(cfg.IDFloor, cfg.IDReserve),
		links:         newLinkSet(),
		dedup:         newDedup(),
		dialer:        newDialer(cfg.MAC, cfg.Cache),
		healthPending: map[uint64]time.Time{},
		arena:         make([]byte, 0, arenaStart),
	}
	n.routes.index.seed = cfg.IndexSeed
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
	clear(r.Revocations)
	*r = Ready{
		Sends: r.Sends[:0], Closes: r.Closes[:0], TAP: r.TAP[:0], Dials: r.Dials[:0],
		CacheStore: emptied(r.CacheStore), CacheRemove: emptied(r.CacheRemove),
		HealthStarted: r.HealthStarted[:0], Health: r.Health[:0], HealthLinks: r.HealthLinks[:0], Events: emptied(r.Events),
		Revocations: r.Revocations[:0],
	}
	n.arena = n.arena[:0]
	if cap(n.arena) > arenaKeep {
		// A new link's table made it big: do not keep that per node.
		n.arena = make([]byte, 0, arenaStart)
	}
}

// The arena starts small and grows with the busiest input; past arenaKeep
// it is dropped at Advance (a simulator holds thousands of nodes). A
// daemon's busiest ordinary input, a batch of 32 frames relayed, takes
// about 48 KB.
const (
	arenaStart = 4 << 10
	arenaKeep  = 64 << 10
)

// emptied returns s emptied for the next input, or nil when a burst made
// it longer than readyKeep: the start of a mesh or a new link's table
// outputs an event and a cache store per route, room that every node of
// a simulator would otherwise keep (at 1000 nodes 28 MB of a 315 MB heap).
func emptied[T any](s []T) []T {
	if cap(s) > readyKeep {
		return nil
	}
	return s[:0]
}

// readyKeep is the most outputs of one kind whose room Advance keeps.
const readyKeep = 64

func (n *Node) drop(reason DropReason, mac wire.MAC) {
	n.stats.Drops[reason]++
	n.event(Event{Kind: EventDrop, MAC: mac, Drop: reason})
}

func (n *Node) event(e Event) { n.ready.Events = append(n.ready.Events, e) }

// send queues msg on l.
func (n *Node) send(l *link, msg []byte, control bool) {
	l.hb.lastSent, l.hb.answering = n.clock.now, false
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

// encodeInfo and encodeInfoPath are encode for the two messages every
// flooded announcement is relayed as, without the interface: their
// argument stays on the caller's stack.
func (n *Node) encodeInfo(m *wire.Info) []byte {
	start := len(n.arena)
	n.arena = m.Append(n.arena)
	return n.sinceMark(start)
}

func (n *Node) encodeInfoPath(m *wire.InfoPath) []byte {
	start := len(n.arena)
	n.arena = m.Append(n.arena)
	return n.sinceMark(start)
}

// sinceMark returns the arena bytes appended since len(arena) was start.
func (n *Node) sinceMark(start int) []byte {
	return n.arena[start:len(n.arena):len(n.arena)]
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
