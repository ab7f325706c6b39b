package wire

import (
	"encoding/binary"

	"github.com/invpn/invpn/wire/gso"
)

// Features (0x8F, an extension) says which optional extensions the sender
// takes on this link (docs/protocol.md#gso-frames): bits(4). A node sends
// it first on every extended link; until it arrives, the peer is sent
// none of them. Bits this version does not know are ignored, so a later
// version may add some.
type Features struct {
	Bits uint32
}

// Feature bits of a 0x8F.
const (
	// FeatureGSO: the sender takes 0x90 GSO frames.
	FeatureGSO uint32 = 1 << 0
)

// featuresLen is the size of a 0x8F message with its type byte.
const featuresLen = 1 + 4

// Type returns TypeFeatures.
func (*Features) Type() Type { return TypeFeatures }

// Append appends the message to dst.
func (m *Features) Append(dst []byte) []byte {
	return binary.BigEndian.AppendUint32(append(dst, byte(TypeFeatures)), m.Bits)
}

// DecodeFeatures decodes a 0x8F message (type byte included).
func DecodeFeatures(msg []byte) (Features, error) {
	if err := checkType(msg, TypeFeatures); err != nil {
		return Features{}, err
	}
	if len(msg) < featuresLen {
		return Features{}, shortErr(TypeFeatures, "bits", len(msg), featuresLen)
	}
	if len(msg) > featuresLen {
		return Features{}, decodeErr(TypeFeatures, "bits", ErrTrailing, "%d bytes after the bits", len(msg)-featuresLen)
	}
	return Features{Bits: binary.BigEndian.Uint32(msg[1:])}, nil
}

// GSOFrame (0x90, an extension) carries a TCP super-frame: an Ethernet
// frame of up to 64 KB that the sending host's TAP device handed over
// whole (IFF_VNET_HDR) instead of as MSS-sized frames, with what the
// receiver needs to cut it, or to hand it whole to its own TAP device:
// hops(1), then the virtio-net header's fields in network byte order —
// flags(1), gso_type(1), hdr_len(2), gso_size(2), csum_start(2),
// csum_offset(2) — then the frame from dst on. It is routed exactly as a
// 0x84 and goes only to a neighbour whose 0x8F set FeatureGSO
// (docs/protocol.md#gso-frames). A decoded Frame aliases the message.
type GSOFrame struct {
	Hops    uint8
	Offload gso.Meta
	Frame   []byte
}

// GSOFrameOverhead is what a 0x90 adds to the frame it carries: the type
// byte, hops and the offload fields.
const GSOFrameOverhead = 1 + gsoFixed

// gsoFixed is the 0x90 body before the frame.
const gsoFixed = 1 + 1 + 1 + 2 + 2 + 2 + 2

// virtio-net header values on the wire (virtio 1.x, 5.1.6).
const (
	gsoFlagNeedsCsum = 1
	gsoTypeECN       = 0x80
)

// Dst returns the frame's destination MAC. Frame must hold a header.
func (m *GSOFrame) Dst() MAC { return MAC(m.Frame[0:6]) }

// Type returns TypeGSOFrame.
func (*GSOFrame) Type() Type { return TypeGSOFrame }

// Append appends the message to dst. A GSO frame always needs its
// checksum completed (the flags byte is 1).
func (m *GSOFrame) Append(dst []byte) []byte {
	at := len(dst)
	dst = append(dst, make([]byte, GSOFrameOverhead)...)
	m.PutHeader(dst[at:])
	return append(dst, m.Frame...)
}

// PutHeader writes the message's first GSOFrameOverhead bytes, all but
// the frame, into dst: a driver that keeps that much room before a frame
// has the message built in place. dst must hold GSOFrameOverhead bytes.
func (m *GSOFrame) PutHeader(dst []byte) {
	typ := byte(m.Offload.Type)
	if m.Offload.ECN {
		typ |= gsoTypeECN
	}
	_ = dst[GSOFrameOverhead-1]
	dst[0], dst[1], dst[2], dst[3] = byte(TypeGSOFrame), m.Hops, gsoFlagNeedsCsum, typ
	binary.BigEndian.PutUint16(dst[4:], m.Offload.HdrLen)
	binary.BigEndian.PutUint16(dst[6:], m.Offload.Size)
	binary.BigEndian.PutUint16(dst[8:], m.Offload.CsumStart)
	binary.BigEndian.PutUint16(dst[10:], m.Offload.CsumOffset)
}

// DecodeGSOFrame decodes a 0x90 message (type byte included) without
// copying or allocating. It checks the offload fields against the frame
// (a TCP segmentation type, a partial checksum inside the frame, a
// segment size), not the frame's IP and TCP headers: those are checked
// where the frame is cut (gso.Segment).
func DecodeGSOFrame(msg []byte) (GSOFrame, error) {
	const t = TypeGSOFrame
	if err := checkType(msg, t); err != nil {
		return GSOFrame{}, err
	}
	if len(msg) < GSOFrameOverhead {
		return GSOFrame{}, shortErr(t, fieldAt(gsoFields, len(msg)-1), len(msg), GSOFrameOverhead)
	}
	b := msg[1:]
	m := GSOFrame{Hops: b[0], Frame: b[gsoFixed:]}
	if b[1] != gsoFlagNeedsCsum {
		return GSOFrame{}, decodeErr(t, "flags", ErrOffload, "0x%02x (want 0x01: a GSO frame's checksum is partial)", b[1])
	}
	m.Offload.NeedsCsum = true
	m.Offload.ECN = b[2]&gsoTypeECN != 0
	m.Offload.Type = gso.Type(b[2] &^ gsoTypeECN)
	if m.Offload.Type != gso.TypeTCPv4 && m.Offload.Type != gso.TypeTCPv6 {
		return GSOFrame{}, decodeErr(t, "gso_type", ErrOffload, "0x%02x (want TCPv4 0x01 or TCPv6 0x04, optionally with ECN 0x80)", b[2])
	}
	m.Offload.HdrLen = binary.BigEndian.Uint16(b[3:])
	m.Offload.Size = binary.BigEndian.Uint16(b[5:])
	m.Offload.CsumStart = binary.BigEndian.Uint16(b[7:])
	m.Offload.CsumOffset = binary.BigEndian.Uint16(b[9:])
	if err := checkFrame(t, m.Frame); err != nil {
		return GSOFrame{}, err
	}
	if int(m.Offload.HdrLen) > len(m.Frame) {
		return GSOFrame{}, decodeErr(t, "hdr_len", ErrOffload, "%d, past the %d-byte frame", m.Offload.HdrLen, len(m.Frame))
	}
	if m.Offload.Size == 0 {
		return GSOFrame{}, decodeErr(t, "gso_size", ErrOffload, "0")
	}
	if m.Offload.CsumStart < EthernetHeaderLen {
		return GSOFrame{}, decodeErr(t, "csum_start", ErrOffload, "%d, inside the Ethernet header", m.Offload.CsumStart)
	}
	if end := int(m.Offload.CsumStart) + int(m.Offload.CsumOffset) + 2; end > len(m.Frame) {
		return GSOFrame{}, decodeErr(t, "csum_offset", ErrOffload, "checksum field ends at %d, past the %d-byte frame", end, len(m.Frame))
	}
	return m, nil
}

var gsoFields = []field{{"hops", 1}, {"flags", 1}, {"gso_type", 1}, {"hdr_len", 2}, {"gso_size", 2}, {"csum_start", 2}, {"csum_offset", 2}}
