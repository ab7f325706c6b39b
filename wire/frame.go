package wire

import "encoding/binary"

// EthernetHeaderLen is the size of dst(6), src(6) and ethertype(2).
const EthernetHeaderLen = 14

// TargetedFrame (0x80) carries a unicast Ethernet frame hop by hop:
// dst mac(6), src mac(6), ethertype and payload. Frame is exactly the
// Ethernet frame without its FCS. A decoded Frame aliases the message.
type TargetedFrame struct {
	Frame []byte
}

// Dst returns the frame's destination MAC. Frame must hold a header.
func (m *TargetedFrame) Dst() MAC { return MAC(m.Frame[0:6]) }

// Src returns the frame's source MAC. Frame must hold a header.
func (m *TargetedFrame) Src() MAC { return MAC(m.Frame[6:12]) }

// Type returns TypeTargetedFrame.
func (*TargetedFrame) Type() Type { return TypeTargetedFrame }

// Append appends the message to dst.
func (m *TargetedFrame) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeTargetedFrame))
	return append(dst, m.Frame...)
}

// DecodeTargetedFrame decodes a 0x80 message (type byte included) without
// copying or allocating: Frame aliases msg.
func DecodeTargetedFrame(msg []byte) (TargetedFrame, error) {
	if err := checkType(msg, TypeTargetedFrame); err != nil {
		return TargetedFrame{}, err
	}
	if err := checkFrame(TypeTargetedFrame, msg[1:]); err != nil {
		return TargetedFrame{}, err
	}
	return TargetedFrame{Frame: msg[1:]}, nil
}

// checkFrame checks that frame holds a full Ethernet header.
func checkFrame(t Type, frame []byte) error {
	if len(frame) < EthernetHeaderLen {
		return &DecodeError{Type: t, Field: fieldAt(ethFields, len(frame)), Err: ErrShort,
			Detail: "ethernet frame shorter than its 14-byte header"}
	}
	return nil
}

var ethFields = []field{{"dst mac", 6}, {"src mac", 6}, {"ethertype", 2}}

// BroadcastFrame (0x81) floods a broadcast Ethernet frame: id(8),
// src mac(6), ethertype and payload. It is written to the TAP with
// destination ff:ff:ff:ff:ff:ff. A decoded Payload aliases the message.
type BroadcastFrame struct {
	ID      uint64
	Src     MAC
	Payload []byte // ethertype(2) and payload
}

// Type returns TypeBroadcastFrame.
func (*BroadcastFrame) Type() Type { return TypeBroadcastFrame }

// Append appends the message to dst.
func (m *BroadcastFrame) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeBroadcastFrame))
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = append(dst, m.Src[:]...)
	return append(dst, m.Payload...)
}

// AppendEthernet appends the Ethernet frame the broadcast stands for:
// ff:ff:ff:ff:ff:ff, Src, Payload.
func (m *BroadcastFrame) AppendEthernet(dst []byte) []byte {
	dst = append(dst, Broadcast[:]...)
	dst = append(dst, m.Src[:]...)
	return append(dst, m.Payload...)
}

var broadcastFields = []field{{"type", 1}, {"id", 8}, {"src mac", 6}, {"ethertype", 2}}

// DecodeBroadcastFrame decodes a 0x81 message (type byte included) without
// copying or allocating: Payload aliases msg.
func DecodeBroadcastFrame(msg []byte) (BroadcastFrame, error) {
	const fixed = 1 + 8 + 6 + 2
	if err := checkType(msg, TypeBroadcastFrame); err != nil {
		return BroadcastFrame{}, err
	}
	if len(msg) < fixed {
		return BroadcastFrame{}, shortErr(TypeBroadcastFrame, fieldAt(broadcastFields, len(msg)), len(msg), fixed)
	}
	return BroadcastFrame{
		ID:      binary.BigEndian.Uint64(msg[1:9]),
		Src:     MAC(msg[9:15]),
		Payload: msg[15:],
	}, nil
}

// GroupFrame (0x82, an extension) floods a frame to a group address other
// than broadcast, keeping its destination: id(8), then the Ethernet frame.
// It shares the id space and de-duplication of 0x81. A decoded Frame
// aliases the message.
type GroupFrame struct {
	ID    uint64
	Frame []byte
}

// Src returns the frame's source MAC. Frame must hold a header.
func (m *GroupFrame) Src() MAC { return MAC(m.Frame[6:12]) }

// Type returns TypeGroupFrame.
func (*GroupFrame) Type() Type { return TypeGroupFrame }

// Append appends the message to dst.
func (m *GroupFrame) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeGroupFrame))
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	return append(dst, m.Frame...)
}

// AppendBroadcast appends the 0x81 that carries this frame to a peer that
// speaks only the seed protocol (which will deliver it as a broadcast).
func (m *GroupFrame) AppendBroadcast(dst []byte) []byte {
	b := BroadcastFrame{ID: m.ID, Src: m.Src(), Payload: m.Frame[12:]}
	return b.Append(dst)
}

// DecodeGroupFrame decodes a 0x82 message (type byte included) without
// copying or allocating. The destination must be a group address.
func DecodeGroupFrame(msg []byte) (GroupFrame, error) {
	if err := checkType(msg, TypeGroupFrame); err != nil {
		return GroupFrame{}, err
	}
	if len(msg) < 9 {
		return GroupFrame{}, shortErr(TypeGroupFrame, "id", len(msg), 9)
	}
	frame := msg[9:]
	if err := checkFrame(TypeGroupFrame, frame); err != nil {
		return GroupFrame{}, err
	}
	if frame[0]&1 == 0 {
		return GroupFrame{}, decodeErr(TypeGroupFrame, "dst mac", ErrHeader, "%s is not a group address", MAC(frame[0:6]))
	}
	return GroupFrame{ID: binary.BigEndian.Uint64(msg[1:9]), Frame: frame}, nil
}

// LimitedFrame (0x84, an extension) is a targeted frame with a hop limit:
// hops(1), then the Ethernet frame. A node forwards it only while hops is
// above 1, decrementing it. A decoded Frame aliases the message.
type LimitedFrame struct {
	Hops  uint8
	Frame []byte
}

// Dst returns the frame's destination MAC. Frame must hold a header.
func (m *LimitedFrame) Dst() MAC { return MAC(m.Frame[0:6]) }

// Src returns the frame's source MAC. Frame must hold a header.
func (m *LimitedFrame) Src() MAC { return MAC(m.Frame[6:12]) }

// Type returns TypeLimitedFrame.
func (*LimitedFrame) Type() Type { return TypeLimitedFrame }

// Append appends the message to dst.
func (m *LimitedFrame) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeLimitedFrame), m.Hops)
	return append(dst, m.Frame...)
}

// DecodeLimitedFrame decodes a 0x84 message (type byte included) without
// copying or allocating.
func DecodeLimitedFrame(msg []byte) (LimitedFrame, error) {
	if err := checkType(msg, TypeLimitedFrame); err != nil {
		return LimitedFrame{}, err
	}
	if len(msg) < 2 {
		return LimitedFrame{}, shortErr(TypeLimitedFrame, "hops", len(msg), 2)
	}
	if err := checkFrame(TypeLimitedFrame, msg[2:]); err != nil {
		return LimitedFrame{}, err
	}
	return LimitedFrame{Hops: msg[1], Frame: msg[2:]}, nil
}

// UnicastDst returns the destination MAC of a message that carries one
// unicast frame hop by hop (0x80, 0x84, 0x90), without decoding the rest;
// false for any other message or one too short to hold the MAC. It is
// for drivers that look ahead at where a message goes (back-pressure),
// not a check: the message may still be refused when decoded.
func UnicastDst(msg []byte) (MAC, bool) {
	if len(msg) == 0 {
		return MAC{}, false
	}
	at := 0
	switch Type(msg[0]) {
	case TypeTargetedFrame:
		at = 1
	case TypeLimitedFrame:
		at = 2
	case TypeGSOFrame:
		at = GSOFrameOverhead
	default:
		return MAC{}, false
	}
	if len(msg) < at+6 {
		return MAC{}, false
	}
	return MAC(msg[at : at+6]), true
}
