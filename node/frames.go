package node

import (
	"time"

	"github.com/invpn/invpn/wire"
)

// FrameFromTAP is Step(now, FromTAP{frame}) without the interface value:
// the per-frame path's allocation-free entry.
func (n *Node) FrameFromTAP(now time.Time, frame []byte) {
	n.tick(now)
	n.stats.FramesFromTAP++
	if len(frame) < wire.EthernetHeaderLen {
		n.drop(DropMalformed, n.cfg.MAC)
		return
	}
	dst, src := wire.MAC(frame[0:6]), wire.MAC(frame[6:12])
	// The frame must fit the largest encoding it may need: a 0x82 adds 9
	// bytes to a group frame, a 0x84 adds 2 to a unicast one.
	overhead := 2
	if dst.IsGroup() {
		overhead = 9
	}
	if len(frame)+overhead > wire.MaxMessage {
		n.drop(DropTooLong, n.cfg.MAC)
		return
	}
	if src != n.cfg.MAC {
		n.drop(DropNotOwnSource, src)
		return
	}
	if dst.IsGroup() {
		// Broadcasts and multicasts (IPv6 neighbour discovery, mDNS) are
		// flooded; defect 5 dropped multicasts.
		id := n.newID()
		n.dedup.frames.first(src, id, n.clock.now, n.cfg.DedupSpan)
		n.floodFrame(nil, id, frame, nil)
		return
	}
	l := n.nextHop(dst)
	if l == nil {
		n.drop(DropNoRoute, dst)
		return
	}
	n.sendTargeted(l, frame, n.cfg.HopLimit)
}

// sendTargeted sends frame toward its destination over l with hops left:
// a 0x84 to an extended neighbour, a plain 0x80 to a seed-protocol one.
func (n *Node) sendTargeted(l *link, frame []byte, hops uint8) {
	start := len(n.arena)
	if l.extended {
		m := wire.LimitedFrame{Hops: hops, Frame: frame}
		n.arena = m.Append(n.arena)
	} else {
		m := wire.TargetedFrame{Frame: frame}
		n.arena = m.Append(n.arena)
	}
	n.send(l, n.sinceMark(start), false)
}

// receiveTargeted handles 0x80 and 0x84.
func (n *Node) receiveTargeted(l *link, t wire.Type, msg []byte) {
	var frame []byte
	hops := n.cfg.HopLimit // a 0x80 carries no limit: start one here
	if t == wire.TypeTargetedFrame {
		m, err := wire.DecodeTargetedFrame(msg)
		if err != nil {
			n.malformed(l, err)
			return
		}
		frame = m.Frame
	} else {
		m, err := wire.DecodeLimitedFrame(msg)
		if err != nil {
			n.malformed(l, err)
			return
		}
		frame, hops = m.Frame, m.Hops
	}
	dst := wire.MAC(frame[0:6])
	if dst == n.cfg.MAC {
		n.toTAP(frame)
		return
	}
	next := n.relayTo(l, dst, hops)
	switch {
	case next == nil:
	case next.extended && len(frame)+2 > wire.MaxMessage:
		n.drop(DropTooLong, dst) // a 0x80 of 65535 bytes has no room for a hop limit
	default:
		n.stats.Forwarded++
		if t == wire.TypeTargetedFrame && !next.extended {
			n.send(next, msg, false) // seed to seed: pass the bytes on
			return
		}
		n.sendTargeted(next, frame, hops-1)
	}
}

// relayTo returns the link a targeted frame for dst that came over l
// with hops left goes on to, or nil after counting why it goes nowhere.
func (n *Node) relayTo(l *link, dst wire.MAC, hops uint8) *link {
	if dst.IsGroup() {
		n.malformed(l, wire.ErrHeader)
		return nil
	}
	if n.cfg.NoRelay {
		n.drop(DropNoRelay, dst)
		return nil
	}
	// Defect 9: a targeted frame cannot circulate forever.
	if hops <= 1 {
		n.drop(DropHopLimit, dst)
		return nil
	}
	next := n.nextHop(dst)
	switch {
	case next == nil:
		n.drop(DropNoRoute, dst)
	case next.peer == l.peer: // the same link, or the one that replaced a retiring l
		n.drop(DropRouteLoop, dst)
		return nil
	}
	return next
}

// receiveFlooded handles 0x81 and 0x82.
func (n *Node) receiveFlooded(l *link, t wire.Type, msg []byte) {
	var (
		id    uint64
		src   wire.MAC
		frame []byte // 0x82: the frame; 0x81: nil, built on delivery
		bc    wire.BroadcastFrame
	)
	if t == wire.TypeBroadcastFrame {
		m, err := wire.DecodeBroadcastFrame(msg)
		if err != nil {
			n.malformed(l, err)
			return
		}
		bc, id, src = m, m.ID, m.Src
	} else {
		m, err := wire.DecodeGroupFrame(msg)
		if err != nil {
			n.malformed(l, err)
			return
		}
		id, src, frame = m.ID, m.Src(), m.Frame
	}
	if src == n.cfg.MAC {
		return // our own, echoed by an original node
	}
	if !n.known(src) {
		n.drop(DropUnknownSource, src)
		return
	}
	if !n.dedup.frames.first(src, id, n.clock.now, n.cfg.DedupSpan) {
		n.stats.Duplicates++
		return
	}
	if frame == nil {
		start := len(n.arena)
		n.arena = bc.AppendEthernet(n.arena)
		frame = n.sinceMark(start)
	}
	n.toTAP(frame)
	if n.cfg.NoRelay {
		return
	}
	n.floodFrame(l, id, frame, msg)
}

// floodFrame sends a flooded frame to every link but from: 0x82 to
// extended neighbours when the destination is a multicast group, 0x81
// otherwise. msg, when not nil, is the received encoding to pass on.
func (n *Node) floodFrame(from *link, id uint64, frame []byte, msg []byte) {
	var bcMsg, groupMsg []byte
	dst := wire.MAC(frame[0:6])
	if msg != nil {
		if wire.Type(msg[0]) == wire.TypeBroadcastFrame {
			bcMsg = msg
		} else {
			groupMsg = msg
		}
	}
	for _, o := range n.links.order {
		if from != nil && o.peer == from.peer {
			// Defect 1: never back where it came from (nor, from a
			// retiring link, to the link that replaced it).
			continue
		}
		if o.extended && !dst.IsBroadcast() {
			if groupMsg == nil {
				start, m := len(n.arena), wire.GroupFrame{ID: id, Frame: frame}
				n.arena = m.Append(n.arena)
				groupMsg = n.sinceMark(start)
			}
			n.send(o, groupMsg, false)
			continue
		}
		if bcMsg == nil {
			start, m := len(n.arena), wire.BroadcastFrame{ID: id, Src: wire.MAC(frame[6:12]), Payload: frame[12:]}
			n.arena = m.Append(n.arena)
			bcMsg = n.sinceMark(start)
		}
		n.send(o, bcMsg, false)
	}
}

func (n *Node) toTAP(frame []byte) {
	n.stats.FramesToTAP++
	n.ready.TAP = append(n.ready.TAP, TAPFrame{Frame: frame})
}
