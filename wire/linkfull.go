package wire

// LinkFull (0x8A, an extension) is the first message a node sends on a
// link it accepted beyond its link limit (docs/protocol.md#link-limit): the
// link will carry only this node's table, for the peer's address cache,
// and then close. Neither end routes, relays or floods over it. The
// message is the type byte alone.
type LinkFull struct{}

// linkFullLen is the size of a 0x8A message with its type byte.
const linkFullLen = 1

// Type returns TypeLinkFull.
func (*LinkFull) Type() Type { return TypeLinkFull }

// Append appends the message to dst.
func (*LinkFull) Append(dst []byte) []byte { return append(dst, byte(TypeLinkFull)) }

// DecodeLinkFull decodes a 0x8A message (type byte included).
func DecodeLinkFull(msg []byte) (LinkFull, error) {
	if err := checkType(msg, TypeLinkFull); err != nil {
		return LinkFull{}, err
	}
	if len(msg) > linkFullLen {
		return LinkFull{}, decodeErr(TypeLinkFull, "type", ErrTrailing, "%d bytes after the type (want none)", len(msg)-linkFullLen)
	}
	return LinkFull{}, nil
}
