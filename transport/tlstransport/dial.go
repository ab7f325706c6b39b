package tlstransport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// Dialer opens TLS links to peers. It is safe for concurrent use.
type Dialer struct {
	cfg Config
}

var _ transport.Dialer = (*Dialer)(nil)

// NewDialer returns a dialer presenting cfg.Cert and trusting cfg.CAs.
func NewDialer(cfg Config) (*Dialer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Dialer{cfg: cfg}, nil
}

// Dial connects to addr (IPv4-mapped addresses are dialed as IPv4),
// verifies the peer's chain against the CA pool and checks that its
// certificate names want; otherwise it fails with an error wrapping
// transport.ErrWrongPeer, transport.ErrUntrusted or transport.ErrNoMAC.
// Connect and handshake together are bounded by Config.DialTimeout.
//
// Under TLS 1.3 the client's handshake completes before the server has
// checked the client certificate, so a returned link is not proof of
// acceptance: a server that refuses us shows up as an error or io.EOF on
// the first ReadMessage.
func (d *Dialer) Dial(ctx context.Context, want wire.MAC, addr netip.AddrPort) (transport.Link, error) {
	addr = unmap(addr)
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout)
	defer cancel()
	nd := net.Dialer{KeepAlive: d.cfg.keepAlivePeriod(), KeepAliveConfig: d.cfg.KeepAlive}
	c, err := nd.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("tlstransport: dial %s at %s: %w", want, addr, err)
	}
	if err := tuneTCP(c, d.cfg.UserTimeout); err != nil {
		c.Close()
		return nil, fmt.Errorf("tlstransport: dial %s at %s: %w", want, addr, err)
	}
	tc := tls.Client(withRawIO(c), d.cfg.clientTLS(want))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("tlstransport: dial %s at %s: handshake: %w", want, addr, err)
	}
	l, err := newLink(tc, c, true)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("tlstransport: dial %s at %s: %w", want, addr, err)
	}
	return l, nil
}
