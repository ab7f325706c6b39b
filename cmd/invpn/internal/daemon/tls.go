package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/fallback"
	"github.com/invpn/invpn/transport/quictransport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// The names of the transports NetTransport runs ([network] transports).
const (
	TransportTLS  = tlstransport.Name
	TransportQUIC = quictransport.Name
)

// quicBudget is how long a dial over QUIC may take before a dial that has
// TLS to fall back on tries it: a handshake over a path of a few hundred
// milliseconds, with a lost first packet retransmitted.
const quicBudget = 2 * time.Second

// TLSTransport returns a transport of TLS links over TCP: a dialer
// presenting the identity in tc and, unless listen is empty, a listener at
// each of the listen addresses (host:port), all opened by one call of
// Transport.Listen. Refused incoming connections are logged to log, at
// most one line per source per 10 s (the daemon counts every one); the
// daemon tells the listeners which addresses are known peers'.
func TLSTransport(tc tlstransport.Config, listen []string, log *slog.Logger) (Transport, error) {
	return NetTransport(tc, listen, []string{TransportTLS}, log)
}

// NetTransport returns a transport over the named transports ("tls",
// "quic"), in the order a dial tries them (a QUIC dial that has TLS after
// it gets quicBudget before TLS is tried; see package fallback): a
// listener for each transport at each listen address (TCP and UDP on the
// same port), all with the identity of tc. Refused incoming connections
// of every transport are logged to log as TLSTransport does.
func NetTransport(tc tlstransport.Config, listen []string, names []string, log *slog.Logger) (Transport, error) {
	tc.HandshakeError = newRefusalLog(log).refused
	qc := quictransport.Config{Identity: tc, HandshakeError: tc.HandshakeError}
	var tries []fallback.Try
	for i, name := range names {
		var (
			d   transport.Dialer
			err error
		)
		switch name {
		case TransportTLS:
			d, err = tlstransport.NewDialer(tc)
		case TransportQUIC:
			d, err = quictransport.NewDialer(qc)
		default:
			return Transport{}, fmt.Errorf("daemon: unknown transport %q (want tls or quic)", name)
		}
		if err != nil {
			return Transport{}, err
		}
		try := fallback.Try{Name: name, Dialer: d}
		if name == TransportQUIC && i < len(names)-1 {
			try.Budget = quicBudget
		}
		tries = append(tries, try)
	}
	if len(tries) == 0 {
		return Transport{}, fmt.Errorf("daemon: no transport (want tls, quic or both)")
	}
	tr := Transport{Dialer: tries[0].Dialer}
	if len(tries) > 1 {
		d, err := fallback.New(tries, 0)
		if err != nil {
			return Transport{}, err
		}
		d.OnFallback = func(want wire.MAC, addr netip.AddrPort, failed, next string, err error) {
			log.Info("dial fell back", "peer", want, "addr", addr, "failed", failed, "next", next, "err", err)
		}
		tr.Dialer = d
	}
	if len(listen) == 0 {
		return tr, nil
	}
	addrs := append([]string(nil), listen...)
	for _, a := range addrs {
		for _, name := range names {
			if name == TransportQUIC {
				tr.ListenAddrs = append(tr.ListenAddrs, "quic:"+a)
			} else {
				tr.ListenAddrs = append(tr.ListenAddrs, a)
			}
		}
	}
	tr.Rekey = func(ln transport.Listener) error {
		switch l := ln.(type) {
		case *tlstransport.Listener:
			return l.SetIdentity(tc)
		case *quictransport.Listener:
			return l.SetIdentity(qc)
		}
		return fmt.Errorf("daemon: listener on %s is not a TLS or QUIC listener", ln.Addr())
	}
	tr.Listen = func() ([]transport.Listener, error) {
		var lns []transport.Listener
		fail := func(err error) ([]transport.Listener, error) {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		for _, a := range addrs {
			for _, name := range names {
				var (
					ln  transport.Listener
					err error
				)
				if name == TransportQUIC {
					ln, err = quictransport.Listen(qc, a)
				} else {
					ln, err = tlstransport.Listen(tc, a)
				}
				if err != nil {
					return fail(err)
				}
				lns = append(lns, ln)
			}
		}
		return lns, nil
	}
	return tr, nil
}
