package quictransport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"

	"github.com/quic-go/quic-go"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// Dialer opens QUIC links to peers. It is safe for concurrent use. Each
// dial has a UDP socket of its own, closed with the link.
type Dialer struct {
	cfg Config
}

var _ transport.Dialer = (*Dialer)(nil)

// NewDialer returns a dialer presenting cfg.Identity's certificate.
func NewDialer(cfg Config) (*Dialer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Dialer{cfg: cfg}, nil
}

// Dial connects to addr over UDP, runs the QUIC handshake (TLS 1.3, the
// identity checks of tlstransport.Config.ClientTLS), opens the link's
// stream and names it. It fails with an error wrapping
// transport.ErrWrongPeer, transport.ErrUntrusted or transport.ErrNoMAC
// when the peer is not the member want. Bounded by Config.DialTimeout.
//
// As under TLS 1.3, the client's handshake completes before the server
// has checked the client certificate: a server that refuses us shows up
// as an error or io.EOF on the first ReadMessage.
func (d *Dialer) Dial(ctx context.Context, want wire.MAC, addr netip.AddrPort) (transport.Link, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout)
	defer cancel()
	tc := d.cfg.Identity.ClientTLS(want)
	tc.MinVersion = tls.VersionTLS13
	conn, err := quic.DialAddr(ctx, addr.String(), tc, d.cfg.quicConfig())
	if err != nil {
		return nil, fmt.Errorf("quictransport: dial %s at %s: %w", want, addr, err)
	}
	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		closeConn(conn, "no stream")
		return nil, fmt.Errorf("quictransport: dial %s at %s: open stream: %w", want, addr, err)
	}
	if _, err := stream.Write([]byte{streamVersion}); err != nil {
		closeConn(conn, "no stream")
		return nil, fmt.Errorf("quictransport: dial %s at %s: open stream: %w", want, addr, err)
	}
	l, err := newLink(conn, stream, true)
	if err != nil {
		closeConn(conn, "bad certificate")
		return nil, fmt.Errorf("quictransport: dial %s at %s: %w", want, addr, err)
	}
	return l, nil
}
