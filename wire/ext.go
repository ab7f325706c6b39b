package wire

// Extension types are used on a link only when both ends negotiated the
// invpn protocol (see docs/protocol.md#extensions). An original node
// never sees them.
const (
	// TypeGroupFrame (0x82) floods a frame to a group address other than
	// ff:ff:ff:ff:ff:ff (IPv6 neighbour discovery, mDNS) keeping its real
	// destination: id(8), then the Ethernet frame from dst on.
	TypeGroupFrame Type = 0x82
	// TypeLimitedFrame (0x84) is a targeted frame with a hop limit:
	// hops(1), then the Ethernet frame from dst on.
	TypeLimitedFrame Type = 0x84
	// TypeInfoPath (0x85) is an info announcement that carries the path
	// it travelled: n(1), path(n*6), then the body of a 0x01 from version
	// on. n = 255 means the path is unknown (it crossed a seed-protocol
	// node) and no path bytes follow.
	TypeInfoPath Type = 0x85
	// TypeAnnounceRequest (0x86) floods a request that every node announce
	// itself again now, sent by a node that lost a link: id(8), then the
	// requester's mac(6).
	TypeAnnounceRequest Type = 0x86
	// TypeHeartbeat (0x87) proves a quiet link alive and measures its
	// round-trip time: seq(4) (a probe; 0: none), echo(4) (the peer's
	// probe answered; 0: none).
	TypeHeartbeat Type = 0x87
	// TypeInfoBatch (0x88) carries several announcements in one message:
	// count(2), then per entry flags(1) and a 0x85 from its n on.
	TypeInfoBatch Type = 0x88
	// TypeAnnounceRequestFor (0x89) floods a request that the listed
	// nodes announce themselves again now: id(8), requester mac(6),
	// count(2), target macs.
	TypeAnnounceRequestFor Type = 0x89
	// TypeLinkFull (0x8A) says that the sender accepted the link beyond its
	// link limit: the link carries only the sender's table, for the
	// receiver's cache, and then closes. No body.
	TypeLinkFull Type = 0x8A
	// TypeHealthLinks (0x8B) goes with a 0x03, the same way: the
	// answering node's links and their round-trip times: dest(6),
	// origin(6), id(8), count(2), then per link peer(6) and rtt(4, µs).
	TypeHealthLinks Type = 0x8B
	// TypeRevocationList (0x8C) floods the group's certificate revocation
	// list: number(8), then the X.509 CRL in DER.
	TypeRevocationList Type = 0x8C
	// TypeSignatures (0x8D) carries the members' signatures of the
	// announcements that follow it on the link: count(2), then per entry
	// mac(6), id(8), port(2), len(2), signature.
	TypeSignatures Type = 0x8D
	// TypeCertificate (0x8E) carries a member's certificate in DER.
	TypeCertificate Type = 0x8E
	// TypeFeatures (0x8F) says which optional extensions the sender
	// takes on the link: bits(4).
	TypeFeatures Type = 0x8F
	// TypeGSOFrame (0x90) is a TCP super-frame with its offload fields,
	// routed as a 0x84: hops(1), flags(1), gso_type(1), hdr_len(2),
	// gso_size(2), csum_start(2), csum_offset(2), then the frame.
	TypeGSOFrame Type = 0x90
)

func extensionKnown(t Type) bool {
	return t == TypeGroupFrame || t == TypeLimitedFrame || t == TypeInfoPath || t == TypeAnnounceRequest ||
		t == TypeHeartbeat || t == TypeInfoBatch || t == TypeAnnounceRequestFor || t == TypeLinkFull || t == TypeHealthLinks ||
		t == TypeRevocationList || t == TypeSignatures || t == TypeCertificate || t == TypeFeatures || t == TypeGSOFrame
}

func extensionName(t Type) string {
	switch t {
	case TypeGroupFrame:
		return "group frame"
	case TypeLimitedFrame:
		return "limited frame"
	case TypeInfoPath:
		return "info with path"
	case TypeAnnounceRequest:
		return "announce request"
	case TypeHeartbeat:
		return "heartbeat"
	case TypeInfoBatch:
		return "info batch"
	case TypeAnnounceRequestFor:
		return "announce request for"
	case TypeLinkFull:
		return "link full"
	case TypeHealthLinks:
		return "health links"
	case TypeRevocationList:
		return "revocation list"
	case TypeSignatures:
		return "signatures"
	case TypeCertificate:
		return "certificate"
	case TypeFeatures:
		return "features"
	case TypeGSOFrame:
		return "gso frame"
	}
	return "unknown"
}
