package wire

// Extension types are used on a link only when both ends negotiated the
// invpn protocol (see docs/protocol.md, "Extensions"). An original node
// never sees them.
const (
	// TypeGroupFrame (0x82) floods a frame to a group address other than
	// ff:ff:ff:ff:ff:ff (IPv6 neighbour discovery, mDNS) keeping its real
	// destination: id(8), then the Ethernet frame from dst on.
	TypeGroupFrame Type = 0x82
	// TypeLimitedFrame (0x84) is a targeted frame with a hop limit:
	// hops(1), then the Ethernet frame from dst on.
	TypeLimitedFrame Type = 0x84
	// TypeInfoHops (0x85) is an info announcement that carries the
	// sender's distance in links to the announced node: hops(1), then the
	// body of a 0x01 from version on.
	TypeInfoHops Type = 0x85
)

func extensionKnown(t Type) bool {
	return t == TypeGroupFrame || t == TypeLimitedFrame || t == TypeInfoHops
}

func extensionName(t Type) string {
	switch t {
	case TypeGroupFrame:
		return "group frame"
	case TypeLimitedFrame:
		return "limited frame"
	case TypeInfoHops:
		return "info with hops"
	}
	return "unknown"
}
