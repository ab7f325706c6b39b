package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// LoadIdentity reads the [ssl] files of cfg: the node's certificate and
// key, and the CA pool. The node's MAC is its certificate's Common Name.
func LoadIdentity(cfg *config.Config) (wire.MAC, tlstransport.Config, error) {
	cert, err := pki.LoadKeyPair(cfg.SSL.Cert, cfg.SSL.Key)
	if err != nil {
		return wire.MAC{}, tlstransport.Config{}, fmt.Errorf("%s: [ssl] cert, key: %w", cfg.File, err)
	}
	mac, err := tlstransport.MACFromCert(cert.Leaf)
	if err != nil {
		return wire.MAC{}, tlstransport.Config{}, fmt.Errorf("%s: [ssl] cert %s: %w", cfg.File, cfg.SSL.Cert, err)
	}
	pool, err := pki.LoadCertPool(cfg.SSL.CA)
	if err != nil {
		return wire.MAC{}, tlstransport.Config{}, fmt.Errorf("%s: [ssl] ca: %w", cfg.File, err)
	}
	return mac, tlstransport.Config{Cert: cert, CAs: pool}, nil
}

// TLSTransport returns the TLS transport of cfg: a dialer presenting the
// [ssl] identity and, unless [network] no_incoming, listeners on the port
// at each [network] listen address (every address when none is given).
// Refused incoming handshakes are logged to log.
func TLSTransport(cfg *config.Config, tc tlstransport.Config, log *slog.Logger) (Transport, error) {
	tc.HandshakeError = func(remote netip.AddrPort, err error) {
		log.Info("incoming link refused", "addr", remote, "err", err)
	}
	dialer, err := tlstransport.NewDialer(tc)
	if err != nil {
		return Transport{}, err
	}
	tr := Transport{Dialer: dialer}
	if cfg.Network.NoIncoming {
		return tr, nil
	}
	var addrs []string
	for _, a := range cfg.Network.Listen {
		addrs = append(addrs, netip.AddrPortFrom(a, cfg.Network.Port).String())
	}
	if len(addrs) == 0 {
		addrs = []string{fmt.Sprintf(":%d", cfg.Network.Port)}
	}
	tr.Listen = func() ([]transport.Listener, error) {
		var lns []transport.Listener
		for _, a := range addrs {
			ln, err := tlstransport.Listen(tc, a)
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				return nil, err
			}
			lns = append(lns, ln)
		}
		return lns, nil
	}
	return tr, nil
}

// TLSReload returns an Options.Reload that reads the configuration file
// path again, with the [ssl] files and `init` seeds it names. It refuses a
// certificate for another MAC than mac: the TAP device keeps its address.
func TLSReload(path string, mac wire.MAC, log *slog.Logger) func() (*Reloaded, error) {
	return func() (*Reloaded, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		got, tc, err := LoadIdentity(cfg)
		if err != nil {
			return nil, err
		}
		if got != mac {
			return nil, fmt.Errorf("%s: [ssl] cert %s names %s, but this daemon runs as %s (restart to change identity)", path, cfg.SSL.Cert, got, mac)
		}
		tr, err := TLSTransport(cfg, tc, log)
		if err != nil {
			return nil, err
		}
		return &Reloaded{Config: cfg, Transport: tr}, nil
	}
}
