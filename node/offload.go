package node

import (
	"time"

	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// TCP super-frames (docs/protocol.md#gso-frames). A TAP device opened
// with offloads hands the daemon TCP segments of up to 64 KB with a
// virtio-net header instead of MSS-sized frames. Such a super-frame goes
// to the next hop whole, as one 0x90, when that neighbour's 0x8F said it
// takes them; otherwise this node cuts it into ordinary frames
// (gso.Segment) and sends those. The same holds for a relayed 0x90. At
// the destination the super-frame goes to the driver whole
// (TAPFrame.Offload), which hands it to its device or cuts it.

// sendFeatures sends the 0x8F that opens every extended link.
func (n *Node) sendFeatures(l *link) {
	if !l.extended {
		return
	}
	n.send(l, n.encode(&wire.Features{Bits: wire.FeatureGSO}), true)
}

// receiveFeatures notes what the peer takes on l; unknown bits are kept
// and never looked at.
func (n *Node) receiveFeatures(l *link, msg []byte) {
	m, err := wire.DecodeFeatures(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	l.features = m.Bits
}

// OffloadFromTAP is FrameFromTAP for a frame the TAP device handed over
// with its offload fields: a frame with a partial checksum has it
// completed in place and goes on as any frame; a TCP super-frame is
// routed whole. The frame is buf[at:]; the node may write into buf[:at],
// and with at >= wire.GSOFrameOverhead it builds a 0x90 there, around
// the frame, instead of copying the frame (the Send's Msg is then a
// slice of buf). buf is the caller's until the next Advance.
func (n *Node) OffloadFromTAP(now time.Time, m gso.Meta, buf []byte, at int) {
	frame := buf[at:]
	if !m.IsGSO() {
		if m.NeedsCsum {
			if err := gso.Complete(m, frame); err != nil {
				n.tick(now)
				n.stats.FramesFromTAP++
				n.drop(DropMalformed, n.cfg.MAC)
				return
			}
		}
		n.FrameFromTAP(now, frame)
		return
	}
	n.tick(now)
	n.stats.FramesFromTAP++
	if len(frame) < wire.EthernetHeaderLen || m.Check(len(frame)) != nil {
		n.drop(DropMalformed, n.cfg.MAC)
		return
	}
	dst, src := wire.MAC(frame[0:6]), wire.MAC(frame[6:12])
	if src != n.cfg.MAC {
		n.drop(DropNotOwnSource, src)
		return
	}
	if dst.IsGroup() {
		n.drop(DropMalformed, dst) // TCP has no group destinations
		return
	}
	l := n.nextHop(dst)
	if l == nil {
		n.drop(DropNoRoute, dst)
		return
	}
	if at >= wire.GSOFrameOverhead && n.takesGSO(l, frame) {
		msg := buf[at-wire.GSOFrameOverhead:]
		(&wire.GSOFrame{Hops: n.cfg.HopLimit, Offload: m}).PutHeader(msg)
		n.stats.GSOOut++
		n.send(l, msg, false)
		return
	}
	n.sendGSO(l, m, frame, n.cfg.HopLimit)
}

// takesGSO reports whether frame can go to l as one 0x90.
func (n *Node) takesGSO(l *link, frame []byte) bool {
	return l.extended && l.features&wire.FeatureGSO != 0 && len(frame)+wire.GSOFrameOverhead <= wire.MaxMessage
}

// receiveGSO handles 0x90: delivered whole, relayed whole (msg itself,
// its hops byte rewritten in place), or cut for a next hop that takes no
// 0x90.
func (n *Node) receiveGSO(l *link, msg []byte) {
	m, err := wire.DecodeGSOFrame(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	n.stats.GSOIn++
	dst := m.Dst()
	if dst == n.cfg.MAC {
		n.stats.FramesToTAP++
		n.ready.TAP = append(n.ready.TAP, TAPFrame{Frame: m.Frame, Offload: m.Offload})
		return
	}
	next := n.relayTo(l, dst, m.Hops)
	if next == nil {
		return
	}
	n.stats.Forwarded++
	if n.takesGSO(next, m.Frame) {
		// Relayed as it came, with one hop less: msg[1] is its hops.
		msg[1] = m.Hops - 1
		n.stats.GSOOut++
		n.send(next, msg, false)
		return
	}
	n.sendGSO(next, m.Offload, m.Frame, m.Hops-1)
}

// sendGSO sends a super-frame to l with hops left: one 0x90 to a
// neighbour that takes them, else the ordinary frames it is cut into. A
// super-frame whose headers do not parse cannot be cut and is dropped:
// it came from a host's TAP device (ours or a relayed one), so it is
// not the link's fault.
func (n *Node) sendGSO(l *link, m gso.Meta, frame []byte, hops uint8) {
	if n.takesGSO(l, frame) {
		n.stats.GSOOut++
		start, msg := len(n.arena), wire.GSOFrame{Hops: hops, Offload: m, Frame: frame}
		n.arena = msg.Append(n.arena)
		n.send(l, n.sinceMark(start), false)
		return
	}
	if n.segments == nil {
		n.segments = make([]byte, wire.MaxMessage)
	}
	err := gso.Segment(m, frame, n.segments, func(seg []byte) {
		n.sendTargeted(l, seg, hops)
	})
	if err != nil {
		n.drop(DropMalformed, wire.MAC(frame[6:12]))
		return
	}
	n.stats.Segmented++
}
