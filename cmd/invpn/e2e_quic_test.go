package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/meshlab"
	"github.com/invpn/invpn/cmd/invpn/internal/netns"
)

// TestE2EQUIC runs the square of TestE2EMesh (1-2, 1-3, 2-4, 3-4; node 1
// reaches node 4 only through a relay) with every node on `transports =
// quic, tls` (docs/protocol.md#quic-links): every link must come up over
// QUIC; ARP, IPv6 neighbour discovery and unicast cross it; a silent cut
// (nftables drop of everything, UDP included) is found by the engine's
// heartbeats as on TCP, and a killed relay is routed around.
func TestE2EQUIC(t *testing.T) {
	e2eSkip(t)
	start := time.Now()
	quic := map[int]string{1: "quic, tls", 2: "quic, tls", 3: "quic, tls", 4: "quic, tls"}
	m := newMesh(t, "ivq", meshlab.Topology{
		Nodes:      4,
		Links:      []meshlab.Link{{A: 1, B: 2, Net: 12}, {A: 1, B: 3, Net: 13}, {A: 2, B: 4, Net: 24}, {A: 3, B: 4, Net: 34}},
		Dial:       map[int][]int{1: {2, 3}, 2: {1, 4}, 3: {1, 4}, 4: {2, 3}},
		MACBase:    e2eMACs,
		IPv4:       netip.MustParsePrefix("10.78.0.0/24"),
		IPv6:       netip.MustParsePrefix("fd00:78::/64"),
		Transports: quic,
	})
	ctx := context.Background()
	if err := m.WaitConverged(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	n1, n4 := m.Node(1), m.Node(4)
	waitPing := func(addr string, limit time.Duration) time.Duration {
		t.Helper()
		r, err := netns.PingUntil(ctx, n1.NS, addr, 50*time.Millisecond, limit)
		if err != nil || !r.OK {
			t.Fatalf("ping %s from node 1 failed for %v: %v", addr, limit, err)
		}
		return r.After
	}
	waitPing(n4.Addr4(), 10*time.Second)
	if out, _ := netns.Exec(ctx, n1.NS, "ip", "neigh", "show", n4.Addr4()); !strings.Contains(out, n4.MAC.String()) {
		t.Errorf("ARP entry for %s = %q, want lladdr %s", n4.Addr4(), out, n4.MAC)
	}
	waitPing(n4.Addr6(), 10*time.Second)
	if out, _ := netns.Exec(ctx, n1.NS, "ip", "-6", "neigh", "show", n4.Addr6()); !strings.Contains(out, n4.MAC.String()) {
		t.Errorf("ND entry for %s = %q, want lladdr %s", n4.Addr6(), out, n4.MAC)
	}
	// A 1400-byte ping does not fit one datagram: its frame goes in pieces.
	if out, err := netns.Exec(ctx, n1.NS, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-s", "1400", "-M", "do", n4.Addr4()); err != nil {
		t.Errorf("1400-byte pings: %v\n%s", err, out)
	}
	for _, n := range m.Nodes() {
		checkTransports(t, m, n, map[int]string{})
		t.Logf("node %d RSS: %s", n.I, rss(n.PID()))
	}
	checkHealthAndStatus(t, m)

	// A silent cut of the link node 1's route uses.
	hop, err := m.NextHop(ctx, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	relay := m.Node(hop)
	cut := time.Now()
	// Dropped in the relay's namespace: node 1's own sends succeed (a
	// drop in its own output hook would fail them with EPERM, which QUIC
	// reports at once), and only the heartbeats can find the cut.
	unblock, err := m.Block(hop, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n1.WaitStatus(ctx, 3*time.Second, 20*time.Millisecond, func(st *control.Status) bool {
		_, linked := meshlab.LinkTo(st, relay.MAC)
		r, routed := meshlab.RouteTo(st, n4.MAC)
		return !linked && routed && r.NextHop != relay.MAC
	}); err != nil {
		t.Fatalf("silent cut of the QUIC link 1-%d not detected within 3 s: %v", hop, err)
	}
	t.Logf("silent cut of the QUIC link 1-%d: link failed and route moved after %v", hop, time.Since(cut).Round(time.Millisecond))
	waitPing(n4.Addr4(), 3*time.Second)
	if err := unblock(); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitConverged(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// Kill the relay in use.
	if hop, err = m.NextHop(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	relay = m.Node(hop)
	killed := time.Now()
	if err := relay.Kill(); err != nil {
		t.Fatal(err)
	}
	failover := waitPing(n4.Addr4(), 5*time.Second)
	t.Logf("relay node %d killed: pings succeed again after %v (%v since the kill)", hop, failover.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	t.Logf("QUIC end-to-end test took %v", time.Since(start).Round(time.Millisecond))
}

// TestE2EMixedTransports: nodes 1 and 2 run `transports = quic, tls`,
// nodes 3 and 4 the default (tls only, as an older node or a site that
// drops UDP). Node 1 dials node 3 and node 2 dials node 4 over QUIC
// first, which nobody answers, and fall back to TLS; the link 1-2 is
// QUIC; frames cross from one transport to the other at every relay.
func TestE2EMixedTransports(t *testing.T) {
	e2eSkip(t)
	m := newMesh(t, "ivqm", meshlab.Topology{
		Nodes:      4,
		Links:      []meshlab.Link{{A: 1, B: 2, Net: 12}, {A: 1, B: 3, Net: 13}, {A: 2, B: 4, Net: 24}, {A: 3, B: 4, Net: 34}},
		Dial:       map[int][]int{1: {3}, 2: {1, 4}, 4: {3}},
		MACBase:    e2eMACs,
		IPv4:       netip.MustParsePrefix("10.78.0.0/24"),
		Transports: map[int]string{1: "quic, tls", 2: "quic, tls"},
	})
	ctx := context.Background()
	if err := m.WaitConverged(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	want := map[int]map[int]string{
		1: {2: "quic", 3: "tls"}, 2: {1: "quic", 4: "tls"}, 3: {1: "tls", 4: "tls"}, 4: {2: "tls", 3: "tls"},
	}
	for _, n := range m.Nodes() {
		checkTransports(t, m, n, want[n.I])
	}
	for _, p := range [][2]int{{1, 4}, {2, 3}, {3, 2}} {
		a, b := m.Node(p[0]), m.Node(p[1])
		if r, err := netns.PingUntil(ctx, a.NS, b.Addr4(), 50*time.Millisecond, 10*time.Second); err != nil || !r.OK {
			t.Errorf("node %d cannot reach node %d across transports: %v", a.I, b.I, err)
		}
	}
	waitLog(t, m.Node(1), 5*time.Second, `msg="dial fell back" peer=`+m.Node(3).MAC.String())
}

// checkTransports checks that every link of n is up over the transport
// want names for its peer ("quic" when want has no entry).
func checkTransports(t *testing.T, m *meshlab.Mesh, n *meshlab.Node, want map[int]string) {
	t.Helper()
	st, err := n.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range st.Links {
		j := int(l.Peer[5])
		w, ok := want[j]
		if !ok {
			w = "quic"
		}
		got = append(got, fmt.Sprintf("%d:%s", j, l.Transport))
		if l.Transport != w {
			t.Errorf("node %d: link to node %d over %q, want %q", n.I, j, l.Transport, w)
		}
	}
	t.Logf("node %d links: %s", n.I, strings.Join(got, " "))
}
