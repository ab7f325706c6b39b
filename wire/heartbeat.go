package wire

import "encoding/binary"

// Heartbeat (0x87, an extension) proves a link alive when it carries
// nothing else, and measures its round-trip time: flags(1), seq(4). A
// probe (flags 0) is sent by an end whose sending direction has been
// quiet for a heartbeat interval; the other end answers it at once with a
// reply (flags 1) carrying the same seq. Only bit 0 of flags is defined;
// a message with any other bit set is malformed (a future variant gets a
// type of its own). See docs/protocol.md#heartbeat.
type Heartbeat struct {
	Reply bool
	Seq   uint32
}

// heartbeatLen is the size of a 0x87 message with its type byte.
const heartbeatLen = 1 + 1 + 4

var heartbeatFields = []field{{"type", 1}, {"flags", 1}, {"seq", 4}}

// Type returns TypeHeartbeat.
func (*Heartbeat) Type() Type { return TypeHeartbeat }

// Append appends the message to dst.
func (m *Heartbeat) Append(dst []byte) []byte {
	var flags byte
	if m.Reply {
		flags = 1
	}
	dst = append(dst, byte(TypeHeartbeat), flags)
	return binary.BigEndian.AppendUint32(dst, m.Seq)
}

// DecodeHeartbeat decodes a 0x87 message (type byte included).
func DecodeHeartbeat(msg []byte) (Heartbeat, error) {
	if err := checkType(msg, TypeHeartbeat); err != nil {
		return Heartbeat{}, err
	}
	if len(msg) < heartbeatLen {
		return Heartbeat{}, shortErr(TypeHeartbeat, fieldAt(heartbeatFields, len(msg)), len(msg), heartbeatLen)
	}
	if len(msg) > heartbeatLen {
		return Heartbeat{}, decodeErr(TypeHeartbeat, "seq", ErrTrailing, "%d bytes after the seq", len(msg)-heartbeatLen)
	}
	if msg[1]&^1 != 0 {
		return Heartbeat{}, decodeErr(TypeHeartbeat, "flags", ErrFlags, "flags %08b, only bit 0 (reply) is defined", msg[1])
	}
	return Heartbeat{Reply: msg[1] == 1, Seq: binary.BigEndian.Uint32(msg[2:6])}, nil
}
