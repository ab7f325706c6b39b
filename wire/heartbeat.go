package wire

import "encoding/binary"

// Heartbeat (0x87, an extension) proves a link alive when it carries
// nothing else, and measures its round-trip time: seq(4), echo(4). A
// non-zero Seq is a probe that asks the other end to answer at once with
// a heartbeat whose Echo is that Seq; a non-zero Echo answers the peer's
// probe. One message may do both: an answer that also probes lets both
// ends measure the round trip for the price of one extra message. See
// docs/protocol.md#heartbeat.
type Heartbeat struct {
	Seq  uint32 // this end's probe; 0: no answer wanted
	Echo uint32 // the peer's probe being answered; 0: none
}

// heartbeatLen is the size of a 0x87 message with its type byte.
const heartbeatLen = 1 + 4 + 4

var heartbeatFields = []field{{"type", 1}, {"seq", 4}, {"echo", 4}}

// Type returns TypeHeartbeat.
func (*Heartbeat) Type() Type { return TypeHeartbeat }

// Append appends the message to dst.
func (m *Heartbeat) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeHeartbeat))
	dst = binary.BigEndian.AppendUint32(dst, m.Seq)
	return binary.BigEndian.AppendUint32(dst, m.Echo)
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
		return Heartbeat{}, decodeErr(TypeHeartbeat, "echo", ErrTrailing, "%d bytes after the echo", len(msg)-heartbeatLen)
	}
	return Heartbeat{Seq: binary.BigEndian.Uint32(msg[1:5]), Echo: binary.BigEndian.Uint32(msg[5:9])}, nil
}
