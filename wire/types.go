package wire

import "fmt"

// Type is the byte after the length prefix that says what a message is.
type Type uint8

// The six packet types of the seed protocol (docs/protocol.md#packet-types).
const (
	TypeInitialInfo    Type = 0x00 // a node announces itself to its neighbour
	TypeInfo           Type = 0x01 // an announcement flooded through the mesh
	TypeHealthRequest  Type = 0x02 // admin health request, flooded
	TypeHealthResponse Type = 0x03 // admin health response, routed to the requester
	TypeTargetedFrame  Type = 0x80 // a unicast Ethernet frame, routed hop by hop
	TypeBroadcastFrame Type = 0x81 // a broadcast Ethernet frame, flooded
)

// Version is the only value of the version byte this package speaks.
const Version = 1

// Known reports whether t is a type this package can decode.
func (t Type) Known() bool {
	switch t {
	case TypeInitialInfo, TypeInfo, TypeHealthRequest, TypeHealthResponse,
		TypeTargetedFrame, TypeBroadcastFrame:
		return true
	}
	return extensionKnown(t)
}

// String names the type, as "0x01 info".
func (t Type) String() string {
	var name string
	switch t {
	case TypeInitialInfo:
		name = "initial info"
	case TypeInfo:
		name = "info"
	case TypeHealthRequest:
		name = "health request"
	case TypeHealthResponse:
		name = "health response"
	case TypeTargetedFrame:
		name = "targeted frame"
	case TypeBroadcastFrame:
		name = "broadcast frame"
	default:
		name = extensionName(t)
	}
	return fmt.Sprintf("0x%02x %s", uint8(t), name)
}

// TypeOf returns the type byte of msg. An empty msg is an error wrapping
// ErrZeroLength; a type this package does not know is returned together
// with an error wrapping ErrUnknownType, so callers can count and skip it.
func TypeOf(msg []byte) (Type, error) {
	if len(msg) == 0 {
		return 0, fmt.Errorf("wire: message type: %w", ErrZeroLength)
	}
	t := Type(msg[0])
	if !t.Known() {
		return t, fmt.Errorf("wire: message type 0x%02x: %w", msg[0], ErrUnknownType)
	}
	return t, nil
}

// Message is implemented by every packet struct in this package.
type Message interface {
	// Type returns the packet type.
	Type() Type
	// Append appends the type byte and body to dst and returns the result.
	Append(dst []byte) []byte
}

// Decode decodes any known message into its struct. It allocates the
// returned value; the per-frame path should call DecodeTargetedFrame or
// DecodeBroadcastFrame directly instead.
func Decode(msg []byte) (Message, error) {
	t, err := TypeOf(msg)
	if err != nil {
		return nil, err
	}
	switch t {
	case TypeInitialInfo:
		return box(DecodeInitialInfo(msg))
	case TypeInfo:
		return box(DecodeInfo(msg))
	case TypeHealthRequest:
		return box(DecodeHealthRequest(msg))
	case TypeHealthResponse:
		return box(DecodeHealthResponse(msg))
	case TypeTargetedFrame:
		return box(DecodeTargetedFrame(msg))
	case TypeBroadcastFrame:
		return box(DecodeBroadcastFrame(msg))
	}
	return decodeExtension(t, msg)
}

func decodeExtension(t Type, msg []byte) (Message, error) {
	switch t {
	case TypeGroupFrame:
		return box(DecodeGroupFrame(msg))
	case TypeLimitedFrame:
		return box(DecodeLimitedFrame(msg))
	case TypeInfoPath:
		return box(DecodeInfoPath(msg))
	case TypeAnnounceRequest:
		return box(DecodeAnnounceRequest(msg))
	case TypeHeartbeat:
		return box(DecodeHeartbeat(msg))
	case TypeInfoBatch:
		return box(DecodeInfoBatch(msg))
	case TypeAnnounceRequestFor:
		return box(DecodeAnnounceRequestFor(msg))
	case TypeLinkFull:
		return box(DecodeLinkFull(msg))
	case TypeHealthLinks:
		return box(DecodeHealthLinks(msg))
	case TypeRevocationList:
		return box(DecodeRevocationList(msg))
	case TypeSignatures:
		return box(DecodeSignatures(msg))
	case TypeCertificate:
		return box(DecodeCertificate(msg))
	case TypeFeatures:
		return box(DecodeFeatures(msg))
	case TypeGSOFrame:
		return box(DecodeGSOFrame(msg))
	}
	return nil, &DecodeError{Type: t, Field: "type", Err: ErrUnknownType}
}

// box turns a decoder's value result into a Message, nil on error.
func box[T any, P interface {
	*T
	Message
}](m T, err error) (Message, error) {
	if err != nil {
		return nil, err
	}
	return P(&m), nil
}
