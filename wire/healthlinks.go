package wire

import (
	"encoding/binary"
	"math"
	"time"
)

// HealthLinks (0x8B, an extension) goes with a 0x03 from an extended node
// and the same way, toward the requester: the answering node's mesh links
// with their round-trip times, which a 0x03 has no room for. It travels
// only over extended links; a relay that would forward it to an original
// node drops it. dest(6), origin(6), id(8), count(2), then count entries
// of peer(6) and rtt(4, microseconds; 0: not measured). See
// docs/protocol.md#health.
type HealthLinks struct {
	Dest   MAC    // the requester
	Origin MAC    // the answering node
	ID     uint64 // the request's id
	Links  []LinkRTT
}

// LinkRTT is one link of a HealthLinks.
type LinkRTT struct {
	Peer MAC
	RTT  time.Duration // whole microseconds on the wire; 0: not measured
}

// healthLinksFixed is the size of a 0x8B with no entries, type included.
const healthLinksFixed = 1 + 6 + 6 + 8 + 2

// healthLinkLen is the size of one entry.
const healthLinkLen = 6 + 4

// MaxHealthLinks is the most entries one 0x8B holds.
const MaxHealthLinks = (MaxMessage - healthLinksFixed) / healthLinkLen

var healthLinksFields = []field{{"type", 1}, {"dest", 6}, {"origin", 6}, {"id", 8}, {"count", 2}}

// Type returns TypeHealthLinks.
func (*HealthLinks) Type() Type { return TypeHealthLinks }

// Append appends the message to dst. An RTT is rounded down to whole
// microseconds and saturates at the field's 71 minutes; callers keep
// Links at most MaxHealthLinks.
func (m *HealthLinks) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeHealthLinks))
	dst = append(dst, m.Dest[:]...)
	dst = append(dst, m.Origin[:]...)
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Links)))
	for _, l := range m.Links {
		dst = append(dst, l.Peer[:]...)
		us := l.RTT.Microseconds()
		dst = binary.BigEndian.AppendUint32(dst, uint32(min(max(us, 0), math.MaxUint32)))
	}
	return dst
}

// DecodeHealthLinks decodes a 0x8B message (type byte included).
func DecodeHealthLinks(msg []byte) (HealthLinks, error) {
	var m HealthLinks
	if err := checkType(msg, TypeHealthLinks); err != nil {
		return m, err
	}
	if len(msg) < healthLinksFixed {
		return m, shortErr(TypeHealthLinks, fieldAt(healthLinksFields, len(msg)), len(msg), healthLinksFixed)
	}
	count := int(binary.BigEndian.Uint16(msg[21:23]))
	rest := msg[healthLinksFixed:]
	if len(rest) != count*healthLinkLen {
		return m, decodeErr(TypeHealthLinks, "links", ErrCount, "count %d needs %d bytes, got %d", count, count*healthLinkLen, len(rest))
	}
	m.Dest, m.Origin = MAC(msg[1:7]), MAC(msg[7:13])
	m.ID = binary.BigEndian.Uint64(msg[13:21])
	if count > 0 {
		m.Links = make([]LinkRTT, count) // count entries are in the message
		for i := range m.Links {
			e := rest[i*healthLinkLen:]
			m.Links[i] = LinkRTT{Peer: MAC(e[:6]), RTT: time.Duration(binary.BigEndian.Uint32(e[6:10])) * time.Microsecond}
		}
	}
	return m, nil
}
