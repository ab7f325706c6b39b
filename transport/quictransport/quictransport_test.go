package quictransport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/transport/transporttest"
	"github.com/invpn/invpn/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	macA = wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	macB = wire.MAC{0x02, 0x50, 0x56, 0, 0, 2}
)

func member(t *testing.T, ca *transporttest.CA, mac wire.MAC) Config {
	t.Helper()
	return Config{Identity: tlstransport.Config{Cert: ca.Issue(t, mac.String()), CAs: ca.Pool}}
}

func listen(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := Listen(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ln.Close(); err != nil {
			t.Errorf("Listener.Close: %v", err)
		}
	})
	return ln
}

func connect(t *testing.T, cfg Config, ln *Listener, want wire.MAC) (dialed, accepted transport.Link) {
	t.Helper()
	d, err := NewDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := d.Dial(ctx, want, ln.Addr())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	b, err := ln.Accept(ctx)
	if err != nil {
		a.Close()
		t.Fatalf("Accept: %v", err)
	}
	return a, b
}

// closeAndWait closes links and waits until their connections are gone,
// so that goleak sees no goroutine of theirs.
func closeAndWait(ls ...transport.Link) {
	for _, l := range ls {
		l.Close()
	}
	for _, l := range ls {
		l.(*link).wait()
	}
}

func TestLinkContract(t *testing.T) {
	ca := transporttest.NewCA(t, "group")
	ln := listen(t, member(t, ca, macB))
	client := member(t, ca, macA)
	transporttest.TestLinkPair(t, func(t *testing.T) (transport.Link, transport.Link) {
		a, b := connect(t, client, ln, macB)
		t.Cleanup(func() { closeAndWait(a, b) })
		if a.Peer() != macB || b.Peer() != macA {
			t.Fatalf("peers %s, %s; want %s, %s", a.Peer(), b.Peer(), macB, macA)
		}
		if !a.Extended() || a.Transport() != Name {
			t.Fatalf("Extended %v, Transport %q; want true, %q", a.Extended(), a.Transport(), Name)
		}
		return a, b
	}, transporttest.Semantics{Datagrams: true})
}

func TestDialWrongPeer(t *testing.T) {
	ca := transporttest.NewCA(t, "group")
	ln := listen(t, member(t, ca, macB))
	d, err := NewDialer(member(t, ca, macA))
	if err != nil {
		t.Fatal(err)
	}
	other := wire.MAC{0x02, 0x50, 0x56, 0, 0, 9}
	_, err = d.Dial(context.Background(), other, ln.Addr())
	if !errors.Is(err, transport.ErrWrongPeer) {
		t.Fatalf("Dial for %s reaching %s = %v, want ErrWrongPeer", other, macB, err)
	}
}

// refusedReports collects what Config.HandshakeError is told.
func refusedReports(cfg *Config) <-chan error {
	ch := make(chan error, 16)
	cfg.HandshakeError = func(_ netip.AddrPort, err error) { ch <- err }
	return ch
}

// expectRefused waits for a refusal of reason why.
func expectRefused(t *testing.T, ch <-chan error, why tlstransport.Refusal) {
	t.Helper()
	select {
	case err := <-ch:
		var re *tlstransport.RefusedError
		if !errors.As(err, &re) || re.Reason != why {
			t.Fatalf("refusal %v, want reason %v", err, why)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no refusal reported, want %v", why)
	}
}

// expectNoLink checks that a dial that seemed to succeed is refused at
// once: an error or io.EOF on the first read, never a message.
func expectNoLink(t *testing.T, l transport.Link, dialErr error) {
	t.Helper()
	if dialErr != nil {
		return
	}
	defer closeAndWait(l)
	if msg, err := l.ReadMessage(); err == nil {
		t.Fatalf("refused link delivered % x", msg)
	}
}

func TestForeignClientRefused(t *testing.T) {
	ca, foreign := transporttest.NewCA(t, "group"), transporttest.NewCA(t, "other")
	srv := member(t, ca, macB)
	reports := refusedReports(&srv)
	ln := listen(t, srv)
	stranger := member(t, foreign, macA)
	stranger.Identity.CAs = ca.Pool // it trusts the server, the server does not trust it
	d, _ := NewDialer(stranger)
	l, err := d.Dial(context.Background(), macB, ln.Addr())
	expectNoLink(t, l, err)
	expectRefused(t, reports, tlstransport.RefusedCertificate)
	if s := ln.AdmissionStats(); s.Refused[tlstransport.RefusedCertificate] != 1 {
		t.Errorf("AdmissionStats refused certificates = %d, want 1", s.Refused[tlstransport.RefusedCertificate])
	}
}

func TestForeignServerRefused(t *testing.T) {
	ca, foreign := transporttest.NewCA(t, "group"), transporttest.NewCA(t, "other")
	srv := member(t, foreign, macB)
	srv.Identity.CAs = ca.Pool
	ln := listen(t, srv)
	d, _ := NewDialer(member(t, ca, macA))
	if _, err := d.Dial(context.Background(), macB, ln.Addr()); !errors.Is(err, transport.ErrUntrusted) {
		t.Fatalf("Dial to a server of another CA = %v, want ErrUntrusted", err)
	}
}

func TestRevokedPeerRefused(t *testing.T) {
	ca := transporttest.NewCA(t, "group")
	revoked := func(c *x509.Certificate) error {
		if c.Subject.CommonName == macA.String() {
			return errors.New("on the list")
		}
		return nil
	}
	srv := member(t, ca, macB)
	srv.Identity.Revoked = revoked
	reports := refusedReports(&srv)
	ln := listen(t, srv)
	d, _ := NewDialer(member(t, ca, macA))
	l, err := d.Dial(context.Background(), macB, ln.Addr())
	expectNoLink(t, l, err)
	expectRefused(t, reports, tlstransport.RefusedCertificate)

	// And the other way: a revoked server is refused by the dialer.
	srvA := member(t, ca, macA)
	lnA := listen(t, srvA)
	cli := member(t, ca, macB)
	cli.Identity.Revoked = revoked
	d2, _ := NewDialer(cli)
	if _, err := d2.Dial(context.Background(), macA, lnA.Addr()); !errors.Is(err, transport.ErrRevoked) {
		t.Fatalf("Dial to a revoked server = %v, want ErrRevoked", err)
	}
}

// TestCloseDeliversWhatWasWritten: messages written just before Close
// arrive before the end of stream, as over TCP, although closing a QUIC
// connection drops what is not yet acknowledged.
func TestCloseDeliversWhatWasWritten(t *testing.T) {
	ca := transporttest.NewCA(t, "group")
	ln := listen(t, member(t, ca, macB))
	a, b := connect(t, member(t, ca, macA), ln, macB)
	defer closeAndWait(a, b)
	const n = 500
	for i := range n {
		msg := make([]byte, 1000)
		msg[0], msg[1], msg[2] = 0x01, byte(i>>8), byte(i)
		if err := a.WriteMessage(msg); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	for i := range n {
		msg, err := b.ReadMessage()
		if err != nil {
			t.Fatalf("message %d of %d: %v", i, n, err)
		}
		if got := int(msg[1])<<8 | int(msg[2]); got != i {
			t.Fatalf("message %d is number %d", i, got)
		}
	}
	if _, err := b.ReadMessage(); err != io.EOF {
		t.Fatalf("after the last message: %v, want io.EOF", err)
	}
}

// TestListenerCloseKeepsLinks: links accepted stay up when the listener
// closes (they share its socket), and the port is free once they end.
func TestListenerCloseKeepsLinks(t *testing.T) {
	ca := transporttest.NewCA(t, "group")
	srv := member(t, ca, macB)
	ln, err := Listen(srv, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, b := connect(t, member(t, ca, macA), ln, macB)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteMessage([]byte{0x01, 7}); err != nil {
		t.Fatal(err)
	}
	if msg, err := b.ReadMessage(); err != nil || msg[1] != 7 {
		t.Fatalf("after the listener closed: % x, %v", msg, err)
	}
	closeAndWait(a, b)
	// The last link's end closed the socket.
	again, err := Listen(srv, ln.Addr().String())
	if err != nil {
		t.Fatalf("listen again on %s after the last link ended: %v", ln.Addr(), err)
	}
	again.Close()
}

func TestAddressesAreUDP(t *testing.T) {
	ca := transporttest.NewCA(t, "group")
	ln := listen(t, member(t, ca, macB))
	if !ln.Addr().IsValid() || ln.Addr().Port() == 0 {
		t.Fatalf("Addr() = %v", ln.Addr())
	}
	a, b := connect(t, member(t, ca, macA), ln, macB)
	defer closeAndWait(a, b)
	if a.RemoteAddr() != ln.Addr() {
		t.Errorf("dialed RemoteAddr %v, want %v", a.RemoteAddr(), ln.Addr())
	}
	if !b.RemoteAddr().Addr().Is4() {
		t.Errorf("accepted RemoteAddr %v is not IPv4", b.RemoteAddr())
	}
}

func ExampleListen() {
	fmt.Println(Name)
	// Output: quic
}

// TestManyLargeFrames sends more frames too long for one datagram than a
// link cuts before it tries a whole one again (probeEvery): every write
// must succeed.
func TestManyLargeFrames(t *testing.T) {
	ca := transporttest.NewCA(t, "group")
	ln := listen(t, member(t, ca, macB))
	a, b := connect(t, member(t, ca, macA), ln, macB)
	defer closeAndWait(a, b)
	go func() {
		for {
			if _, err := b.ReadMessage(); err != nil {
				return
			}
		}
	}()
	frame := make([]byte, 3000) // more than any QUIC packet holds
	frame[0] = 0x80
	for i := range 2*probeEvery + 10 {
		if err := a.WriteMessage(frame); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
}
