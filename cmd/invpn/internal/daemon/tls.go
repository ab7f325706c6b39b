package daemon

import (
	"fmt"
	"log/slog"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
)

// TLSTransport returns a transport of TLS links over TCP: a dialer
// presenting the identity in tc and, unless listen is empty, a listener at
// each of the listen addresses (host:port), all opened by one call of
// Transport.Listen. Refused incoming connections are logged to log, at
// most one line per source per 10 s (the daemon counts every one); the
// daemon tells the listeners which addresses are known peers'.
func TLSTransport(tc tlstransport.Config, listen []string, log *slog.Logger) (Transport, error) {
	tc.HandshakeError = newRefusalLog(log).refused
	dialer, err := tlstransport.NewDialer(tc)
	if err != nil {
		return Transport{}, err
	}
	tr := Transport{Dialer: dialer}
	if len(listen) == 0 {
		return tr, nil
	}
	addrs := append([]string(nil), listen...)
	tr.ListenAddrs = addrs
	tr.Rekey = func(ln transport.Listener) error {
		l, ok := ln.(*tlstransport.Listener)
		if !ok {
			return fmt.Errorf("daemon: listener on %s is not a TLS listener", ln.Addr())
		}
		return l.SetIdentity(tc)
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
