package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/daemon"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/cmd/invpn/internal/revocation"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// linkedTo reports whether s has a link to peer.
func linkedTo(s daemon.Snapshot, peer wire.MAC) bool {
	return slices.ContainsFunc(s.Links, func(l daemon.LinkStatus) bool { return l.Peer == peer })
}

// waitFor polls cond every few milliseconds (the daemon has no change
// notification) and fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// A triangle of daemons over real TLS on the loopback. `invpn cert revoke`
// writes a list revoking node 3; node 1 is given it by its configuration
// and SIGHUP. Node 1 closes its link to node 3 and passes the list on;
// node 2, which hears of it only from node 1, checks it, saves it and
// closes its link to node 3 too. Node 3's redials are refused from then
// on, with its cached addresses, and a list from another CA is refused.
func TestRevocationSpreadsAndLocksOut(t *testing.T) {
	dir, caDir := groupDir(t)
	macs := []wire.MAC{{0x02, 0x50, 0x56, 0, 0, 1}, {0x02, 0x50, 0x56, 0, 0, 2}, {0x02, 0x50, 0x56, 0, 0, 3}}
	ports := []uint16{freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)}
	seed := func(i int) string { return fmt.Sprintf("%s@127.0.0.1:%d", macs[i], ports[i]) }
	paths := []string{
		writeTLSConfig(t, caDir, filepath.Join(dir, "n1"), macs[0], ports[0], ""),
		writeTLSConfig(t, caDir, filepath.Join(dir, "n2"), macs[1], ports[1], seed(0)),
		writeTLSConfig(t, caDir, filepath.Join(dir, "n3"), macs[2], ports[2], seed(0)+","+seed(1)),
	}
	var ns []*runningDaemon
	for _, p := range paths {
		ns = append(ns, startFromFile(t, p))
	}
	waitFor(t, 10*time.Second, "a triangle", func() bool {
		return len(ns[0].d.Status().Links) == 2 && len(ns[1].d.Status().Links) == 2 && len(ns[2].d.Status().Links) == 2
	})

	rev, err := pki.Revoke(caDir, []string{macs[2].String()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(paths[0])
	text = []byte(strings.Replace(string(text), "ca = ca.crt\n", "ca = ca.crt\ncrl = "+rev.CRLPath+"\n", 1))
	if err := os.WriteFile(paths[0], text, 0o600); err != nil {
		t.Fatal(err)
	}
	ns[0].sig <- syscall.SIGHUP
	took := waitFor(t, 10*time.Second, "every link to the revoked member closed", func() bool {
		return !linkedTo(ns[0].d.Status(), macs[2]) && !linkedTo(ns[1].d.Status(), macs[2])
	})
	t.Logf("from SIGHUP to the last link to the revoked member closed: %v", took)
	if s := ns[1].d.Status(); s.Revocation.Number != 1 || s.Revocation.Revoked != 1 || !linkedTo(s, macs[0]) {
		t.Errorf("node 2: list %+v, links %+v; want list 1 revoking 1, and its link to node 1 kept", s.Revocation, s.Links)
	}
	saved, err := revocation.Load(filepath.Join(dir, "n2", "cache.json.crl"), caCerts(t, caDir))
	if err != nil || saved == nil || saved.Number != 1 {
		t.Errorf("node 2 saved list: %v, %v", saved, err)
	}
	if logs := ns[1].logs.String(); !strings.Contains(logs, "closing the link of a revoked member") {
		t.Errorf("node 2 did not log the closed link:\n%s", logs)
	}

	// Node 3 keeps redialling from its cache; both refuse it in the
	// handshake. A direct dial with its identity sees the refusal. (Under
	// TLS 1.3 the client finishes before the server's verdict, so node 3
	// sees each refused link come up and end at once.)
	d3 := dialerFromFile(t, paths[2])
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l, err := d3.Dial(ctx, macs[i], netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[i]))
		cancel()
		if err == nil {
			if _, err = l.ReadMessage(); err == nil {
				t.Errorf("node %d took a link from the revoked member", i+1)
			}
			l.Close()
		}
	}
	for i := range 2 {
		if s := ns[i].d.Status(); linkedTo(s, macs[2]) {
			t.Errorf("node %d linked to the revoked member again", i+1)
		}
	}

	// A list of another CA, given by configuration, is refused at reload
	// with the reason, and the list in force stays.
	other := filepath.Join(dir, "other")
	if err := pki.InitCA(other); err != nil {
		t.Fatal(err)
	}
	if err := pki.IssueNode(other, macs[1], filepath.Join(dir, "o2")); err != nil {
		t.Fatal(err)
	}
	foreign, err := pki.Revoke(other, []string{macs[1].String()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.Replace(string(text), rev.CRLPath, foreign.CRLPath, 1))
	os.WriteFile(paths[0], text, 0o600)
	ns[0].sig <- syscall.SIGHUP
	waitFor(t, 5*time.Second, "the foreign list refused", func() bool {
		return strings.Contains(ns[0].logs.String(), "not signed by a CA of the group")
	})
	if s := ns[0].d.Status(); s.Revocation.Number != 1 || !linkedTo(s, macs[1]) {
		t.Errorf("after a foreign list: list %+v, links %+v", s.Revocation, s.Links)
	}
}

// caCerts returns the certificate of the CA in caDir.
func caCerts(t *testing.T, caDir string) []*x509.Certificate {
	t.Helper()
	_, cas, err := pki.LoadCACerts(filepath.Join(caDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	return cas
}

// `invpn cert renew` and SIGHUP: the daemon takes the new certificate for
// new handshakes without closing its listener or its links, and status
// shows the new serial.
func TestRenewedCertificateOnReload(t *testing.T) {
	dir, caDir := groupDir(t)
	macs := []wire.MAC{{0x02, 0x50, 0x56, 0, 0, 1}, {0x02, 0x50, 0x56, 0, 0, 2}}
	ports := []uint16{freeTCPPort(t), freeTCPPort(t)}
	paths := []string{
		writeTLSConfig(t, caDir, filepath.Join(dir, "n1"), macs[0], ports[0], ""),
		writeTLSConfig(t, caDir, filepath.Join(dir, "n2"), macs[1], ports[1], fmt.Sprintf("%s@127.0.0.1:%d", macs[0], ports[0])),
	}
	n1, n2 := startFromFile(t, paths[0]), startFromFile(t, paths[1])
	waitFor(t, 10*time.Second, "a link", func() bool { return linkedTo(n1.d.Status(), macs[1]) })
	before := n1.d.Status().Links[0]
	old := n1.d.Status().Certificate

	renewed, err := pki.RenewNode(caDir, filepath.Join(dir, "n1"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n1.sig <- syscall.SIGHUP
	waitFor(t, 5*time.Second, "the renewed certificate in force", func() bool {
		c := n1.d.Status().Certificate
		return c != nil && c.SerialNumber.Cmp(renewed.SerialNumber) == 0
	})
	if old.SerialNumber.Cmp(renewed.SerialNumber) == 0 {
		t.Fatal("renewal kept the serial")
	}
	after := n1.d.Status()
	if len(after.Links) != 1 || after.Links[0].ID != before.ID {
		t.Errorf("links after the reload %+v; want link %d kept", after.Links, before.ID)
	}
	if logs := n1.logs.String(); !strings.Contains(logs, "listeners kept, new identity in place") {
		t.Errorf("the listener was not kept:\n%s", logs)
	}
	if !linkedTo(n2.d.Status(), macs[0]) {
		t.Error("node 2 lost its link over the reload")
	}
	// A new handshake gets the renewed certificate. (The test dials as
	// node 2, so node 1 replaces node 2's link with this one: node 2's
	// link is checked above, before.)
	d2 := dialerFromFile(t, paths[1])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := d2.Dial(ctx, macs[0], netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.(transport.CertifiedLink).PeerCertificate(); got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("a new handshake got serial %x, want the renewed %x", got.SerialNumber, renewed.SerialNumber)
	}
}

// A member with a valid certificate announces another member's MAC with
// a newer round, as relayed, with and without a forged signature (the
// forgery of docs/protocol.md#signed-announcements). A daemon that
// requires signatures keeps its route; one that accepts unsigned
// announcements (accept_unsigned, for upgrades) is taken in: the attack
// is real, and the signatures are what stop it.
func TestForgedAnnouncementRefused(t *testing.T) {
	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprintf("accept_unsigned=%v", accept), func(t *testing.T) {
			dir, caDir := groupDir(t)
			macA, macB, macM := wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}, wire.MAC{0x02, 0x50, 0x56, 0, 0, 2}, wire.MAC{0x02, 0x50, 0x56, 0, 0, 9}
			pa, pb := freeTCPPort(t), freeTCPPort(t)
			pathA := writeTLSConfig(t, caDir, filepath.Join(dir, "a"), macA, pa, "")
			pathB := writeTLSConfig(t, caDir, filepath.Join(dir, "b"), macB, pb, fmt.Sprintf("%s@127.0.0.1:%d", macA, pa))
			if accept {
				text, _ := os.ReadFile(pathB)
				os.WriteFile(pathB, []byte(strings.Replace(string(text), "[network]\n", "[network]\naccept_unsigned = true\n", 1)), 0o600)
			}
			a, b := startFromFile(t, pathA), startFromFile(t, pathB)
			routeVia := func(d *runningDaemon, target wire.MAC) wire.MAC {
				for _, r := range d.d.Status().Routes {
					if r.Target == target {
						return r.NextHop
					}
				}
				return wire.MAC{}
			}
			waitFor(t, 10*time.Second, "b routes to a", func() bool { return routeVia(b, macA) == macA })

			// The fake member: a valid certificate, and a raw link to b.
			mDir := filepath.Join(dir, "m")
			if err := pki.IssueNode(caDir, macM, mDir); err != nil {
				t.Fatal(err)
			}
			cert, err := pki.LoadKeyPair(filepath.Join(mDir, pki.NodeCertFile), filepath.Join(mDir, pki.NodeKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			pool, err := pki.LoadCertPool(filepath.Join(mDir, pki.CACertFile))
			if err != nil {
				t.Fatal(err)
			}
			dialer, err := tlstransport.NewDialer(tlstransport.Config{Cert: cert, CAs: pool})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			l, err := dialer.Dial(ctx, macB, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), pb))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() { // read what b sends, so that its writes never block
				for {
					if _, err := l.ReadMessage(); err != nil {
						return
					}
				}
			}()
			hello := wire.InitialInfo{ID: 1, MAC: macM, Port: 1}
			forgery := wire.InfoPath{PathKnown: true, Path: []wire.MAC{macM},
				Info: wire.Info{ID: uint64(time.Now().Add(time.Hour).UnixMilli()), MAC: macA, Port: pa}}
			sig := wire.Signatures{Entries: []wire.Signature{{MAC: macA, ID: forgery.ID, Port: pa, Sig: []byte("not a's signature")}}}
			for _, m := range []wire.Message{&hello, &forgery, &sig, &forgery} {
				if err := l.WriteMessage(m.Append(nil)); err != nil {
					t.Fatal(err)
				}
			}
			// b has handled the four messages once it answers a status
			// that shows the link to m.
			waitFor(t, 5*time.Second, "b linked to the fake member", func() bool { return linkedTo(b.d.Status(), macM) })
			waitFor(t, 5*time.Second, "b handled the forgery", func() bool {
				s := b.d.Status()
				return s.Stats.Unsigned+s.Stats.Forgeries >= 2 || routeVia(b, macA) == macM
			})
			got := routeVia(b, macA)
			if accept {
				if got != macM {
					t.Errorf("accepting unsigned, b routes a via %s; the forgery should have taken it", got)
				}
				return
			}
			s := b.d.Status()
			if got != macA || s.Stats.Forgeries != 1 || s.Stats.Drops[node.DropUnsigned] != 2 {
				t.Errorf("b routes a via %s, %d forgeries, %d unsigned drops; want a, 1 and 2", got, s.Stats.Forgeries, s.Stats.Drops[node.DropUnsigned])
			}
			if logs := b.logs.String(); !strings.Contains(logs, "forged signature refused") || !strings.Contains(logs, "from="+macM.String()) {
				t.Errorf("b did not warn of the forgery and its sender:\n%s", logs)
			}
			if logs := b.logs.String(); !strings.Contains(logs, "forged signature refused") || !strings.Contains(logs, "from="+macM.String()) {
				t.Errorf("b did not warn of the forgery and its sender:\n%s", logs)
			}
			if !linkedTo(a.d.Status(), macB) {
				t.Error("a lost its link to b")
			}
		})
	}
}

// groupDir returns a test directory holding a new group CA in dir/ca, and
// checks at the end of the test that no goroutine was left behind.
func groupDir(t *testing.T) (dir, caDir string) {
	t.Helper()
	others := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, others) })
	dir = t.TempDir()
	caDir = filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	return dir, caDir
}

// dialerFromFile returns a dialer with the identity of the configuration
// file path: a member's, outside its daemon.
func dialerFromFile(t *testing.T, path string) *tlstransport.Dialer {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := loadIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tlstransport.NewDialer(id.tls)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
