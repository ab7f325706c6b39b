// Package tlstransport runs invpn links over TLS on TCP
// (docs/protocol.md#identity-and-links).
//
// Both ends authenticate with certificates of one group CA (or a bundle of
// CAs); a member's identity is the MAC in its certificate's Common Name.
// Go's standard verification checks host names, never the Common Name, so
// each side verifies the chain and the identity itself in
// tls.Config.VerifyConnection, which runs on resumed sessions too.
//
// To share a mesh with an original node this package accepts TLS 1.2 as
// well as 1.3 (MinVersion is TLS 1.2; Go prefers 1.3 whenever the peer
// offers it, so two nodes of this project always speak 1.3). The server
// asks for a client certificate without naming a CA, and the client sends
// no SNI, as the original does. Each end offers the ALPN protocol
// transport.ProtocolName; a link is Extended only when it was selected.
//
// The transport notices a dead peer within seconds (TCP keep-alive and, on
// Linux, TCP_USER_TIMEOUT) but never redials: the node decides dials.
package tlstransport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// Defaults for the zero fields of [Config].
const (
	DefaultDialTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 3 * time.Second
	DefaultHelloTimeout     = time.Second
	DefaultUserTimeout      = 15 * time.Second
)

// DefaultKeepAlive is the TCP keep-alive used when Config.KeepAlive is the
// zero value: an idle peer is probed after 10 s, every 5 s, and dropped
// after 3 unanswered probes.
var DefaultKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}

// Config holds what both dialing and listening need. The zero values of the
// optional fields select the defaults above.
type Config struct {
	// Cert is this member's certificate and key; its Common Name is the
	// member's MAC. The key may be Ed25519, ECDSA or RSA.
	Cert tls.Certificate
	// CAs holds the group's CA certificates; peers must chain to one of them.
	CAs *x509.CertPool

	// DialTimeout bounds a whole dial: TCP connect and TLS handshake.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake of an incoming connection,
	// from accept to the verified certificate, so that a silent or slow
	// client holds its handshake slot for seconds only.
	HandshakeTimeout time.Duration
	// HelloTimeout bounds the wait, from accept, for the first TLS record
	// of an incoming connection (the ClientHello); a connection that sends
	// nothing is closed after it (capped by HandshakeTimeout).
	HelloTimeout time.Duration
	// Admission limits the incoming connections in the handshake, per
	// source and in total; its zero fields select its defaults.
	Admission Admission
	// Revoked, if not nil, is asked about every peer's leaf certificate
	// once its chain verified, in both directions and on resumed
	// sessions; an error refuses the peer (wrapped with
	// transport.ErrRevoked). It is called from handshake goroutines, so it
	// must be safe for concurrent use; the daemon's revocation store
	// answers it, and a newer list takes effect at the next handshake.
	Revoked func(*x509.Certificate) error
	// Known, if not nil, reports whether an address is a known peer's
	// (the daemon's peer cache, seeds and dials): a known address gets the
	// slots of Admission reserved for known peers, so that members can
	// link while strangers flood. It is called from the accept loop for
	// every incoming connection, so it must be fast and safe for
	// concurrent use. Listener.SetKnown replaces it.
	Known func(netip.Addr) bool
	// KeepAlive configures TCP keep-alive. The zero value means
	// DefaultKeepAlive; any other value is used as is (Enable false with a
	// negative Idle disables keep-alive).
	KeepAlive net.KeepAliveConfig
	// UserTimeout is the TCP_USER_TIMEOUT (Linux only): how long written
	// data may stay unacknowledged before the connection is dropped.
	// Negative leaves the system default.
	UserTimeout time.Duration

	// HandshakeError, if not nil, is called from a listener goroutine with
	// each incoming connection that was refused admission, failed the
	// handshake or the certificate checks, with a *RefusedError that says
	// why, so the daemon can count and log refused peers. It also gets
	// errors of accepting TCP connections, with a zero address. It is
	// called once per connection, from the accept loop too, so it must not
	// block: a flood calls it thousands of times a second.
	HandshakeError func(remote netip.AddrPort, err error)
}

// withDefaults checks c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	if len(c.Cert.Certificate) == 0 || c.Cert.PrivateKey == nil {
		return c, errors.New("tlstransport: config has no certificate and key")
	}
	if c.CAs == nil {
		return c, errors.New("tlstransport: config has no CA pool")
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.KeepAlive == (net.KeepAliveConfig{}) {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.UserTimeout == 0 {
		c.UserTimeout = DefaultUserTimeout
	}
	return c, nil
}

// keepAlivePeriod is the legacy net.Dialer/ListenConfig KeepAlive field
// matching c.KeepAlive: negative disables keep-alive when Enable is false.
func (c Config) keepAlivePeriod() time.Duration {
	if c.KeepAlive.Enable {
		return 0
	}
	return -1
}

// baseTLS returns the settings common to both ends.
func (c Config) baseTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.Cert},
		// TLS 1.2 is accepted for original nodes; 1.3 is preferred.
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{transport.ProtocolName},
	}
}

// ServerTLS returns the TLS configuration of an accepting end with c's
// identity: any client certificate is requested, then its chain is
// verified against c.CAs, its Common Name must be a MAC and c.Revoked is
// asked about it. Every transport that authenticates members (this one,
// quictransport) checks them here, so the identity rules live in one
// place.
func (c Config) ServerTLS() *tls.Config { return c.serverTLS() }

// ClientTLS returns the TLS configuration of a dial to want with c's
// identity: the chain check of ServerTLS, and the peer's MAC must be want
// (else the handshake fails with an error wrapping transport.ErrWrongPeer).
func (c Config) ClientTLS(want wire.MAC) *tls.Config { return c.clientTLS(want) }

// serverTLS is the configuration of the accepting end: any client
// certificate is requested, then verified against the CA pool.
func (c Config) serverTLS() *tls.Config {
	t := c.baseTLS()
	t.ClientAuth = tls.RequireAnyClientCert
	t.VerifyConnection = func(cs tls.ConnectionState) error {
		_, err := c.verifyPeer(cs, x509.ExtKeyUsageClientAuth)
		return err
	}
	return t
}

// clientTLS is the configuration of a dial to want: Go's host name check is
// replaced by the chain check and a check of the MAC in the Common Name.
func (c Config) clientTLS(want wire.MAC) *tls.Config {
	t := c.baseTLS()
	t.InsecureSkipVerify = true // verified in VerifyConnection below
	t.VerifyConnection = func(cs tls.ConnectionState) error {
		got, err := c.verifyPeer(cs, x509.ExtKeyUsageServerAuth)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("certificate names %s: %w", got, transport.ErrWrongPeer)
		}
		return nil
	}
	return t
}

// verifyPeer checks the peer's chain against the CA pool for usage, asks
// Revoked about the leaf, and returns the MAC in its Common Name. A
// certificate without extended key usages is valid for any use, as with
// OpenSSL, so certificates made by the original's openssl recipe pass.
func (c Config) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage) (wire.MAC, error) {
	mac, leaf, err := verifyChain(cs, c.CAs, usage)
	if err != nil {
		return mac, err
	}
	if c.Revoked != nil {
		if err := c.Revoked(leaf); err != nil {
			return wire.MAC{}, fmt.Errorf("certificate %q: %w: %w", leaf.Subject.CommonName, transport.ErrRevoked, err)
		}
	}
	return mac, nil
}

// verifyChain checks the peer's chain against roots for usage and returns
// the MAC in its Common Name and the leaf.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool, usage x509.ExtKeyUsage) (wire.MAC, *x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return wire.MAC{}, nil, fmt.Errorf("peer sent no certificate: %w", transport.ErrUntrusted)
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}
	if _, err := leaf.Verify(opts); err != nil {
		return wire.MAC{}, nil, fmt.Errorf("certificate %q: %w: %w", leaf.Subject.CommonName, transport.ErrUntrusted, err)
	}
	mac, err := MACFromCert(leaf)
	return mac, leaf, err
}
