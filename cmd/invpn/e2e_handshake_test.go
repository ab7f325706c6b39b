package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/linkemu"
	"github.com/invpn/invpn/cmd/invpn/internal/meshlab"
)

// handshakeDelay is the one-way delay of TestE2EHandshakeTimes's link.
const handshakeDelay = 200 * time.Millisecond

// TestE2EHandshakeTimes holds the simulator's handshake model
// (sim/network.go: serverFlight, accepted; scenarios/README.md) to real
// daemons: over a link with a one-way delay L, the acceptor's end of a
// dialled link comes up one L after the dialer's, over TLS and over QUIC
// (the dialer's handshake ends when the acceptor's flight is back; the
// acceptor's when the dialer's last flight arrives). The simulator had
// both ends up at the same instant.
func TestE2EHandshakeTimes(t *testing.T) {
	e2eSkip(t)
	for _, transport := range []string{"tls", "quic"} {
		t.Run(transport, func(t *testing.T) {
			m := newMesh(t, "ivhs", meshlab.Topology{
				Nodes:      2,
				Links:      []meshlab.Link{{A: 1, B: 2, Net: 12, Emulated: &linkemu.Params{Delay: handshakeDelay}}},
				Dial:       map[int][]int{1: {2}},
				MACBase:    e2eMACs,
				IPv4:       netip.MustParsePrefix("10.79.0.0/24"),
				IPv6:       netip.MustParsePrefix("fd00:79::/64"),
				Transports: map[int]string{1: transport, 2: transport},
			})
			ctx := context.Background()
			if err := m.WaitConverged(ctx, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			end := func(i int) control.LinkStatus {
				t.Helper()
				st, err := m.Node(i).Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range st.Links {
					if !l.Directory {
						return l
					}
				}
				t.Fatalf("node %d has no link: %+v", i, st.Links)
				return control.LinkStatus{}
			}
			dialer, acceptor := end(1), end(2)
			if !dialer.Dialed || acceptor.Dialed || dialer.Transport != transport {
				t.Fatalf("node 1's link dialled %v over %s, node 2's dialled %v: want node 1's dialled, over %s",
					dialer.Dialed, dialer.Transport, acceptor.Dialed, transport)
			}
			gap := acceptor.Up.Sub(dialer.Up)
			t.Logf("%s: acceptor up %v after the dialer (one-way delay %v)", transport, gap, handshakeDelay)
			// One delay, give or take the machine's scheduling; both ends
			// at once (the old model) or two delays fail.
			if gap < handshakeDelay*7/10 || gap > handshakeDelay*15/10 {
				t.Errorf("%s: acceptor up %v after the dialer, want about %v", transport, gap, handshakeDelay)
			}
		})
	}
}
