// Package transport defines links between mesh members: the interface the
// daemon uses to exchange framed messages with its neighbours, whatever
// carries them. A link is authenticated (its peer's MAC comes from the peer
// certificate, docs/protocol.md#identity-and-links) and message framed
// (docs/protocol.md#framing).
//
// Implementations live in sub-packages: [github.com/invpn/invpn/transport/tlstransport]
// runs links over TLS on TCP, [github.com/invpn/invpn/transport/quictransport]
// over QUIC on UDP (frames as datagrams), [github.com/invpn/invpn/transport/fallback]
// dials over the first of several that answers, and
// [github.com/invpn/invpn/transport/transporttest] is an in-memory fake and
// the conformance suite for tests.
//
// The transport does not decide whom to dial, when to redial, or whether a
// link is wanted (one link per peer, no link to oneself): the node decides
// that and closes the links it does not want.
package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"

	"github.com/invpn/invpn/wire"
)

// ProtocolName is the TLS ALPN protocol name a node of this project offers.
// A link on which both ends select it is [Link.Extended]; a peer that selects
// nothing (an original node) speaks the seed protocol only
// (docs/protocol.md#extending-the-protocol).
const ProtocolName = "invpn/1"

// Sentinel errors returned, wrapped with context, by implementations of this
// package's interfaces. Test for them with errors.Is.
var (
	// ErrWrongPeer means the peer's certificate names another MAC than the
	// one the dialer meant to reach.
	ErrWrongPeer = errors.New("peer is not the member we dialed")
	// ErrNoMAC means a certificate's Common Name is not a MAC of the form
	// 02:50:56:00:00:01.
	ErrNoMAC = errors.New("certificate common name is not a MAC")
	// ErrUntrusted means the peer's certificate chain does not verify
	// against the group's CA pool.
	ErrUntrusted = errors.New("peer certificate not signed by the group CA")
	// ErrRevoked means the peer's certificate is on the group's
	// revocation list (docs/protocol.md#revocation).
	ErrRevoked = errors.New("peer certificate revoked")
)

// Link is one authenticated, message-framed connection to a peer.
//
// A message is the type byte and the body (docs/protocol.md#framing); the
// 2-byte length prefix belongs to the link. Reading and writing may run
// concurrently with each other and with Close, but at most one goroutine
// reads and at most one goroutine writes at a time.
type Link interface {
	// Peer returns the MAC from the peer certificate's Common Name.
	Peer() wire.MAC
	// RemoteAddr returns the peer's address as seen on the socket, with an
	// IPv4-mapped IPv6 address unmapped to plain IPv4.
	RemoteAddr() netip.AddrPort
	// Dialed reports whether this end initiated the link.
	Dialed() bool
	// Extended reports whether both ends negotiated this project's protocol
	// ([ProtocolName]). It is false for a peer that speaks only the seed
	// protocol (an original node).
	Extended() bool
	// Transport names the transport that carries the link, as `invpn
	// status` and the live map show it: "tls" for TLS over TCP, "quic"
	// for QUIC.
	Transport() string
	// ReadMessage returns the next message (type byte and body). Every
	// message arrives once and in order, except that a datagram transport
	// (quictransport) may lose frame messages (0x80, 0x81, 0x82, 0x84)
	// and deliver them out of order with the rest. The slice
	// is owned by the link and valid only until the next ReadMessage. At a
	// clean end of stream, and after Close, it returns io.EOF itself (not
	// wrapped); other errors are wrapped with context.
	ReadMessage() ([]byte, error)
	// WriteMessage frames msg with its 2-byte length and writes it. msg is
	// not retained. A msg that cannot be framed (empty, or longer than
	// wire.MaxMessage) fails with an error wrapping wire.ErrZeroLength or
	// wire.ErrTooLong and nothing is written.
	WriteMessage(msg []byte) error
	// WriteMessages frames every message of msgs and writes them all in one
	// write call. No message is retained. If one message cannot be framed,
	// nothing is written.
	WriteMessages(msgs [][]byte) error
	// Close closes the link and unblocks a pending ReadMessage, which then
	// returns io.EOF. Closing twice is harmless.
	Close() error
}

// IntoReader is a Link that can read a message into the caller's buffer
// instead of its own, saving a copy for a caller that keeps messages in
// pooled buffers (the daemon's link readers).
type IntoReader interface {
	Link
	// ReadMessageInto is ReadMessage into buf, which must hold
	// wire.MaxMessage bytes; it returns the message's length. buf is not
	// retained.
	ReadMessageInto(buf []byte) (int, error)
}

// CertifiedLink is a Link that shows the certificate its peer
// authenticated with, so that the daemon can close the links of members
// whose certificates are revoked later.
type CertifiedLink interface {
	Link
	// PeerCertificate returns the peer's leaf certificate.
	PeerCertificate() *x509.Certificate
}

// Dialer opens links to peers.
type Dialer interface {
	// Dial connects to addr and authenticates the peer. It fails with an
	// error wrapping [ErrWrongPeer] when the peer is a member but not want.
	Dial(ctx context.Context, want wire.MAC, addr netip.AddrPort) (Link, error)
}

// Listener accepts links from peers.
type Listener interface {
	// Accept returns the next authenticated incoming link. It returns the
	// context's error when ctx is done, and an error wrapping net.ErrClosed
	// after Close.
	Accept(ctx context.Context) (Link, error)
	// Addr returns the address the listener is bound to.
	Addr() netip.AddrPort
	// Close stops listening and unblocks pending Accept calls. Links already
	// accepted stay open.
	Close() error
}
