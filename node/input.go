package node

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/invpn/invpn/wire"
)

// Input is one thing that happened to a node, as data: the driver hands it
// to [Node.Step] with the time it happened. Inputs can be logged, replayed
// and scripted: the simulator, the tests and the daemon feed the engine
// the same values. The concrete types are [Tick], [LinkUp], [LinkDown],
// [Receive], [FromTAP], [DialFailed], [StartHealth], [SetSeeds] and [SetRevocation].
type Input interface {
	isInput()
	// String describes the input for logs and transcripts.
	String() string
}

// Tick says only that time passed: the node runs what is due (the
// announcement, the connect policy, route expiry and link timeouts).
type Tick struct{}

// LinkUp says a link came up: Peer is the MAC from the link's
// certificate, Addr the peer's address as seen on the socket, Dialed
// whether this node dialled it, Extended whether both ends negotiated the
// invpn protocol. Link is chosen by the driver and never reused.
type LinkUp struct {
	Link     LinkID
	Peer     wire.MAC
	Addr     netip.AddrPort
	Dialed   bool
	Extended bool
}

// LinkDown says a link is gone, for Reason. Unknown links are ignored.
type LinkDown struct {
	Link   LinkID
	Reason error
}

// Receive hands the node a message (type byte and body, no length prefix)
// that arrived on Link. Msg must stay valid until Advance, and the node
// may rewrite it in place: a relayed 0x90 leaves as Msg itself, with its
// hops byte decremented.
type Receive struct {
	Link LinkID
	Msg  []byte
}

// FromTAP hands the node an Ethernet frame read from the TAP device.
// Frame must stay valid until Advance.
type FromTAP struct {
	Frame []byte
}

// DialFailed says a dial the node asked for failed. The peer is backed off
// exponentially, with jitter, before it is dialled again.
type DialFailed struct {
	Peer wire.MAC
	Err  error
}

// StartHealth asks the node to flood a health request (0x02). Its id comes
// back in Ready.HealthStarted, its answers in Ready.Health.
type StartHealth struct{}

// SetSeeds replaces the `init` peers and the bootstrap peers (on a
// configuration reload).
type SetSeeds struct {
	Seeds, Bootstrap []Peer
}

func (Tick) isInput() {}

func (LinkUp) isInput() {}

func (LinkDown) isInput() {}

func (Receive) isInput() {}

func (FromTAP) isInput() {}

func (DialFailed) isInput() {}

func (StartHealth) isInput() {}

func (SetSeeds) isInput() {}

func (Tick) String() string { return "tick" }

func (in LinkUp) String() string {
	dir, proto := "accepted", "invpn/1"
	if in.Dialed {
		dir = "dialled"
	}
	if !in.Extended {
		proto = "seed protocol"
	}
	return fmt.Sprintf("link up %d to %s at %s (%s, %s)", in.Link, in.Peer, in.Addr, dir, proto)
}

func (in LinkDown) String() string {
	return fmt.Sprintf("link down %d: %v", in.Link, in.Reason)
}

func (in Receive) String() string {
	return fmt.Sprintf("receive on %d: %s", in.Link, wire.Describe(in.Msg))
}

func (in FromTAP) String() string { return "from TAP: " + wire.DescribeFrame(in.Frame) }

func (in DialFailed) String() string {
	return fmt.Sprintf("dial failed %s: %v", in.Peer, in.Err)
}

func (StartHealth) String() string { return "start health" }

func (in SetSeeds) String() string {
	return fmt.Sprintf("set seeds %v bootstrap %v", in.Seeds, in.Bootstrap)
}

// Step hands the node one input that happened at now, in the driver's
// time. Its effects are collected in Ready.
func (n *Node) Step(now time.Time, in Input) {
	switch in := in.(type) {
	case Receive:
		n.Receive(now, in.Link, in.Msg)
	case FromTAP:
		n.FrameFromTAP(now, in.Frame)
	case Tick:
		n.tickInput(now)
	case LinkUp:
		n.tick(now)
		n.linkUp(in)
		n.flushUrgent()
	case LinkDown:
		n.tick(now)
		if l, ok := n.links.byID[in.Link]; ok {
			n.removeLink(l, in.Reason)
		} else if l := n.links.retired(in.Link); l != nil {
			n.endRetiring(l, false, nil)
		}
	case DialFailed:
		n.tick(now)
		n.dialFailed(in.Peer, in.Err)
	case StartHealth:
		n.tick(now)
		n.startHealth()
	case SetSeeds:
		n.tick(now)
		n.setSeeds(in.Seeds, in.Bootstrap)
	case SetRevocation:
		n.tick(now)
		n.setRevocation(in)
	default:
		panic("node: Step: nil or unknown input") // Input is sealed: only a nil reaches here
	}
}

// Receive is Step(now, Receive{id, msg}) without the interface value: the
// per-frame path's allocation-free entry.
func (n *Node) Receive(now time.Time, id LinkID, msg []byte) {
	n.tick(now)
	l, live := n.links.byID[id]
	switch {
	case live:
		l.lastRecv = n.clock.now
		if !l.heard {
			l.heard = true
			delete(n.dialer.backoff, l.peer) // the peer took the link
		}
	default:
		// A retiring link's frames are still taken (retireLink).
		if l = n.links.retired(id); l == nil {
			return
		}
	}
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
	if l.directory && !directoryCarries(t) {
		n.drop(DropDirectory, l.peer)
		return
	}
	if !live {
		n.receiveRetiring(l, t, msg)
		return
	}
	switch t {
	case wire.TypeTargetedFrame, wire.TypeLimitedFrame:
		n.receiveTargeted(l, t, msg)
	case wire.TypeBroadcastFrame, wire.TypeGroupFrame:
		n.receiveFlooded(l, t, msg)
	case wire.TypeInitialInfo, wire.TypeInfo, wire.TypeInfoPath:
		n.receiveAnnouncement(l, t, msg)
		n.flushUrgent()
	case wire.TypeInfoBatch:
		n.receiveBatch(l, msg)
		n.flushUrgent()
	case wire.TypeAnnounceRequestFor:
		n.receiveAnnounceRequestFor(l, msg)
		n.flushUrgent()
	case wire.TypeHealthRequest:
		n.receiveHealthRequest(l, msg)
	case wire.TypeHealthResponse:
		n.receiveHealthResponse(l, msg)
	case wire.TypeAnnounceRequest:
		n.receiveAnnounceRequest(l, msg)
	case wire.TypeHeartbeat:
		n.receiveHeartbeat(l, msg)
	case wire.TypeLinkFull:
		n.receiveLinkFull(l, msg)
	case wire.TypeHealthLinks:
		n.receiveHealthLinks(l, msg)
	case wire.TypeRevocationList:
		n.receiveRevocation(l, msg)
	case wire.TypeSignatures:
		n.receiveSignatures(l, msg)
	case wire.TypeCertificate:
		n.receiveCertificate(l, msg)
	case wire.TypeFeatures:
		n.receiveFeatures(l, msg)
	case wire.TypeGSOFrame:
		n.receiveGSO(l, msg)
	}
}
