package node

import (
	"fmt"
	"time"

	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// LinkID names one link for the lifetime of a Node. The driver chooses it
// and never reuses it.
type LinkID uint64

// Send asks the driver to send Msg (type byte and body, no length prefix)
// on Link. Msg is valid until Advance; the driver copies it or writes it
// before then.
type Send struct {
	Link LinkID
	Msg  []byte
	// Control is true for announcements, health messages and anything but
	// Ethernet frames: a driver whose queue for Link is full drops data,
	// never control (see SendQueue).
	Control bool
}

// Close asks the driver to close Link. The node has already forgotten it.
type Close struct {
	Link   LinkID
	Reason error
}

// HealthResult is one answer (0x03) to a health request this node started.
type HealthResult struct {
	Response wire.HealthResponse
	At       time.Time // when the answer arrived, in the driver's time
}

// Ready is what a Node asks its driver to do after one or more inputs.
// Its slices are owned by the Node and valid until Advance.
type Ready struct {
	Sends  []Send
	Closes []Close
	// TAP holds frames to write to the TAP device, in order.
	TAP []TAPFrame
	// Dials are peers to connect to. The driver answers with LinkUp or
	// DialFailed.
	Dials []Peer
	// CacheStore and CacheRemove change the persistent peer cache.
	CacheStore  []Peer
	CacheRemove []wire.MAC
	// IDFloor, when non-zero, must be persisted and given back as
	// Config.IDFloor at the next start.
	IDFloor uint64
	// HealthStarted holds the ids of the health requests started by
	// StartHealth inputs; their answers arrive as Health.
	HealthStarted []uint64
	Health        []HealthResult
	// HealthLinks are the 0x8B that came with answers: the answering
	// nodes' links and their round-trip times.
	HealthLinks []wire.HealthLinks
	// Revocations are revocation lists newer than the node's that came
	// over links, for the driver to check (SetRevocation).
	Revocations []Revocation
	Events      []Event
	// Sooner is set when the input made something due sooner than the
	// deadline NextDeadline last gave (a change queued to go out within
	// ChangeDelay, an announcement triggered within TriggerGap of the
	// last): a driver that does not ask NextDeadline after every input
	// must ask after this one.
	Sooner bool
}

// Empty reports whether r holds nothing to do.
func (r *Ready) Empty() bool {
	return len(r.Sends) == 0 && len(r.Closes) == 0 && len(r.TAP) == 0 && len(r.Dials) == 0 &&
		len(r.CacheStore) == 0 && len(r.CacheRemove) == 0 && r.IDFloor == 0 &&
		len(r.HealthStarted) == 0 && len(r.Health) == 0 && len(r.HealthLinks) == 0 && len(r.Revocations) == 0 && len(r.Events) == 0 && !r.Sooner
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	EventLinkUp         EventKind = iota + 1 // a link was accepted
	EventLinkDown                            // a link went down or was closed
	EventRouteLearned                        // first route to a MAC
	EventRouteChanged                        // a newer announcement moved the route
	EventRouteFailover                       // a link went down and the route moved to a backup
	EventRouteWithdrawn                      // a link went down and no backup was left
	EventRouteExpired                        // no announcement within RouteExpiry
	EventDrop                                // a frame or message was dropped
	EventViolation                           // a peer broke the protocol; its link is closed
	EventDialFailed                          // a dial failed; the peer is backed off
)

var eventNames = [...]string{"", "link up", "link down", "route learned", "route changed",
	"route failover", "route withdrawn", "route expired", "drop", "violation", "dial failed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", k)
}

// Event reports something for logs and metrics.
type Event struct {
	Kind EventKind
	// MAC is the peer (link events) or the route's target.
	MAC wire.MAC
	// Link is the link concerned; for route events the new next hop
	// (0 when withdrawn or expired).
	Link LinkID
	// From is the previous next hop of a changed, failed-over or
	// withdrawn route.
	From LinkID
	// Drop is the reason of an EventDrop.
	Drop DropReason
	// Directory is set on the link events of a directory link, which
	// carries no route (docs/protocol.md#link-limit).
	Directory bool
	// Err explains violations, closes and failed dials.
	Err error
}

// DropReason says why a frame or message was dropped.
type DropReason uint8

// Drop reasons, counted in Stats.Drops.
const (
	DropNone           DropReason = iota
	DropNotOwnSource              // a TAP frame whose source is not the node's MAC
	DropNoRoute                   // no route to the destination
	DropHopLimit                  // a targeted frame ran out of hops
	DropRouteLoop                 // the route points back where the frame came from
	DropUnknownSource             // a broadcast from a source never linked or announced
	DropMalformed                 // a message that failed to decode (seed-protocol link)
	DropUnknownType               // a message type this node does not know
	DropNoRelay                   // traffic for others at a no_relay node
	DropQueueFull                 // a data frame at a full link queue (counted by the driver)
	DropTooLong                   // a frame that does not fit a message
	DropDirectory                 // traffic over a directory link, which carries only a table
	DropUnsigned                  // a relayed announcement without a valid signature of its member
	DropForged                    // a signature that does not verify against its member's certificate
	DropUnverifiable              // a signature of a member whose certificate never came
	DropBadCertificate            // a certificate that does not check against the group's CA
	numDropReasons
)

var dropNames = [...]string{"none", "not own source", "no route", "hop limit", "route loop",
	"unknown source", "malformed", "unknown type", "no relay", "queue full", "too long", "directory link",
	"unsigned", "forged signature", "unverifiable signature", "bad certificate"}

func (d DropReason) String() string {
	if int(d) < len(dropNames) {
		return dropNames[d]
	}
	return fmt.Sprintf("drop(%d)", d)
}

// DropReasons lists every reason, for metrics.
func DropReasons() []DropReason {
	r := make([]DropReason, 0, numDropReasons-1)
	for d := DropNone + 1; d < numDropReasons; d++ {
		r = append(r, d)
	}
	return r
}

// TAPFrame is a frame for the TAP device. Frame points into the node or
// into the input it came in (valid until Advance). Offload is zero for an
// ordinary frame; for a TCP super-frame that came as a 0x90 it says how to
// cut it (gso.Meta): a driver whose device takes offloads hands it over
// whole, one whose device does not cuts it with gso.Segment.
type TAPFrame struct {
	Frame   []byte
	Offload gso.Meta
}

// Stats are the node's counters.
type Stats struct {
	Drops         [numDropReasons]uint64
	Duplicates    uint64 // broadcasts and health requests already seen
	FramesToTAP   uint64
	FramesFromTAP uint64
	Forwarded     uint64 // targeted frames relayed for others
	Failovers     uint64
	Withdrawals   uint64
	Violations    uint64
	// Forgeries counts signatures that did not verify; Unsigned the
	// relayed announcements from extended links without a signature of
	// their round (dropped unless Config.AcceptUnsigned).
	Forgeries uint64
	Unsigned  uint64
	// UnsignedFromOriginal counts the announcements of other members that
	// original nodes relayed, believed unsigned (Config.RefuseOriginalRelays
	// refuses them).
	UnsignedFromOriginal uint64
	// GSOIn and GSOOut count the 0x90 super-frames received and sent
	// (relayed ones in both); Segmented counts the super-frames this
	// node cut into ordinary frames, for a neighbour that takes no 0x90.
	GSOIn, GSOOut, Segmented uint64
}
