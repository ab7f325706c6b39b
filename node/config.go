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

// Config configures a Node. Zero durations and counts take the defaults
// below.
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
	// ConnectInterval is how often the connect policy runs while the node
	// has at least MinLinks links (default 60 s, as the original).
	ConnectInterval time.Duration
	// RouteExpiry is how long a route lives without a newer announcement
	// (default 5 min, as the original).
	RouteExpiry time.Duration
	// LinkTimeout closes a link on which nothing arrived for this long
	// (default 3 announce intervals). Every neighbour announces itself
	// every interval, so a live link is never silent that long.
	LinkTimeout time.Duration
	// TriggerGap is the least time between two announcements of this node
	// when lost links trigger them (default a tenth of AnnounceInterval):
	// it bounds the control traffic of a storm of link failures.
	TriggerGap time.Duration
	// DedupSpan is how long broadcast and health-request ids are
	// remembered per source (default 60 s): longer than the slowest path.
	DedupSpan time.Duration
	// MinLinks is the number of links the node keeps trying to reach with
	// quick redials (default 2).
	MinLinks int
	// MaxLinks caps the links the connect policy dials (default 8; the
	// original dialled up to 100, see docs/protocol.md).
	MaxLinks int
	// HopLimit is the hop limit given to targeted frames (default 255,
	// the most one byte carries: a 300-node ring has paths of 150 hops).
	HopLimit uint8
	// DialBackoffMin and DialBackoffMax bound the redial backoff of one
	// peer (defaults 1 s and ConnectInterval).
	DialBackoffMin, DialBackoffMax time.Duration
	// IDReserve is how far ahead of the ids it uses the node persists its
	// id floor (default 1 h of milliseconds).
	IDReserve uint64

	// Seeds are the `init` peers, dialled whenever they are not linked.
	Seeds []Peer
	// Cache is the peer cache loaded at start.
	Cache []Peer
	// IDFloor is the persisted id floor: every id this node issues is
	// greater than it, whatever its clock says.
	IDFloor uint64

	// Rand is the randomness source. Required.
	Rand Rand
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AnnounceInterval, 5*time.Second)
	def(&c.ConnectInterval, 60*time.Second)
	def(&c.RouteExpiry, 5*time.Minute)
	def(&c.LinkTimeout, 3*c.AnnounceInterval)
	def(&c.DedupSpan, 60*time.Second)
	def(&c.TriggerGap, c.AnnounceInterval/10)
	def(&c.DialBackoffMin, time.Second)
	def(&c.DialBackoffMax, c.ConnectInterval)
	if c.MinLinks <= 0 {
		c.MinLinks = 2
	}
	if c.MaxLinks <= 0 {
		c.MaxLinks = 8
	}
	if c.HopLimit == 0 {
		c.HopLimit = 255
	}
	if c.IDReserve == 0 {
		c.IDReserve = uint64(time.Hour / time.Millisecond)
	}
}

func (c *Config) validate() error {
	switch {
	case c.Rand == nil:
		return fmt.Errorf("node: config: Rand is required")
	case c.MAC.IsGroup() || c.MAC.IsZero():
		return fmt.Errorf("node: config: MAC %s is not a unicast address", c.MAC)
	case c.MaxLinks < c.MinLinks:
		return fmt.Errorf("node: config: MaxLinks %d is below MinLinks %d", c.MaxLinks, c.MinLinks)
	}
	return nil
}
