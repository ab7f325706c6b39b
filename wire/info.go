package wire

import (
	"encoding/binary"
	"net/netip"
)

// Address types of the info body (docs/protocol.md#packet-types).
const (
	AddrNone = 0 // the node takes no incoming connections
	AddrIPv4 = 1 // 4 bytes follow
	AddrIPv6 = 2 // 16 bytes follow
)

// InitialInfo (0x00) is the announcement a node sends to its neighbours
// about itself: version(1)=1, id(8), mac(6), port(2).
type InitialInfo struct {
	ID   uint64
	MAC  MAC
	Port uint16
}

// initialInfoLen is the size of a 0x00 message with its type byte.
const initialInfoLen = 1 + 1 + 8 + 6 + 2

// Type returns TypeInitialInfo.
func (*InitialInfo) Type() Type { return TypeInitialInfo }

// Append appends the message to dst.
func (m *InitialInfo) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeInitialInfo), Version)
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = append(dst, m.MAC[:]...)
	return binary.BigEndian.AppendUint16(dst, m.Port)
}

// DecodeInitialInfo decodes a 0x00 message (type byte included).
func DecodeInitialInfo(msg []byte) (InitialInfo, error) {
	var m InitialInfo
	if err := checkType(msg, TypeInitialInfo); err != nil {
		return m, err
	}
	if err := checkVersion(TypeInitialInfo, msg); err != nil {
		return m, err
	}
	if len(msg) < initialInfoLen {
		return m, shortErr(TypeInitialInfo, fieldAt(initialInfoFields, len(msg)), len(msg), initialInfoLen)
	}
	if len(msg) > initialInfoLen {
		return m, decodeErr(TypeInitialInfo, "port", ErrTrailing, "%d bytes after the port", len(msg)-initialInfoLen)
	}
	m.ID = binary.BigEndian.Uint64(msg[2:10])
	copy(m.MAC[:], msg[10:16])
	m.Port = binary.BigEndian.Uint16(msg[16:18])
	return m, nil
}

// Info (0x01) is an announcement flooded through the mesh: version(1)=1,
// id(8), mac(6), port(2), addr_type(1), addr(n). Addr is the zero
// netip.Addr for addr_type 0, a 4-byte address for type 1 and a 16-byte
// address for type 2 (kept as sent, IPv4-mapped included; callers unmap).
type Info struct {
	ID   uint64
	MAC  MAC
	Port uint16
	Addr netip.Addr
}

// Type returns TypeInfo.
func (*Info) Type() Type { return TypeInfo }

// Append appends the message to dst.
func (m *Info) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeInfo))
	return m.appendBody(dst)
}

// appendBody appends everything after the type byte.
func (m *Info) appendBody(dst []byte) []byte {
	dst = append(dst, Version)
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = append(dst, m.MAC[:]...)
	dst = binary.BigEndian.AppendUint16(dst, m.Port)
	switch {
	case m.Addr.Is4():
		a := m.Addr.As4()
		dst = append(dst, AddrIPv4)
		dst = append(dst, a[:]...)
	case m.Addr.Is6():
		a := m.Addr.As16()
		dst = append(dst, AddrIPv6)
		dst = append(dst, a[:]...)
	default:
		dst = append(dst, AddrNone)
	}
	return dst
}

// DecodeInfo decodes a 0x01 message (type byte included).
func DecodeInfo(msg []byte) (Info, error) {
	if err := checkType(msg, TypeInfo); err != nil {
		return Info{}, err
	}
	return decodeInfoBody(TypeInfo, msg[1:])
}

var initialInfoFields = []field{{"type", 1}, {"version", 1}, {"id", 8}, {"mac", 6}, {"port", 2}}
var infoFields = []field{{"version", 1}, {"id", 8}, {"mac", 6}, {"port", 2}, {"addr_type", 1}}

// decodeInfoBody decodes the body of a 0x01 (from version on) for type t.
func decodeInfoBody(t Type, b []byte) (Info, error) {
	var m Info
	const fixed = 1 + 8 + 6 + 2 + 1
	if len(b) < fixed {
		return m, shortErr(t, fieldAt(infoFields, len(b)), len(b), fixed)
	}
	if b[0] != Version {
		return m, decodeErr(t, "version", ErrVersion, "got %d, want %d", b[0], Version)
	}
	m.ID = binary.BigEndian.Uint64(b[1:9])
	copy(m.MAC[:], b[9:15])
	m.Port = binary.BigEndian.Uint16(b[15:17])
	addr := b[fixed:]
	want := 0
	switch b[17] {
	case AddrNone:
	case AddrIPv4:
		want = 4
	case AddrIPv6:
		want = 16
	default:
		return m, decodeErr(t, "addr_type", ErrAddrType, "got %d, want 0, 1 or 2", b[17])
	}
	if len(addr) < want {
		return m, decodeErr(t, "addr", ErrShort, "addr_type %d needs %d bytes, got %d", b[17], want, len(addr))
	}
	if len(addr) > want {
		return m, decodeErr(t, "addr", ErrTrailing, "addr_type %d needs %d bytes, got %d", b[17], want, len(addr))
	}
	switch want {
	case 4:
		m.Addr = netip.AddrFrom4([4]byte(addr))
	case 16:
		m.Addr = netip.AddrFrom16([16]byte(addr))
	}
	return m, nil
}

// PathUnknown is the path count of a 0x85 whose path crossed a node that
// speaks only the seed protocol.
const PathUnknown = 255

// MaxPath is the longest path a 0x85 can carry.
const MaxPath = 254

// InfoPath (0x85, an extension) is an Info that carries the path it
// travelled: n(1), path(n*6), then the 0x01 body from version on. Path
// lists the nodes that relayed the announcement, nearest to the announced
// node first; the last entry is the sender. PathKnown false (n = 255)
// means the path crossed a seed-protocol node and is not known.
type InfoPath struct {
	PathKnown bool
	Path      []MAC
	Info
}

// Type returns TypeInfoPath.
func (*InfoPath) Type() Type { return TypeInfoPath }

// Append appends the message to dst. A known path longer than MaxPath is
// written as unknown.
func (m *InfoPath) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeInfoPath))
	return m.appendAfterType(dst)
}

// appendAfterType appends everything after the type byte: n, the path and
// the 0x01 body.
func (m *InfoPath) appendAfterType(dst []byte) []byte {
	if !m.PathKnown || len(m.Path) > MaxPath {
		dst = append(dst, PathUnknown)
	} else {
		dst = append(dst, byte(len(m.Path)))
		dst = appendMACs(dst, m.Path)
	}
	return m.Info.appendBody(dst)
}

// DecodeInfoPath decodes a 0x85 message (type byte included).
func DecodeInfoPath(msg []byte) (InfoPath, error) {
	var m InfoPath
	if err := checkType(msg, TypeInfoPath); err != nil {
		return m, err
	}
	if len(msg) < 2 {
		return m, shortErr(TypeInfoPath, "n", len(msg), 2)
	}
	rest := msg[2:]
	if n := int(msg[1]); n != PathUnknown {
		if len(rest) < n*6 {
			return m, decodeErr(TypeInfoPath, "path", ErrCount, "n %d needs %d bytes, %d left", n, n*6, len(rest))
		}
		m.PathKnown = true
		m.Path = readMACs(rest, n)
		rest = rest[n*6:]
	}
	info, err := decodeInfoBody(TypeInfoPath, rest)
	m.Info = info
	return m, err
}

// AnnounceRequest (0x86, an extension) asks every node that receives it to
// announce itself again at once: id(8), requester mac(6). A node floods it
// (de-duplicated per requester) when it loses a link, so that routes which
// crossed the lost link are replaced within one flood rather than at the
// next announce interval.
type AnnounceRequest struct {
	ID        uint64
	Requester MAC
}

// Type returns TypeAnnounceRequest.
func (*AnnounceRequest) Type() Type { return TypeAnnounceRequest }

// Append appends the message to dst.
func (m *AnnounceRequest) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeAnnounceRequest))
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	return append(dst, m.Requester[:]...)
}

var announceRequestFields = []field{{"type", 1}, {"id", 8}, {"mac", 6}}

// DecodeAnnounceRequest decodes a 0x86 message (type byte included).
func DecodeAnnounceRequest(msg []byte) (AnnounceRequest, error) {
	const size = 1 + 8 + 6
	if err := checkType(msg, TypeAnnounceRequest); err != nil {
		return AnnounceRequest{}, err
	}
	if len(msg) < size {
		return AnnounceRequest{}, shortErr(TypeAnnounceRequest, fieldAt(announceRequestFields, len(msg)), len(msg), size)
	}
	if len(msg) > size {
		return AnnounceRequest{}, decodeErr(TypeAnnounceRequest, "mac", ErrTrailing, "%d bytes after the mac", len(msg)-size)
	}
	return AnnounceRequest{ID: binary.BigEndian.Uint64(msg[1:9]), Requester: MAC(msg[9:15])}, nil
}
