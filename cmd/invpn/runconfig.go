package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/daemon"
	"github.com/invpn/invpn/cmd/invpn/internal/membership"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/cmd/invpn/internal/revocation"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// This file translates the configuration file (cmd/invpn/internal/config)
// into what the daemon takes: a node.Config, paths and a transport. The
// daemon package knows nothing of the file.

// daemonOptions returns the daemon's options for cfg and the node's
// identity mac: the node's configuration, the peer cache, the control
// socket and the metrics endpoint. The caller adds the transport, the TAP
// device, the logger, the signals and the reload.
func daemonOptions(cfg *config.Config, mac wire.MAC) daemon.Options {
	return daemon.Options{
		Node:          nodeConfig(cfg, mac),
		CacheFile:     cfg.Network.Cache,
		Version:       version,
		ControlSocket: cfg.Control.Socket,
		MetricsListen: cfg.Metrics.Listen,
		Map:           cfg.Metrics.Map,
		MapToken:      cfg.Metrics.MapToken,
	}
}

// nodeConfig returns the node configuration for cfg and identity mac: the
// port, flags, timers, link counts and `init` seeds of the file, node
// defaults for the rest. The daemon adds the peer cache, the id floor and
// the randomness source.
func nodeConfig(cfg *config.Config, mac wire.MAC) node.Config {
	nc := node.DefaultConfig()
	nc.MAC, nc.Port = mac, cfg.Network.Port
	nc.NoIncoming, nc.NoRelay = cfg.Network.NoIncoming, cfg.Network.NoRelay
	nc.AcceptUnsigned, nc.RefuseOriginalRelays = cfg.Network.AcceptUnsigned, cfg.Network.RefuseOriginalRelays
	nc.AnnounceInterval, nc.ConnectInterval = cfg.Timers.Announce, cfg.Timers.Connect
	nc.RouteExpiry, nc.LinkTimeout = cfg.Timers.RouteExpiry, cfg.Timers.LinkTimeout
	nc.HeartbeatInterval, nc.DeadAfter = cfg.Timers.Heartbeat, cfg.Timers.DeadAfter
	nc.RefreshInterval, nc.BatchDelay = cfg.Timers.Refresh, cfg.Timers.BatchDelay
	nc.ChangeDelay, nc.AskWindow = cfg.Timers.ChangeDelay, cfg.Timers.AskWindow
	// The trigger gap and the longest redial backoff follow the intervals
	// they are a part of; the file has no keys for them.
	nc.TriggerGap, nc.DialBackoffMax = nc.AnnounceInterval/10, nc.ConnectInterval
	nc.MinLinks, nc.MaxLinks = cfg.Network.MinLinks, cfg.Network.MaxLinks
	nc.Seeds, nc.Bootstrap = seeds(cfg.Network.Init), seeds(cfg.Network.Bootstrap)
	return nc
}

// seeds returns the peers of a [network] init or bootstrap list, in the
// file's order.
func seeds(list []config.Seed) []node.Peer {
	var out []node.Peer
	for _, s := range list {
		out = append(out, node.Peer{MAC: s.MAC, Addr: s.Addr})
	}
	return out
}

// listenAddrs returns the addresses (host:port) the daemon listens on:
// none with [network] no_incoming, else the port at each [network] listen
// address, or at every address when none is given.
func listenAddrs(cfg *config.Config) []string {
	if cfg.Network.NoIncoming {
		return nil
	}
	var addrs []string
	for _, a := range cfg.Network.Listen {
		addrs = append(addrs, netip.AddrPortFrom(a, cfg.Network.Port).String())
	}
	if len(addrs) == 0 {
		addrs = []string{fmt.Sprintf(":%d", cfg.Network.Port)}
	}
	return addrs
}

// identity is what the [ssl] files of a configuration hold.
type identity struct {
	mac wire.MAC
	tls tlstransport.Config // certificate, key and CA pool; no Revoked yet
	cas []*x509.Certificate
	crl *revocation.List // the configured revocation list; nil for none
}

// loadIdentity reads the [ssl] files of cfg: the node's certificate and
// key, the CAs and the revocation list, which must be signed by one of
// them. The node's MAC is its certificate's Common Name.
func loadIdentity(cfg *config.Config) (identity, error) {
	cert, err := pki.LoadKeyPair(cfg.SSL.Cert, cfg.SSL.Key)
	if err != nil {
		return identity{}, fmt.Errorf("%s: [ssl] cert, key: %w", cfg.File, err)
	}
	mac, err := tlstransport.MACFromCert(cert.Leaf)
	if err != nil {
		return identity{}, fmt.Errorf("%s: [ssl] cert %s: %w", cfg.File, cfg.SSL.Cert, err)
	}
	pool, cas, err := pki.LoadCACerts(cfg.SSL.CA)
	if err != nil {
		return identity{}, fmt.Errorf("%s: [ssl] ca: %w", cfg.File, err)
	}
	id := identity{mac: mac, tls: tlstransport.Config{Cert: cert, CAs: pool}, cas: cas}
	if cfg.SSL.CRL != "" {
		data, err := os.ReadFile(cfg.SSL.CRL)
		if err != nil {
			return identity{}, fmt.Errorf("%s: [ssl] crl: %w", cfg.File, err)
		}
		if id.crl, err = revocation.Parse(data, cas); err != nil {
			return identity{}, fmt.Errorf("%s: [ssl] crl %s: %w", cfg.File, cfg.SSL.CRL, err)
		}
	}
	return id, nil
}

// tlsOptions returns the daemon's options for cfg, read from path, with
// its TLS transport, revocation store and reload, logging to log: all but
// the TAP device, the signals and the service manager.
func tlsOptions(cfg *config.Config, path string, log *slog.Logger) (daemon.Options, error) {
	id, err := loadIdentity(cfg)
	if err != nil {
		return daemon.Options{}, err
	}
	revoked := revocation.NewStore(id.cas)
	id.tls.Revoked = revoked.Check
	tr, err := tlsTransport(cfg, id.tls, log)
	if err != nil {
		return daemon.Options{}, err
	}
	book, err := membership.New(id.tls.Cert, id.tls.CAs, revoked.Check)
	if err != nil {
		return daemon.Options{}, fmt.Errorf("%s: [ssl] cert: %w", cfg.File, err)
	}
	opts := daemonOptions(cfg, id.mac)
	opts.Node.Auth = book
	opts.Transport, opts.Logger = tr, log
	opts.Revocations, opts.CAs, opts.Revocation = revoked, id.cas, id.crl
	opts.Certificate = id.tls.Cert.Leaf
	opts.Reload = tlsReload(path, id.mac, revoked, book, log)
	return opts, nil
}

// tlsTransport returns the transports of cfg ([network] transports) with
// the TLS identity tc.
func tlsTransport(cfg *config.Config, tc tlstransport.Config, log *slog.Logger) (daemon.Transport, error) {
	return daemon.NetTransport(tc, listenAddrs(cfg), cfg.Network.Transports, log)
}

// tlsReload returns the daemon's Options.Reload: it reads the
// configuration file path again, with the [ssl] files, `init` seeds and
// bootstrap peers it names. It refuses a certificate for another MAC than mac: the TAP device
// keeps its address. Other changes need a restart.
func tlsReload(path string, mac wire.MAC, revoked *revocation.Store, book *membership.Book, log *slog.Logger) func() (*daemon.Reloaded, error) {
	return func() (*daemon.Reloaded, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		id, err := loadIdentity(cfg)
		if err != nil {
			return nil, err
		}
		if id.mac != mac {
			return nil, fmt.Errorf("%s: [ssl] cert %s names %s, but this daemon runs as %s (restart to change identity)", path, cfg.SSL.Cert, id.mac, mac)
		}
		id.tls.Revoked = revoked.Check
		tr, err := tlsTransport(cfg, id.tls, log)
		if err != nil {
			return nil, err
		}
		if book != nil {
			// Reload runs on the daemon's loop, the only user of book.
			if err := book.SetIdentity(id.tls.Cert, id.tls.CAs); err != nil {
				return nil, fmt.Errorf("%s: [ssl] cert: %w", path, err)
			}
		}
		return &daemon.Reloaded{Seeds: seeds(cfg.Network.Init), Bootstrap: seeds(cfg.Network.Bootstrap), Transport: tr, File: cfg.File,
			CAs: id.cas, Revocation: id.crl, Certificate: id.tls.Cert.Leaf}, nil
	}
}
