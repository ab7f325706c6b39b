package daemon

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

var (
	qA = wire.MAC{0x02, 0x50, 0x56, 0, 0x0d, 1}
	qB = wire.MAC{0x02, 0x50, 0x56, 0, 0x0d, 2}
)

// freeBoth returns a port free for TCP and UDP on 127.0.0.1 a moment ago.
func freeBoth(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		p := freePort(t)
		if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(p)}); err == nil {
			c.Close()
			return p
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// TestQUICLinkBetweenDaemons: two daemons with `transports = quic, tls`
// link over QUIC, and a full-size frame (cut in pieces on the way: a 1514-
// byte frame does not fit one datagram) crosses the link intact.
func TestQUICLinkBetweenDaemons(t *testing.T) {
	caDir, dir := t.TempDir(), t.TempDir()
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	both := []string{TransportQUIC, TransportTLS}
	pa, pb := freeBoth(t), freeBoth(t)
	a := startNetDaemon(t, caDir, dir, qA, pa, both)
	b := startNetDaemon(t, caDir, dir, qB, pb, both, node.Peer{MAC: qA, Addr: loopback(pa)})
	waitFor(t, 5*time.Second, "routes between the daemons", func() bool {
		return hasRoute(a.d.Status(), qB) && hasRoute(b.d.Status(), qA)
	})
	if l := linkTo(t, b, qA); l.Transport != TransportQUIC {
		t.Fatalf("link over %q, want %q", l.Transport, TransportQUIC)
	}
	payload := strings.Repeat("q", 1500)
	f := frame(qA, qB, 0x88b5, payload)
	b.inject(t, f)
	a.tap.wait(t, "the 1514-byte frame from B", func(got []byte) bool { return bytes.Equal(got, f) })
}

// TestQUICFallsBackToTLS: a daemon that dials QUIC first reaches a peer
// that runs TLS only (an older node, or UDP blocked) over TLS, and says so.
func TestQUICFallsBackToTLS(t *testing.T) {
	caDir, dir := t.TempDir(), t.TempDir()
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	pa, pb := freeBoth(t), freeBoth(t)
	a := startNetDaemon(t, caDir, dir, qA, pa, []string{TransportTLS})
	b := startNetDaemon(t, caDir, dir, qB, pb, []string{TransportQUIC, TransportTLS}, node.Peer{MAC: qA, Addr: loopback(pa)})
	waitFor(t, 10*time.Second, "routes between the daemons", func() bool {
		return hasRoute(a.d.Status(), qB) && hasRoute(b.d.Status(), qA)
	})
	if l := linkTo(t, b, qA); l.Transport != TransportTLS {
		t.Fatalf("link over %q, want %q", l.Transport, TransportTLS)
	}
	if logs := b.logs.String(); !strings.Contains(logs, `msg="dial fell back"`) || !strings.Contains(logs, "failed=quic next=tls") {
		t.Errorf("B's log does not say the dial fell back from quic to tls:\n%s", tailString(logs, 3000))
	}
}
