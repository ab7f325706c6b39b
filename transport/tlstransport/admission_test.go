package tlstransport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/transport"
)

// The admission tests run real TLS on loopback. Linux routes all of
// 127.0.0.0/8 to the loopback device, so a client can bind 127.0.0.2,
// 127.0.0.3, ... and be a source of its own (docs/security.md#admission).

// refusals collects what Config.HandshakeError is told without ever
// blocking the listener.
type refusals struct {
	mu   sync.Mutex
	errs []error
	more chan struct{} // gets a token per error, dropped when full
}

func collect(cfg *Config) *refusals {
	r := &refusals{more: make(chan struct{}, 1)}
	cfg.HandshakeError = func(_ netip.AddrPort, err error) {
		r.mu.Lock()
		r.errs = append(r.errs, err)
		r.mu.Unlock()
		select {
		case r.more <- struct{}{}:
		default:
		}
	}
	return r
}

// wait returns the first refusal for reason, waiting up to d.
func (r *refusals) wait(t *testing.T, reason Refusal, d time.Duration) *RefusedError {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		for i, err := range r.errs {
			var re *RefusedError
			if errors.As(err, &re) && re.Reason == reason {
				r.errs = append(r.errs[:i:i], r.errs[i+1:]...)
				r.mu.Unlock()
				return re
			}
		}
		got := append([]error(nil), r.errs...)
		r.mu.Unlock()
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("no %s refusal within %v; refusals: %v", reason, d, got)
		}
	}
}

// dialFrom opens a TCP connection to addr from the loopback address src.
// A listener that refuses the connection at once may reset it before the
// dial returns: that is the dial's error.
func dialFrom(t *testing.T, src string, addr netip.AddrPort) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr.String())
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Skipf("cannot dial from %s (needs Linux's 127.0.0.0/8 loopback): %v", src, err)
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// mustDialFrom is dialFrom for a connection the listener admits.
func mustDialFrom(t *testing.T, src string, addr netip.AddrPort) net.Conn {
	t.Helper()
	c, err := dialFrom(t, src, addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expectRefused dials addr from src, sends what, and checks that the
// listener ends the connection within d; it returns how long that took.
func expectRefused(t *testing.T, src string, addr netip.AddrPort, what []byte, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := dialFrom(t, src, addr)
	if err != nil {
		return time.Since(start) // reset before the dial returned
	}
	if len(what) > 0 {
		c.Write(what)
	}
	expectClosed(t, c, d)
	return time.Since(start)
}

// memberFrom dials ln as a member of cfg's group from src and returns the
// time the dial took and the link the listener accepted.
func memberFrom(t *testing.T, cfg Config, src string, ln *Listener) (time.Duration, transport.Link, error) {
	t.Helper()
	start := time.Now()
	raw, err := dialFrom(t, src, ln.Addr())
	if err != nil {
		return time.Since(start), nil, err
	}
	tc := tls.Client(raw, cfg.clientTLS(macB))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return time.Since(start), nil, err
	}
	l, err := ln.Accept(ctx)
	if err != nil {
		return time.Since(start), nil, err
	}
	t.Cleanup(func() { l.Close() })
	return time.Since(start), l, nil
}

// expectClosed checks that the server ends c within d: a reset or end of
// stream, never data.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // a server's TLS flight: keep reading until it closes
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", d)
		}
		return time.Since(start)
	}
}

// waitInProgress waits until ln has n handshakes in progress.
func waitInProgress(t *testing.T, ln *Listener, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ln.AdmissionStats().InProgress != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes in progress, want %d", ln.AdmissionStats().InProgress, n)
		}
		time.Sleep(5 * time.Millisecond) // polling the listener's counters
	}
}

// clientHello returns a ClientHello record as a member of cfg's group
// sends it: a client that sends it and then nothing more is stuck in the
// middle of the handshake.
func clientHello(t *testing.T, cfg Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		tls.Client(a, cfg.clientTLS(macB)).Handshake() // fails when b closes
		a.Close()
	}()
	var hdr [recordHeaderLen]byte
	if _, err := io.ReadFull(b, hdr[:]); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, recordHeaderLen+int(hdr[3])<<8+int(hdr[4]))
	copy(rec, hdr[:])
	if _, err := io.ReadFull(b, rec[recordHeaderLen:]); err != nil {
		t.Fatal(err)
	}
	return rec
}

// A connection that sends nothing is closed after the hello timeout, not
// the handshake timeout; one that sends something else than TLS is closed
// at once; one that sends its ClientHello and stalls is closed at the
// handshake timeout. Each is counted under its reason.
func TestHelloDeadline(t *testing.T) {
	ca := newCA(t, "group")
	srv := ca.member(t, macB.String(), kindECDSA)
	srv.HelloTimeout, srv.HandshakeTimeout = 150*time.Millisecond, 600*time.Millisecond
	got := collect(&srv)
	ln := listen(t, srv)

	// The reasons tell the deadlines apart; the times are checked loosely,
	// for a loaded machine.
	took := expectRefused(t, "127.0.0.1", ln.Addr(), nil, 5*time.Second)
	got.wait(t, RefusedHelloTimeout, time.Second)
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("silent client closed after %v, want about the hello timeout (150 ms)", took)
	}

	if took := expectRefused(t, "127.0.0.1", ln.Addr(), []byte("GET / HTTP/1.0\r\n\r\n"), 5*time.Second); took > time.Second {
		t.Errorf("client speaking HTTP closed after %v, want at once", took)
	}
	got.wait(t, RefusedNotTLS, time.Second)

	// Half a record header, then nothing: the hello timeout, too.
	expectRefused(t, "127.0.0.1", ln.Addr(), []byte{recordTypeHandshake, 3, 1}, 5*time.Second)
	got.wait(t, RefusedHelloTimeout, time.Second)

	took = expectRefused(t, "127.0.0.1", ln.Addr(), clientHello(t, ca.member(t, macA.String(), kindECDSA)), 5*time.Second)
	got.wait(t, RefusedHandshakeTimeout, time.Second)
	if took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("stalled handshake closed after %v, want about the handshake timeout (600 ms)", took)
	}
	st := ln.AdmissionStats()
	if st.InProgress != 0 || st.Refused[RefusedHelloTimeout] != 2 || st.Refused[RefusedNotTLS] != 1 || st.Refused[RefusedHandshakeTimeout] != 1 {
		t.Errorf("stats %+v; want nothing in progress, 2 hello timeouts, 1 not TLS, 1 handshake timeout", st)
	}
}

// A source gets PerSource handshakes at once; more are reset at once,
// while a member from another source links.
func TestPerSourceLimit(t *testing.T) {
	ca := newCA(t, "group")
	srv := ca.member(t, macB.String(), kindECDSA)
	srv.HelloTimeout, srv.HandshakeTimeout = 5*time.Second, 5*time.Second
	srv.Admission = Admission{PerSource: 2, Rate: -1}
	got := collect(&srv)
	ln := listen(t, srv)

	mustDialFrom(t, "127.0.0.2", ln.Addr())
	mustDialFrom(t, "127.0.0.2", ln.Addr())
	waitInProgress(t, ln, 2)
	if took := expectRefused(t, "127.0.0.2", ln.Addr(), nil, 2*time.Second); took > time.Second {
		t.Errorf("connection over the per-source limit closed after %v, want at once", took)
	}
	got.wait(t, RefusedPerSource, time.Second)

	member := ca.member(t, macA.String(), kindECDSA)
	took, l, err := memberFrom(t, member, "127.0.0.3", ln)
	if err != nil {
		t.Fatalf("member from another source while 127.0.0.2 holds its slots: %v", err)
	}
	if l.Peer() != macA || took > 2*time.Second {
		t.Errorf("member linked as %s after %v, want %s within 2 s", l.Peer(), took, macA)
	}
	// The member itself, from the full source, is refused like anyone.
	if _, _, err := memberFrom(t, member, "127.0.0.2", ln); err == nil {
		t.Error("a fourth connection from 127.0.0.2 linked")
	}
	got.wait(t, RefusedPerSource, time.Second)
	if st := ln.AdmissionStats(); st.InProgress != 2 || st.Refused[RefusedPerSource] != 2 {
		t.Errorf("stats %+v; want 2 in progress and 2 per-source refusals", st)
	}
}

// Known peers keep Reserved slots while strangers hold all the others.
func TestKnownPeerReservation(t *testing.T) {
	ca := newCA(t, "group")
	srv := ca.member(t, macB.String(), kindECDSA)
	srv.HelloTimeout, srv.HandshakeTimeout = 5*time.Second, 5*time.Second
	srv.Admission = Admission{Total: 4, Reserved: 2, PerSource: 1, Rate: -1}
	srv.Known = func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.9") }
	got := collect(&srv)
	ln := listen(t, srv)

	// Two strangers fill the strangers' share (Total − Reserved).
	mustDialFrom(t, "127.0.0.2", ln.Addr())
	mustDialFrom(t, "127.0.0.3", ln.Addr())
	waitInProgress(t, ln, 2)
	member := ca.member(t, macA.String(), kindECDSA)
	if _, _, err := memberFrom(t, member, "127.0.0.4", ln); err == nil {
		t.Error("a member from an unknown address linked with the strangers' share full")
	}
	got.wait(t, RefusedTotal, time.Second)

	took, l, err := memberFrom(t, member, "127.0.0.9", ln)
	if err != nil {
		t.Fatalf("member from a known address with the strangers' share full: %v", err)
	}
	t.Logf("known member linked in %v with the strangers' share full", took)
	if l.Peer() != macA {
		t.Errorf("linked %s, want %s", l.Peer(), macA)
	}
	// SetKnown changes what is known for the next connections: a known
	// address also has a limit of its own.
	ln.SetKnown(func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.4") })
	mustDialFrom(t, "127.0.0.4", ln.Addr())
	mustDialFrom(t, "127.0.0.4", ln.Addr())
	waitInProgress(t, ln, 4)
	if _, _, err := memberFrom(t, member, "127.0.0.9", ln); err == nil {
		t.Error("127.0.0.9, no longer known, linked with every slot taken")
	}
	got.wait(t, RefusedTotal, time.Second)
	if st := ln.AdmissionStats(); st.InProgress != 4 || st.Known != 2 {
		t.Errorf("stats %+v; want 4 in progress, 2 of them known", st)
	}
}

// A stranger that starts handshakes faster than Rate is refused; a known
// address is not rate-limited.
func TestSourceRate(t *testing.T) {
	ca := newCA(t, "group")
	srv := ca.member(t, macB.String(), kindECDSA)
	srv.Admission = Admission{Rate: 0.5, Burst: 2}
	srv.Known = func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.9") }
	got := collect(&srv)
	ln := listen(t, srv)
	garbage := func(src string) { expectRefused(t, src, ln.Addr(), []byte("hello?"), 2*time.Second) }
	garbage("127.0.0.2")
	garbage("127.0.0.2")
	got.wait(t, RefusedNotTLS, time.Second)
	got.wait(t, RefusedNotTLS, time.Second)
	garbage("127.0.0.2")
	got.wait(t, RefusedRate, time.Second)
	for range 4 {
		garbage("127.0.0.9")
		got.wait(t, RefusedNotTLS, time.Second)
	}
	if st := ln.AdmissionStats(); st.Refused[RefusedRate] != 1 || st.Refused[RefusedNotTLS] != 6 {
		t.Errorf("stats %+v; want 1 rate refusal and 6 not TLS", st)
	}
}

// Handshakes stuck half-way from many sources delay neither the accept
// loop nor a member's link, and a link waiting for Accept holds no slot.
func TestAcceptLoopNotBlocked(t *testing.T) {
	ca := newCA(t, "group")
	srv := ca.member(t, macB.String(), kindECDSA)
	srv.HandshakeTimeout = 10 * time.Second
	srv.Admission = Admission{Total: 17, Reserved: -1, PerSource: 1, Rate: -1}
	collect(&srv) // a listener that reports to nobody must not block either
	ln := listen(t, srv)
	member := ca.member(t, macA.String(), kindECDSA)
	hello := clientHello(t, member)
	for i := range 16 {
		c := mustDialFrom(t, netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)}).String(), ln.Addr())
		if _, err := c.Write(hello); err != nil {
			t.Fatal(err)
		}
	}
	waitInProgress(t, ln, 16)
	// One slot is left. Two members take it one after the other; nobody
	// calls Accept until both have finished their handshakes.
	var links []net.Conn
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		raw := mustDialFrom(t, src, ln.Addr())
		start := time.Now()
		tc := tls.Client(raw, member.clientTLS(macB))
		raw.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("member from %s with 16 handshakes stuck: %v", src, err)
		}
		waitInProgress(t, ln, 16)
		t.Logf("member from %s: handshake in %v beside 16 stuck ones", src, time.Since(start).Round(time.Millisecond))
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("member from %s took %v, want well under the 10 s of the stuck handshakes", src, d)
		}
		links = append(links, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range links {
		l, err := ln.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
}

// The gate's arithmetic, on a fake clock: sources are IPv4 addresses and
// IPv6 /64s, a known address is a source of its own, tokens refill at
// Rate, and idle sources are forgotten.
func TestGate(t *testing.T) {
	now := time.Unix(1000, 0)
	g := newGate(Admission{Total: 8, Reserved: 2, PerSource: 2, PerKnownSource: 3, Rate: 1, Burst: 3, Sources: 5}, func() time.Time { return now })
	mustAdmit := func(a string, known bool) sourceKey {
		t.Helper()
		k, why, ok := g.admit(netip.MustParseAddr(a), known)
		if !ok {
			t.Fatalf("admit(%s, known %v) refused: %s", a, known, why)
		}
		return k
	}
	refused := func(a string, known bool, want Refusal) {
		t.Helper()
		if _, why, ok := g.admit(netip.MustParseAddr(a), known); ok || why != want {
			t.Fatalf("admit(%s, known %v) = %s, %v; want refused %s", a, known, why, ok, want)
		}
	}
	// One /64 is one stranger, whatever its host bits.
	k1 := mustAdmit("2001:db8:1:2::1", false)
	mustAdmit("2001:db8:1:2:ffff::7", false)
	refused("2001:db8:1:2::99", false, RefusedPerSource)
	// A known address of that /64 is not held back by it.
	kk := mustAdmit("2001:db8:1:2::99", true)
	// IPv4, mapped or not, is one source per address.
	mustAdmit("::ffff:10.0.0.1", false)
	mustAdmit("10.0.0.1", false)
	refused("10.0.0.1", false, RefusedPerSource)
	mustAdmit("10.0.0.2", false)
	// 5 strangers' handshakes, 1 known: the strangers' share is 6.
	mustAdmit("10.0.0.2", false)
	refused("10.0.0.3", false, RefusedTotal)
	mustAdmit("10.0.0.4", true)
	refused("10.0.0.4", true, RefusedTotal) // Total is 8
	// Releases make room.
	g.release(k1)
	g.release(kk)
	if in, known, _ := g.stats(); in != 6 || known != 1 {
		t.Fatalf("stats = %d in progress, %d known; want 6, 1", in, known)
	}
	// Tokens: 10.0.0.1 used 2 of 3.
	g.release(mustKey("10.0.0.1"))
	g.release(mustKey("10.0.0.1"))
	mustAdmit("10.0.0.1", false)
	g.release(mustKey("10.0.0.1"))
	refused("10.0.0.1", false, RefusedRate)
	now = now.Add(time.Second)
	mustAdmit("10.0.0.1", false)
	g.release(mustKey("10.0.0.1"))
	// Sources: the /64, 10.0.0.1 (idle, its tokens not full), 10.0.0.2,
	// 10.0.0.4 (known) are tracked. One more fits, the next does not until
	// 10.0.0.1's tokens are full again and it is forgotten.
	mustAdmit("10.0.0.5", false)
	refused("10.0.0.6", false, RefusedTotal)
	now = now.Add(3 * time.Second)
	mustAdmit("10.0.0.6", false)
	if _, _, n := g.stats(); n != 5 {
		t.Errorf("%d sources tracked after the sweep, want 5 (the /64, 10.0.0.2, .4, .5, .6)", n)
	}
	if _, ok := g.sources[mustKey("10.0.0.1")]; ok {
		t.Error("idle 10.0.0.1 with full tokens is still tracked")
	}
}

func mustKey(a string) sourceKey { return keyOf(netip.MustParseAddr(a), false) }
