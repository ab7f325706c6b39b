// Package quictransport runs invpn links over QUIC (RFC 9000) on UDP
// (docs/protocol.md#quic-links), beside tlstransport's TLS over TCP.
//
// Identity is exactly TLS's: a QUIC handshake is a TLS 1.3 handshake, and
// its configurations come from [tlstransport.Config.ServerTLS] and
// [tlstransport.Config.ClientTLS], so the chain, the MAC in the Common
// Name and the revocation check are made in one place for both
// transports. Both ends offer the ALPN protocol transport.ProtocolName;
// QUIC requires ALPN, so a QUIC link is always Extended (original nodes
// speak only TLS over TCP).
//
// A link is one QUIC connection. Ethernet frame messages (types 0x80,
// 0x81, 0x82, 0x84) travel as unreliable QUIC datagrams (RFC 9221), cut
// into pieces when longer than one datagram; every other message travels
// on one bidirectional stream that the dialer opens, framed as on TLS. So
// a lost packet delays no frame behind it (no head-of-line blocking) and
// the users' own TCP sees loss as loss, while announcements, heartbeats
// and health messages arrive reliably and in order.
//
// The transport never detects a dead peer before the engine does: QUIC's
// keep-alive is off (the engine's heartbeats keep a link busy), and the
// idle timeout, Config.IdleTimeout, is a backstop well above the engine's
// detection time.
package quictransport

import (
	"errors"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/invpn/invpn/transport/tlstransport"
)

// Name is the transport's name in Link.Transport.
const Name = "quic"

// Defaults for the zero fields of [Config].
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 3 * time.Second
	DefaultIdleTimeout      = 15 * time.Second
)

// Config holds what dialing and listening need. The zero values of the
// optional fields select the defaults above.
type Config struct {
	// Identity is the member's certificate, key, CA pool and revocation
	// check (Cert, CAs, Revoked), as for tlstransport; its other fields,
	// which concern TCP, are not used. Admission is: the listener takes
	// strangers into handshakes by the same limits.
	Identity tlstransport.Config

	// DialTimeout bounds a whole dial, handshake included.
	DialTimeout time.Duration
	// HandshakeTimeout bounds an incoming handshake, from its first
	// packet to the opened stream.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that received nothing for this
	// long (QUIC's max_idle_timeout). It should be well above the
	// engine's detection time (node.Config.DeadAfter), which fails a
	// silent link first.
	IdleTimeout time.Duration
	// Known, if not nil, reports whether an address is a known peer's,
	// as tlstransport.Config.Known. Listener.SetKnown replaces it.
	Known func(netip.Addr) bool
	// HandshakeError, if not nil, is called from a listener goroutine
	// with each incoming connection that was refused, with a
	// *tlstransport.RefusedError that says why. It must not block.
	HandshakeError func(remote netip.AddrPort, err error)
}

// withDefaults checks c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	if len(c.Identity.Cert.Certificate) == 0 || c.Identity.Cert.PrivateKey == nil {
		return c, errors.New("quictransport: config has no certificate and key")
	}
	if c.Identity.CAs == nil {
		return c, errors.New("quictransport: config has no CA pool")
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	return c, nil
}

// quicConfig is the QUIC configuration of both ends.
func (c Config) quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout: c.HandshakeTimeout,
		MaxIdleTimeout:       c.IdleTimeout,
		// No QUIC keep-alive: the engine's heartbeats keep the link
		// busy, and its liveness check decides when a link is dead.
		KeepAlivePeriod: 0,
		// The dialer opens the one stream; nobody opens more.
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: -1,
		EnableDatagrams:       true,
	}
}
