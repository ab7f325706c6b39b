package node

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/invpn/invpn/wire"
)

// Rand is the source of randomness a Node uses (dial order, backoff
// jitter). *math/rand/v2.Rand satisfies it.
type Rand interface {
	Uint64() uint64
}

// Peer is a mesh member's identity and the address it accepts links on.
type Peer struct {
	MAC  wire.MAC
	Addr netip.AddrPort
}

// Config configures a Node. Start from [DefaultConfig] and set the
// identity: a zero value means zero, never "the default", so a driver
// states every setting it changes and none is normalised twice.
type Config struct {
	// MAC is the node's identity: its certificate's Common Name and the
	// MAC of its TAP device.
	MAC wire.MAC
	// Port is the port the node accepts links on, announced in its 0x00.
	Port uint16
	// NoIncoming means the node accepts no links: it announces no address.
	NoIncoming bool
	// NoRelay means the node carries no traffic between other members: it
	// floods no announcement, broadcast or health request but its own and
	// forwards no frame it did not originate. It announces no address.
	NoRelay bool

	// AnnounceInterval is how often the node floods its announcement
	// (default 5 s, as the original).
	AnnounceInterval time.Duration
	// RefreshInterval, when set, makes the node quiet between extended
	// nodes (docs/protocol.md#quiet-refresh): it floods a new round of its
	// own announcement only when something changes (a link comes up or
	// goes down, an address changes, a round is asked for) and otherwise
	// refreshes it every RefreshInterval, jittered down to three quarters
	// of it; relays carry refreshes along their routes in batches
	// (BatchDelay). Zero keeps the original's cadence: a new round every
	// AnnounceInterval, flooded to every neighbour (default 120 s).
	RefreshInterval time.Duration
	// BatchDelay is the longest a relay holds refreshes for one neighbour
	// to send them together in one 0x88 (default 250 ms, the heartbeat
	// interval, so that batches take the place of heartbeats).
	BatchDelay time.Duration
	// ChangeDelay is the least time between two batches of changes (rounds
	// flooded at once) to one neighbour: a change goes out at once unless
	// a batch went to that neighbour less than ChangeDelay ago, so that
	// the rounds of a burst (the mesh's start, the targets a lost link
	// asks for) go together in a few 0x88 while a lone change loses no
	// time. Zero sends every change at the end of the input that queued
	// it (default 5 ms; one over BatchDelay acts as BatchDelay).
	ChangeDelay time.Duration
	// ConnectInterval is how often the connect policy runs while the node
	// has at least MinLinks links (default 60 s, as the original).
	ConnectInterval time.Duration
	// RouteExpiry is how long a route lives without a newer announcement
	// (default 5 min, as the original).
	RouteExpiry time.Duration
	// LinkTimeout closes a link on which nothing arrived for this long
	// (default 15 s, 3 announce intervals). Every neighbour announces
	// itself every interval, so a live link is never silent that long.
	LinkTimeout time.Duration
	// HeartbeatInterval is the longest an extended link's sending
	// direction stays quiet: after that a heartbeat probe goes out
	// (default 250 ms; zero turns heartbeats and liveness detection off,
	// leaving LinkTimeout). See docs/protocol.md#link-liveness.
	HeartbeatInterval time.Duration
	// DeadAfter is how long an extended link may be silent before it is
	// failed and its routes move (default 750 ms, three heartbeat
	// intervals). A link's measured round-trip time can lengthen it
	// (heartbeat interval + 3 RTOs), and LinkTimeout bounds it.
	DeadAfter time.Duration
	// HoldDownSpan is how close together a peer's link failures must be
	// to count as flapping (default 5 min): each one after the first
	// doubles the detection time of the peer's next links, up to 8×.
	HoldDownSpan time.Duration
	// FailoverConfirm is how long a route moved to a backup may wait for
	// a newer round of its target before it is withdrawn (default 6 s,
	// an announce interval and a second: an original node's next round
	// comes within one interval). It bounds a loop of backups that point
	// at each other after several simultaneous failures.
	FailoverConfirm time.Duration
	// TriggerGap is the least time between two announcements of this node
	// when lost links trigger them (default 500 ms, a tenth of
	// AnnounceInterval); zero means no gap:
	// it bounds the control traffic of a storm of link failures.
	TriggerGap time.Duration
	// AskWindow is how long a node that lost a link waits for the peer's
	// own 0x89 before it asks for the rounds of the routes the peer
	// probably had across the link (default 10 ms): when both ends
	// notice, as they do a silent cut within a few milliseconds, each
	// target is so asked for once, not twice
	// (docs/protocol.md#quiet-refresh); zero asks at once.
	AskWindow time.Duration
	// DedupSpan is how long broadcast and health-request ids are
	// remembered per source (default 60 s): longer than the slowest path.
	DedupSpan time.Duration
	// MinLinks is the number of links the node keeps trying to reach with
	// quick redials (default 2); zero means no quick redials, only the
	// connect policy every ConnectInterval.
	MinLinks int
	// MaxLinks caps the links the connect policy dials (default 8; the
	// original dialled up to 100, see docs/protocol.md).
	MaxLinks int
	// HopLimit is the hop limit given to targeted frames (default 255,
	// the most one byte carries: a 300-node ring has paths of 150 hops).
	HopLimit uint8
	// DialBackoffMin and DialBackoffMax bound the redial backoff of one
	// peer (defaults 1 s and 60 s, ConnectInterval).
	DialBackoffMin, DialBackoffMax time.Duration
	// IDReserve is how far ahead of the ids it uses the node persists its
	// id floor (default 1 h of milliseconds).
	IDReserve uint64

	// Auth, when set, signs this node's announcements and checks the
	// signatures of relayed ones (docs/protocol.md#signed-announcements);
	// nil signs and checks nothing. AcceptUnsigned makes the node believe
	// relayed announcements from extended links that carry no valid
	// signature of their round (counted in Stats.Unsigned), as from nodes
	// of this project that sign nothing yet (an upgrade); by default they
	// are dropped. RefuseOriginalRelays drops the announcements of other
	// members that come over seed-protocol links (an original node cannot
	// sign, nor pass signatures on); by default they are believed and
	// counted (Stats.UnsignedFromOriginal). An original's own 0x00 is
	// always believed: the link's certificate is its own.
	Auth                 Authenticator
	AcceptUnsigned       bool
	RefuseOriginalRelays bool

	// Seeds are the `init` peers, dialled whenever they are not linked.
	Seeds []Peer
	// Bootstrap are peers dialled only while the node has fewer than
	// MinLinks mesh links, to fill its address cache: their links are
	// directory links, closed once the node has MinLinks others
	// (docs/protocol.md#link-limit).
	Bootstrap []Peer
	// Cache is the peer cache loaded at start.
	Cache []Peer
	// IDFloor is the persisted id floor: every id this node issues is
	// greater than it, whatever its clock says.
	IDFloor uint64

	// Rand is the randomness source. Required.
	Rand Rand
	// IndexSeed seeds the hash of the route index: a daemon gives a
	// secret random one, so that no member can pick MACs that all land
	// in one run of the index (routeIndex). It changes no behaviour: a
	// simulator or a test may leave it 0.
	IndexSeed uint64
}

// DefaultConfig returns the defaults of every setting; the identity (MAC,
// Port, Rand), the seeds, the cache and the id floor are the driver's to
// fill in. The timers are the original's where it had them.
func DefaultConfig() Config {
	return Config{
		AnnounceInterval:  5 * time.Second,
		RefreshInterval:   120 * time.Second,
		BatchDelay:        250 * time.Millisecond,
		ChangeDelay:       5 * time.Millisecond,
		ConnectInterval:   60 * time.Second,
		RouteExpiry:       5 * time.Minute,
		LinkTimeout:       15 * time.Second,
		TriggerGap:        500 * time.Millisecond,
		AskWindow:         10 * time.Millisecond,
		HeartbeatInterval: 250 * time.Millisecond,
		DeadAfter:         750 * time.Millisecond,
		HoldDownSpan:      5 * time.Minute,
		FailoverConfirm:   6 * time.Second,
		DedupSpan:         60 * time.Second,
		MinLinks:          2,
		MaxLinks:          8,
		HopLimit:          255,
		DialBackoffMin:    time.Second,
		DialBackoffMax:    60 * time.Second,
		IDReserve:         uint64(time.Hour / time.Millisecond),
	}
}

// validate reports the first setting New cannot run with.
func (c *Config) validate() error {
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"AnnounceInterval", c.AnnounceInterval}, {"ConnectInterval", c.ConnectInterval},
		{"RouteExpiry", c.RouteExpiry}, {"LinkTimeout", c.LinkTimeout}, {"DedupSpan", c.DedupSpan},
		{"DialBackoffMin", c.DialBackoffMin}, {"DialBackoffMax", c.DialBackoffMax},
		{"FailoverConfirm", c.FailoverConfirm},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return fmt.Errorf("node: config: %s is %v, want a positive duration (see DefaultConfig)", p.name, p.d)
		}
	}
	switch {
	case c.Rand == nil:
		return fmt.Errorf("node: config: Rand is required")
	case c.MAC.IsGroup() || c.MAC.IsZero():
		return fmt.Errorf("node: config: MAC %s is not a unicast address", c.MAC)
	case c.HeartbeatInterval < 0:
		return fmt.Errorf("node: config: HeartbeatInterval is %v, want zero (off) or more", c.HeartbeatInterval)
	case c.HeartbeatInterval > 0 && c.DeadAfter <= c.HeartbeatInterval:
		return fmt.Errorf("node: config: DeadAfter %v is not above HeartbeatInterval %v: every quiet link would fail", c.DeadAfter, c.HeartbeatInterval)
	case c.HeartbeatInterval > 0 && c.HoldDownSpan <= 0:
		return fmt.Errorf("node: config: HoldDownSpan is %v, want a positive duration", c.HoldDownSpan)
	case c.RefreshInterval < 0:
		return fmt.Errorf("node: config: RefreshInterval is %v, want zero (announce every AnnounceInterval) or more", c.RefreshInterval)
	case c.RefreshInterval > 0 && c.RefreshInterval < c.AnnounceInterval:
		return fmt.Errorf("node: config: RefreshInterval %v is below AnnounceInterval %v", c.RefreshInterval, c.AnnounceInterval)
	case c.RefreshInterval > 0 && 2*c.RefreshInterval > c.RouteExpiry:
		return fmt.Errorf("node: config: RefreshInterval %v is over half of RouteExpiry %v: routes would expire between refreshes", c.RefreshInterval, c.RouteExpiry)
	case c.RefreshInterval > 0 && c.HeartbeatInterval == 0:
		return fmt.Errorf("node: config: RefreshInterval %v needs heartbeats (HeartbeatInterval is 0): a quiet link would time out", c.RefreshInterval)
	case c.ChangeDelay < 0:
		return fmt.Errorf("node: config: ChangeDelay is %v, want zero or more", c.ChangeDelay)
	case c.RefreshInterval > 0 && c.BatchDelay <= 0:
		return fmt.Errorf("node: config: BatchDelay is %v, want a positive duration with RefreshInterval set", c.BatchDelay)
	case c.AskWindow < 0:
		return fmt.Errorf("node: config: AskWindow is %v, want zero or more", c.AskWindow)
	case c.TriggerGap < 0:
		return fmt.Errorf("node: config: TriggerGap is %v, want zero or more", c.TriggerGap)
	case c.MinLinks < 0:
		return fmt.Errorf("node: config: MinLinks is %d, want zero or more", c.MinLinks)
	case c.MaxLinks < 1:
		return fmt.Errorf("node: config: MaxLinks is %d, want at least 1", c.MaxLinks)
	case c.MaxLinks < c.MinLinks:
		return fmt.Errorf("node: config: MaxLinks %d is below MinLinks %d", c.MaxLinks, c.MinLinks)
	case c.HopLimit < 2:
		return fmt.Errorf("node: config: HopLimit is %d, want 2-255 (a frame must cross at least one relay)", c.HopLimit)
	case c.DialBackoffMax < c.DialBackoffMin:
		return fmt.Errorf("node: config: DialBackoffMax %v is below DialBackoffMin %v", c.DialBackoffMax, c.DialBackoffMin)
	case c.IDReserve == 0:
		return fmt.Errorf("node: config: IDReserve is 0, want the ids to persist ahead (see DefaultConfig)")
	}
	return nil
}
