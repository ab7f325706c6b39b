package tlstransport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/transporttest"
	"github.com/invpn/invpn/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	macA = wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	macB = wire.MAC{0x02, 0x50, 0x56, 0, 0, 2}
	macC = wire.MAC{0x02, 0x50, 0x56, 0, 0, 3}
)

// listen starts a listener on 127.0.0.1 closed at the end of the test.
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

// connect dials ln as cfg, wanting want, and returns both ends.
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

// reports collects what Config.HandshakeError is told.
func reports(cfg *Config) <-chan error {
	ch := make(chan error, 16)
	cfg.HandshakeError = func(_ netip.AddrPort, err error) { ch <- err }
	return ch
}

func TestLinkContract(t *testing.T) {
	ca := newCA(t, "group")
	ln := listen(t, ca.member(t, macB.String(), kindECDSA))
	client := ca.member(t, macA.String(), kindECDSA)
	transporttest.TestLinkPair(t, func(t *testing.T) (transport.Link, transport.Link) {
		a, b := connect(t, client, ln, macB)
		if a.Peer() != macB || b.Peer() != macA {
			t.Errorf("Peer() = %s, %s; want %s, %s", a.Peer(), b.Peer(), macB, macA)
		}
		if !a.Extended() || !b.Extended() {
			t.Errorf("Extended() = %v, %v between two invpn nodes; want true", a.Extended(), b.Extended())
		}
		return a, b
	})
}

// Identity and links: keys may be Ed25519, ECDSA P-256 or RSA, and two nodes
// of this project speak TLS 1.3 with ALPN invpn/1.
func TestKeyTypes(t *testing.T) {
	kinds := []keyKind{kindECDSA, kindEd25519, kindRSA}
	ca := newCA(t, "group")
	for _, sk := range kinds {
		for _, ck := range kinds {
			t.Run(string(sk)+"-server/"+string(ck)+"-client", func(t *testing.T) {
				ln := listen(t, ca.member(t, macB.String(), sk))
				a, b := connect(t, ca.member(t, macA.String(), ck), ln, macB)
				defer a.Close()
				defer b.Close()
				if v := a.(*link).conn.ConnectionState().Version; v != tls.VersionTLS13 {
					t.Errorf("version = %s, want TLS 1.3", tls.VersionName(v))
				}
				if !a.Extended() || !b.Extended() {
					t.Errorf("Extended() = %v, %v; want true", a.Extended(), b.Extended())
				}
				roundTrip(t, a, b)
			})
		}
	}
}

// Both ends of a link read and write the socket under TLS with raw calls
// (rawConn; docs/architecture.md#latency-when-idle), and messages cross.
func TestLinksUseRawIO(t *testing.T) {
	ca := newCA(t, "group")
	ln := listen(t, ca.member(t, macB.String(), kindECDSA))
	a, b := connect(t, ca.member(t, macA.String(), kindECDSA), ln, macB)
	defer a.Close()
	defer b.Close()
	if c := a.(*link).conn.NetConn(); !isRaw(c) {
		t.Errorf("dialed link runs TLS over %T, want *rawConn", c)
	}
	if h, ok := b.(*link).conn.NetConn().(*helloConn); !ok {
		t.Errorf("accepted link runs TLS over %T, want *helloConn", b.(*link).conn.NetConn())
	} else if !isRaw(h.Conn) {
		t.Errorf("accepted link's hello reader wraps %T, want *rawConn", h.Conn)
	}
	roundTrip(t, a, b)
}

func isRaw(c net.Conn) bool { _, ok := c.(*rawConn); return ok }

func roundTrip(t *testing.T, a, b transport.Link) {
	t.Helper()
	for _, dir := range [][2]transport.Link{{a, b}, {b, a}} {
		msg := []byte{0x80, 1, 2, 3}
		if err := dir[0].WriteMessage(msg); err != nil {
			t.Fatalf("write to %s: %v", dir[0].Peer(), err)
		}
		got, err := dir[1].ReadMessage()
		if err != nil || string(got) != string(msg) {
			t.Fatalf("read from %s = % x, %v; want % x", dir[1].Peer(), got, err, msg)
		}
	}
}

// Interoperating with an original node: it offers no ALPN, so the link is
// not extended; it may speak TLS 1.2; it sees no SNI.
func TestDialOriginalNode(t *testing.T) {
	ca := newCA(t, "group")
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			orig := originalTLS(ca.issue(t, macB.String(), kindRSA), ca.pool, v)
			addr, done := startOriginalServer(t, orig, false)
			d, err := NewDialer(ca.member(t, macA.String(), kindECDSA))
			if err != nil {
				t.Fatal(err)
			}
			l, err := d.Dial(context.Background(), macB, netip.MustParseAddrPort(addr))
			if err != nil {
				t.Fatalf("Dial original node: %v", err)
			}
			if l.Extended() {
				t.Error("link to an original node is Extended")
			}
			if l.Peer() != macB || !l.Dialed() {
				t.Errorf("Peer() = %s, Dialed() = %v; want %s, true", l.Peer(), l.Dialed(), macB)
			}
			msgs := [][]byte{{0x00, 1}, {0x81, 2, 3}}
			if err := l.WriteMessages(msgs); err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				got, err := l.ReadMessage()
				if err != nil || string(got) != string(m) {
					t.Fatalf("echo = % x, %v; want % x", got, err, m)
				}
			}
			l.Close()
			h := <-done
			if h.version != v {
				t.Errorf("version = %s, want %s", tls.VersionName(h.version), tls.VersionName(v))
			}
			if h.serverName != "" {
				t.Errorf("client sent SNI %q, want none", h.serverName)
			}
			if len(h.alpn) != 1 || h.alpn[0] != transport.ProtocolName {
				t.Errorf("client offered ALPN %q, want [%s]", h.alpn, transport.ProtocolName)
			}
			if h.peer != macA {
				t.Errorf("original node saw %s, want %s", h.peer, macA)
			}
		})
	}
}

// Interoperating with an original node: it dials us without ALPN; we ask for
// its certificate without naming a CA.
func TestAcceptOriginalNode(t *testing.T) {
	ca := newCA(t, "group")
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			ln := listen(t, ca.member(t, macB.String(), kindEd25519))
			orig := originalTLS(ca.issue(t, macA.String(), kindRSA), ca.pool, v)
			c, acceptable := dialAsOriginal(t, ln.Addr().String(), orig, macB)
			if len(acceptable) != 0 {
				t.Errorf("server named %d acceptable CAs, want none", len(acceptable))
			}
			l, err := ln.Accept(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.Extended() || l.Dialed() || l.Peer() != macA {
				t.Errorf("Extended() = %v, Dialed() = %v, Peer() = %s; want false, false, %s",
					l.Extended(), l.Dialed(), l.Peer(), macA)
			}
			local := c.LocalAddr().(*net.TCPAddr).AddrPort()
			if l.RemoteAddr() != local {
				t.Errorf("RemoteAddr() = %s, want %s", l.RemoteAddr(), local)
			}
			if err := wire.NewWriter(c).WriteMessage([]byte{0x00, 7}); err != nil {
				t.Fatal(err)
			}
			if got, err := l.ReadMessage(); err != nil || string(got) != "\x00\x07" {
				t.Errorf("ReadMessage = % x, %v", got, err)
			}
		})
	}
}

// Identity and links: a dialer checks the Common Name against the MAC it
// meant to reach.
func TestDialWrongPeer(t *testing.T) {
	ca := newCA(t, "group")
	srv := ca.member(t, macB.String(), kindECDSA)
	refused := reports(&srv)
	ln := listen(t, srv)
	d, err := NewDialer(ca.member(t, macA.String(), kindECDSA))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Dial(context.Background(), macC, ln.Addr())
	if !errors.Is(err, transport.ErrWrongPeer) {
		t.Fatalf("Dial(%s) at %s's address = %v, want ErrWrongPeer", macC, macB, err)
	}
	<-refused // the server saw the client's alert
	expectNoLink(t, ln)
}

// expectNoLink checks that no link waits in ln. Call it after the
// listener reported the handshake's end, so that nothing is in flight.
func expectNoLink(t *testing.T, ln *Listener) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if l, err := ln.Accept(ctx); err == nil {
		l.Close()
		t.Errorf("listener accepted a link from %s", l.Peer())
	}
}

// Interoperating with an original node: a client certificate from a foreign
// CA is refused. Under TLS 1.3 the client's handshake completes first, so
// the refusal shows on its first read; under TLS 1.2 the dial fails.
func TestForeignClientRefused(t *testing.T) {
	ca, foreign := newCA(t, "group"), newCA(t, "foreign")
	srv := ca.member(t, macB.String(), kindECDSA)
	refused := reports(&srv)
	ln := listen(t, srv)

	intruder := foreign.member(t, macA.String(), kindECDSA)
	intruder.CAs = ca.pool // it trusts our CA, so only our check can stop it
	d, err := NewDialer(intruder)
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Dial(context.Background(), macB, ln.Addr())
	if err != nil {
		t.Fatalf("TLS 1.3 Dial = %v; want the client's handshake to complete before the server's verdict", err)
	}
	if m, err := l.ReadMessage(); err == nil {
		t.Errorf("first read on a refused link returned % x", m)
	}
	l.Close()
	if err := <-refused; !errors.Is(err, transport.ErrUntrusted) {
		t.Errorf("listener reported %v, want ErrUntrusted", err)
	}
	expectNoLink(t, ln)

	// Under TLS 1.2 the server's verdict comes before the client finishes.
	orig := originalTLS(intruder.Cert, ca.pool, tls.VersionTLS12)
	if c, err := tls.Dial("tcp", ln.Addr().String(), orig); err == nil {
		c.Close()
		t.Error("TLS 1.2 handshake with a foreign client certificate succeeded")
	}
	if err := <-refused; !errors.Is(err, transport.ErrUntrusted) {
		t.Errorf("listener reported %v, want ErrUntrusted", err)
	}
	expectNoLink(t, ln)
}

// Interoperating with an original node: it refuses by closing TCP without an
// alert, after a TLS 1.3 handshake that completed on our side. The link is
// returned and its first read sees end of stream.
func TestOriginalRefusalReadsEOF(t *testing.T) {
	ca := newCA(t, "group")
	orig := originalTLS(ca.issue(t, macB.String(), kindRSA), ca.pool, tls.VersionTLS13)
	addr, done := startOriginalServer(t, orig, true)
	d, err := NewDialer(ca.member(t, macA.String(), kindECDSA))
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Dial(context.Background(), macB, netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatalf("Dial: %v (want the handshake to complete)", err)
	}
	defer l.Close()
	<-done
	if m, err := l.ReadMessage(); err != io.EOF {
		t.Errorf("first read = % x, %v; want io.EOF", m, err)
	}
}

func TestForeignServerRefused(t *testing.T) {
	ca, foreign := newCA(t, "group"), newCA(t, "foreign")
	srv := foreign.member(t, macB.String(), kindECDSA)
	srv.CAs = ca.pool
	refused := reports(&srv)
	ln := listen(t, srv)
	d, err := NewDialer(ca.member(t, macA.String(), kindECDSA))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dial(context.Background(), macB, ln.Addr()); !errors.Is(err, transport.ErrUntrusted) {
		t.Errorf("Dial a foreign server = %v, want ErrUntrusted", err)
	}
	<-refused
	expectNoLink(t, ln)
}

// Identity and links: the CA pool may hold several CAs.
func TestCABundle(t *testing.T) {
	ca1, ca2 := newCA(t, "group 1"), newCA(t, "group 2")
	bundle := x509.NewCertPool()
	bundle.AddCert(ca1.cert)
	bundle.AddCert(ca2.cert)
	srv := ca1.member(t, macB.String(), kindECDSA)
	srv.CAs = bundle
	cli := ca2.member(t, macA.String(), kindEd25519)
	cli.CAs = bundle
	a, b := connect(t, cli, listen(t, srv), macB)
	defer a.Close()
	defer b.Close()
	roundTrip(t, a, b)
}

// The certificate's extended key usage is checked when present: a member
// whose certificate is for servers only cannot be a client. Certificates
// with no extended key usage at all (openssl's default) are accepted.
func TestExtKeyUsage(t *testing.T) {
	ca := newCA(t, "group")
	srv := Config{Cert: ca.issue(t, macB.String(), kindECDSA), CAs: ca.pool}
	refused := reports(&srv)
	ln := listen(t, srv)

	plain := Config{Cert: ca.issue(t, macA.String(), kindECDSA), CAs: ca.pool}
	a, b := connect(t, plain, ln, macB)
	roundTrip(t, a, b)
	a.Close()
	b.Close()

	serverOnly := Config{Cert: ca.issue(t, macA.String(), kindECDSA, x509.ExtKeyUsageServerAuth), CAs: ca.pool}
	d, err := NewDialer(serverOnly)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := d.Dial(context.Background(), macB, ln.Addr()); err == nil {
		l.ReadMessage()
		l.Close()
	}
	if err := <-refused; !errors.Is(err, transport.ErrUntrusted) {
		t.Errorf("listener reported %v, want ErrUntrusted for a server-only certificate", err)
	}
	expectNoLink(t, ln)
}

// Identity and links: the Common Name must be a MAC.
func TestCommonNameNotMAC(t *testing.T) {
	ca := newCA(t, "group")
	srv := ca.member(t, "node1.example", kindECDSA)
	ln := listen(t, srv)
	d, err := NewDialer(ca.member(t, macA.String(), kindECDSA))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dial(context.Background(), macB, ln.Addr()); !errors.Is(err, transport.ErrNoMAC) {
		t.Errorf("Dial a server named node1.example = %v, want ErrNoMAC", err)
	}

	good := ca.member(t, macB.String(), kindECDSA)
	refused := reports(&good)
	ln2 := listen(t, good)
	d2, err := NewDialer(ca.member(t, "node1.example", kindECDSA))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := d2.Dial(context.Background(), macB, ln2.Addr()); err == nil {
		l.ReadMessage()
		l.Close()
	}
	if err := <-refused; !errors.Is(err, transport.ErrNoMAC) {
		t.Errorf("listener reported %v, want ErrNoMAC", err)
	}
	expectNoLink(t, ln2)
}

func TestMACFromCert(t *testing.T) {
	for _, tc := range []struct {
		cn   string
		want wire.MAC
		ok   bool
	}{
		{"02:50:56:00:00:01", macA, true},
		{"02:50:56:0A:bC:01", wire.MAC{2, 0x50, 0x56, 0x0a, 0xbc, 1}, true},
		{"02-50-56-00-00-01", wire.MAC{}, false},
		{"02:50:56:00:00", wire.MAC{}, false},
		{"02:50:56:00:00:0g", wire.MAC{}, false},
		{"", wire.MAC{}, false},
		{"01:00:5e:00:00:01", wire.MAC{}, false}, // multicast
		{"ff:ff:ff:ff:ff:ff", wire.MAC{}, false}, // broadcast
		{"00:00:00:00:00:00", wire.MAC{}, false},
	} {
		c := &x509.Certificate{}
		c.Subject.CommonName = tc.cn
		got, err := MACFromCert(c)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("MACFromCert(%q) = %s, %v; want %s", tc.cn, got, err, tc.want)
		}
		if !tc.ok && !errors.Is(err, transport.ErrNoMAC) {
			t.Errorf("MACFromCert(%q) = %s, %v; want ErrNoMAC", tc.cn, got, err)
		}
	}
}

// Closing a listener aborts handshakes in progress and unblocks Accept.
func TestListenerClose(t *testing.T) {
	ca := newCA(t, "group")
	ln, err := Listen(ca.member(t, macB.String(), kindECDSA), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ln.Accept(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Accept with cancelled context = %v, want context.Canceled", err)
	}
	// A silent client is mid-handshake when Close runs; Close must not wait
	// for its 10 s timeout (the test's goleak check would catch a leak).
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept(context.Background())
		errc <- err
	}()
	if err := ln.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if err := ln.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	ca := newCA(t, "group")
	if _, err := NewDialer(Config{CAs: ca.pool}); err == nil {
		t.Error("NewDialer without a certificate succeeded")
	}
	if _, err := Listen(Config{Cert: ca.issue(t, macA.String(), kindECDSA)}, "127.0.0.1:0"); err == nil {
		t.Error("Listen without a CA pool succeeded")
	}
	d, err := NewDialer(ca.member(t, macA.String(), kindECDSA))
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on: bind one, then close it.
	tmp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := tmp.Addr().(*net.TCPAddr).AddrPort()
	tmp.Close()
	if _, err := d.Dial(context.Background(), macB, closed); err == nil {
		t.Error("Dial to a closed port succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ln := listen(t, ca.member(t, macB.String(), kindECDSA))
	if _, err := d.Dial(ctx, macB, ln.Addr()); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with cancelled context = %v, want context.Canceled", err)
	}
}

// Interoperating with an original node: it may announce an IPv4 peer as an
// IPv4-mapped IPv6 address; dialing it reaches the IPv4 address, and
// addresses seen on sockets are reported unmapped.
func TestIPv4Mapped(t *testing.T) {
	ca := newCA(t, "group")
	ln := listen(t, ca.member(t, macB.String(), kindECDSA))
	d, err := NewDialer(ca.member(t, macA.String(), kindECDSA))
	if err != nil {
		t.Fatal(err)
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(ln.Addr().Addr().As16()), ln.Addr().Port())
	a, err := d.Dial(context.Background(), macB, mapped)
	if err != nil {
		t.Fatalf("Dial %s: %v", mapped, err)
	}
	defer a.Close()
	b, err := ln.Accept(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.RemoteAddr() != ln.Addr() {
		t.Errorf("RemoteAddr() = %s, want %s", a.RemoteAddr(), ln.Addr())
	}
	if !b.RemoteAddr().Addr().Is4() {
		t.Errorf("accepted RemoteAddr() = %s, want IPv4", b.RemoteAddr())
	}
	got := addrPort(&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 41744})
	if got != netip.MustParseAddrPort("10.1.2.3:41744") {
		t.Errorf("addrPort(::ffff:10.1.2.3) = %s, want 10.1.2.3:41744", got)
	}
}

func TestIPv6Loopback(t *testing.T) {
	ca := newCA(t, "group")
	ln, err := Listen(ca.member(t, macB.String(), kindECDSA), "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	a, b := connect(t, ca.member(t, macA.String(), kindECDSA), ln, macB)
	defer a.Close()
	defer b.Close()
	if b.RemoteAddr().Addr() != netip.IPv6Loopback() {
		t.Errorf("RemoteAddr() = %s, want [::1]:port", b.RemoteAddr())
	}
	roundTrip(t, a, b)
}

// Interoperating with an original node: a client without a certificate is
// dropped.
func TestClientWithoutCertificateRefused(t *testing.T) {
	ca := newCA(t, "group")
	srv := ca.member(t, macB.String(), kindECDSA)
	refused := reports(&srv)
	ln := listen(t, srv)
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err == nil {
		c.Close()
		t.Error("handshake without a client certificate succeeded")
	}
	if err := <-refused; err == nil {
		t.Error("listener reported a nil error")
	}
	expectNoLink(t, ln)
}

// TestListenBothFamiliesOnOnePort: `listen = 0.0.0.0, ::` opens two
// listeners on the same port, which needs the IPv6 one to be IPv6-only.
func TestListenBothFamiliesOnOnePort(t *testing.T) {
	cfg := newCA(t, "group").member(t, macA.String(), kindECDSA)
	l4, err := Listen(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	l6, err := Listen(cfg, fmt.Sprintf("[::]:%d", l4.Addr().Port()))
	if err != nil {
		t.Fatalf("IPv6 listener on the IPv4 listener's port: %v", err)
	}
	l6.Close()
}

// TestSetIdentityInPlace: a listener given a new CA and certificate by
// SetIdentity keeps its address and accept loop, admits members of the new
// group and refuses those of the old one, and the link accepted before
// stays up.
func TestSetIdentityInPlace(t *testing.T) {
	oldCA, newCA := newCA(t, "old group"), newCA(t, "new group")
	srv := oldCA.member(t, macB.String(), kindECDSA)
	refused := reports(&srv)
	ln := listen(t, srv)
	addr := ln.Addr()

	dial := func(cfg Config) (transport.Link, error) {
		d, err := NewDialer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return d.Dial(context.Background(), macB, addr)
	}
	before, err := dial(oldCA.member(t, macA.String(), kindECDSA))
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	acceptedBefore, err := ln.Accept(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer acceptedBefore.Close()

	next := newCA.member(t, macB.String(), kindECDSA)
	if err := ln.SetIdentity(next); err != nil {
		t.Fatal(err)
	}
	if err := ln.SetIdentity(Config{}); err == nil {
		t.Error("SetIdentity took a config without certificate")
	}
	if ln.Addr() != addr {
		t.Fatalf("address changed from %v to %v", addr, ln.Addr())
	}
	// A member of the new group links; one of the old group no longer.
	l, err := dial(newCA.member(t, macA.String(), kindECDSA))
	if err != nil {
		t.Fatalf("new group's member: %v", err)
	}
	if a, err := ln.Accept(context.Background()); err != nil {
		t.Fatalf("accept after SetIdentity: %v", err)
	} else {
		a.Close()
	}
	l.Close()
	if old, err := dial(oldCA.member(t, macA.String(), kindECDSA)); err == nil {
		old.ReadMessage() // TLS 1.3: the server's verdict comes after the client's handshake
		old.Close()
	}
	if err := <-refused; err == nil {
		t.Error("old group's member not refused after SetIdentity")
	}
	// The link from before still carries messages both ways.
	if err := before.WriteMessage([]byte{0x87, 1}); err != nil {
		t.Fatal(err)
	}
	if m, err := acceptedBefore.ReadMessage(); err != nil || len(m) != 2 {
		t.Fatalf("old link after SetIdentity: %x, %v", m, err)
	}
}

// Config.Revoked refuses a member in both directions: the listener does
// not accept it, and a dial to it fails, each with ErrRevoked. A link
// shows the certificate its peer authenticated with.
func TestRevokedPeerRefused(t *testing.T) {
	ca := newCA(t, "group")
	var revoked atomic.Pointer[big.Int]
	check := func(c *x509.Certificate) error {
		if s := revoked.Load(); s != nil && c.SerialNumber.Cmp(s) == 0 {
			return fmt.Errorf("serial %x", s)
		}
		return nil
	}
	srv := ca.member(t, macB.String(), kindECDSA)
	srv.Revoked = check
	refused := reports(&srv)
	ln := listen(t, srv)
	cli := ca.member(t, macA.String(), kindECDSA)
	cli.Revoked = check

	dialed, accepted := connect(t, cli, ln, macB)
	got := accepted.(transport.CertifiedLink).PeerCertificate()
	if !bytes.Equal(got.Raw, cli.Cert.Certificate[0]) {
		t.Error("the accepted link shows another certificate than the client's")
	}
	dialed.Close()
	accepted.Close()

	// The client is revoked: the listener refuses it.
	leafA, _ := x509.ParseCertificate(cli.Cert.Certificate[0])
	revoked.Store(leafA.SerialNumber)
	d, err := NewDialer(cli)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := d.Dial(context.Background(), macB, ln.Addr()); err == nil {
		if m, err := l.ReadMessage(); err == nil {
			t.Errorf("first read on a refused link returned % x", m)
		}
		l.Close()
	}
	if err := <-refused; !errors.Is(err, transport.ErrRevoked) {
		t.Errorf("listener reported %v, want ErrRevoked", err)
	}
	expectNoLink(t, ln)

	// The server is revoked: the client refuses it.
	leafB, _ := x509.ParseCertificate(srv.Cert.Certificate[0])
	revoked.Store(leafB.SerialNumber)
	if l, err := d.Dial(context.Background(), macB, ln.Addr()); !errors.Is(err, transport.ErrRevoked) {
		if l != nil {
			l.Close()
		}
		t.Errorf("dial to a revoked server: %v, want ErrRevoked", err)
	}
	<-refused // the server sees the client's alert
	expectNoLink(t, ln)
}
