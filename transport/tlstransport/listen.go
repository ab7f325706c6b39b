package tlstransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invpn/invpn/transport"
)

// Listener accepts TLS links. One goroutine accepts TCP connections and
// admits each into the handshake (Admission) or closes it at once; it
// never waits for a handshake. Each admitted connection is handshaken in
// its own goroutine: its first TLS record, the ClientHello, must arrive
// within Config.HelloTimeout and the whole handshake end within
// Config.HandshakeTimeout, so a silent or slow client holds its slot for
// seconds, and a source holds only a few slots.
type Listener struct {
	cfg    Config
	tlsCfg atomic.Pointer[tls.Config] // swapped by SetIdentity
	ln     net.Listener
	addr   netip.AddrPort
	gate   *gate
	known  atomic.Pointer[func(netip.Addr) bool]

	refused [NumRefusals]atomic.Uint64

	links  chan *link    // handshaken links waiting for Accept
	done   chan struct{} // closed by Close
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and the handshakes

	closeOnce sync.Once
	closeErr  error
}

var _ transport.Listener = (*Listener)(nil)

// Listen listens on the TCP address addr ("127.0.0.1:41744", "[::1]:0")
// and accepts members of the group configured in cfg. An IPv6 address is
// listened on for IPv6 only, so that "0.0.0.0" and "::" on the same port
// can be two listeners side by side (as `listen = 0.0.0.0, ::` asks).
func Listen(cfg Config, addr string) (*Listener, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	network := "tcp"
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		network = "tcp4"
		if ap.Addr().Is6() && !ap.Addr().Is4In6() {
			network = "tcp6" // sets IPV6_V6ONLY
		}
	}
	lc := net.ListenConfig{KeepAlive: cfg.keepAlivePeriod(), KeepAliveConfig: cfg.KeepAlive}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("tlstransport: listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		cfg:    cfg,
		ln:     ln,
		addr:   addrPort(ln.Addr()),
		gate:   newGate(cfg.Admission, time.Now),
		links:  make(chan *link),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	if cfg.Known != nil {
		l.known.Store(&cfg.Known)
	}
	l.wg.Add(1)
	l.tlsCfg.Store(cfg.serverTLS())
	go l.acceptLoop()
	return l, nil
}

// SetIdentity gives the connections accepted from now on the certificate,
// key and CA pool of cfg (a reload), without closing the listener: no
// connection is refused while it changes. The revocation check
// (Config.Revoked) is replaced too. Links already up, and
// handshakes already under way, keep the identity they began with. The
// rest of cfg (timeouts, admission) is not changed.
func (l *Listener) SetIdentity(cfg Config) error {
	checked, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	next := l.cfg
	next.Cert, next.CAs, next.Revoked = checked.Cert, checked.CAs, checked.Revoked
	l.tlsCfg.Store(next.serverTLS())
	return nil
}

// Addr returns the bound address.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// SetKnown replaces Config.Known: from now on, known reports whether an
// address is a known peer's. It is called from the accept loop for every
// incoming connection, so it must be fast and safe for concurrent use.
// nil means no address is known.
func (l *Listener) SetKnown(known func(netip.Addr) bool) {
	if known == nil {
		l.known.Store(nil)
		return
	}
	l.known.Store(&known)
}

// AdmissionStats returns the handshakes in progress and the refusals
// counted since Listen.
func (l *Listener) AdmissionStats() AdmissionStats {
	var s AdmissionStats
	s.InProgress, s.Known, s.Sources = l.gate.stats()
	for i := range s.Refused {
		s.Refused[i] = l.refused[i].Load()
	}
	return s
}

// Accept returns the next incoming link that passed the handshake and the
// certificate checks.
func (l *Listener) Accept(ctx context.Context) (transport.Link, error) {
	select {
	case lk := <-l.links:
		return lk, nil
	case <-l.done:
		return nil, fmt.Errorf("tlstransport: accept on %s: %w", l.addr, net.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("tlstransport: accept on %s: %w", l.addr, ctx.Err())
	}
}

// Close stops listening, aborts handshakes in progress, closes links not
// yet accepted and waits for the listener's goroutines to end.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.cancel()
		if err := l.ln.Close(); err != nil {
			l.closeErr = fmt.Errorf("tlstransport: close listener on %s: %w", l.addr, err)
		}
		l.wg.Wait()
	})
	return l.closeErr
}

// isKnown asks Config.Known (or SetKnown's function) about a.
func (l *Listener) isKnown(a netip.Addr) bool {
	f := l.known.Load()
	return f != nil && (*f)(a)
}

// acceptLoop runs in its own goroutine until the listener is closed. It
// does nothing that waits on a client: admission is a map lookup under a
// mutex, and a refused connection is reset at once.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: wait a little rather
			// than spin, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.report(netip.AddrPort{}, fmt.Errorf("tlstransport: accept on %s: %w", l.addr, err))
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		remote := addrPort(c.RemoteAddr())
		known := l.isKnown(remote.Addr())
		key, why, ok := l.gate.admit(remote.Addr(), known)
		if !ok {
			reset(c)
			l.refuse(remote, why, fmt.Errorf("tlstransport: incoming from %s: %s", remote, admissionText(why, known)))
			continue
		}
		l.wg.Add(1)
		go l.handshake(c, remote, key)
	}
}

// admissionText says what an admission refusal means, for the log.
func admissionText(why Refusal, known bool) string {
	who := "a stranger"
	if known {
		who = "a known address"
	}
	switch why {
	case RefusedPerSource:
		return "too many handshakes in progress from " + who
	case RefusedRate:
		return "handshakes started too fast by " + who
	}
	return "no handshake slot left for " + who
}

// handshake runs in its own goroutine per admitted connection and hands a
// verified link to Accept. The slot is given back when the handshake
// ends, before the link waits for Accept.
func (l *Listener) handshake(c net.Conn, remote netip.AddrPort, key sourceKey) {
	defer l.wg.Done()
	lk, why, err := l.serverHandshake(c)
	l.gate.release(key)
	if err != nil {
		if why == RefusedHelloTimeout || why == RefusedNotTLS {
			reset(c) // nothing of TLS was said: no alert, no TIME_WAIT
		} else {
			c.Close()
		}
		if l.ctx.Err() == nil { // not the listener closing
			l.refuse(remote, why, fmt.Errorf("tlstransport: incoming from %s: %w", remote, err))
		}
		return
	}
	select {
	case l.links <- lk:
	case <-l.done:
		lk.Close()
	}
}

// serverHandshake reads the ClientHello record within the hello timeout,
// then runs the TLS handshake with what is left of the handshake timeout.
func (l *Listener) serverHandshake(c net.Conn) (*link, Refusal, error) {
	if err := tuneTCP(c, l.cfg.UserTimeout); err != nil {
		return nil, RefusedHandshake, err
	}
	start := time.Now()
	deadline := start.Add(l.cfg.HandshakeTimeout)
	helloBy := start.Add(min(l.cfg.HelloTimeout, l.cfg.HandshakeTimeout))
	// Until the hello is read, Close aborts the read by its deadline;
	// after, through the handshake's context.
	stop := context.AfterFunc(l.ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	hello, why, err := readHello(c, helloBy)
	if !stop() {
		return nil, RefusedHandshake, net.ErrClosed
	}
	if err != nil {
		return nil, why, err
	}
	ctx, cancel := context.WithDeadline(l.ctx, deadline)
	defer cancel()
	tc := tls.Server(&helloConn{Conn: withRawIO(c), pre: hello}, l.tlsCfg.Load())
	if err := tc.HandshakeContext(ctx); err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
			why = RefusedHandshakeTimeout
		case errors.Is(err, transport.ErrUntrusted) || errors.Is(err, transport.ErrNoMAC) || errors.Is(err, transport.ErrRevoked) || clientCertRefused(err):
			why = RefusedCertificate
		default:
			why = RefusedHandshake
		}
		return nil, why, fmt.Errorf("handshake: %w", err)
	}
	lk, err := newLink(tc, c, false)
	if err != nil {
		return nil, RefusedCertificate, err
	}
	return lk, 0, nil
}

// clientCertRefused reports whether the handshake failed on the client's
// certificate in a check of crypto/tls itself, which returns no sentinel:
// none sent, or a signature its key did not make (a wrong key).
func clientCertRefused(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "client didn't provide a certificate") ||
		strings.Contains(msg, "invalid signature by the client certificate")
}

// TLS record framing, for the first record (RFC 8446 section 5.1).
const (
	recordHeaderLen     = 5
	recordTypeHandshake = 0x16
	handshakeClientHelo = 0x01
	maxPlaintext        = 1 << 14
)

// readHello reads the connection's first TLS record, which must be a
// handshake record that starts a ClientHello, by deadline. It returns the
// record to be replayed to crypto/tls.
func readHello(c net.Conn, deadline time.Time) ([]byte, Refusal, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, RefusedHandshake, err
	}
	var hdr [recordHeaderLen]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, helloReadRefusal(err), fmt.Errorf("no ClientHello: %w", err)
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	if hdr[0] != recordTypeHandshake || hdr[1] != 3 || n == 0 || n > maxPlaintext {
		return nil, RefusedNotTLS, fmt.Errorf("first bytes % x are not a TLS handshake record", hdr)
	}
	rec := make([]byte, recordHeaderLen+n)
	copy(rec, hdr[:])
	if _, err := io.ReadFull(c, rec[recordHeaderLen:]); err != nil {
		return nil, helloReadRefusal(err), fmt.Errorf("ClientHello record of %d bytes: %w", n, err)
	}
	if rec[recordHeaderLen] != handshakeClientHelo {
		return nil, RefusedNotTLS, fmt.Errorf("first handshake message is type %d, not a ClientHello", rec[recordHeaderLen])
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, RefusedHandshake, err
	}
	return rec, 0, nil
}

func helloReadRefusal(err error) Refusal {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return RefusedHelloTimeout
	}
	return RefusedNotTLS
}

// helloConn is an accepted connection whose first TLS record the listener
// has read already: Read returns that record first.
type helloConn struct {
	net.Conn
	pre []byte // owned by the TLS reader
}

func (c *helloConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil
		}
		return n, nil
	}
	return c.Conn.Read(b)
}

// reset closes c with a TCP reset: a refused stranger leaves no TIME_WAIT
// state behind.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// refuse counts a refused connection and reports it.
func (l *Listener) refuse(remote netip.AddrPort, why Refusal, err error) {
	l.refused[why].Add(1)
	l.report(remote, &RefusedError{Reason: why, Err: err})
}

func (l *Listener) report(remote netip.AddrPort, err error) {
	if l.cfg.HandshakeError != nil {
		l.cfg.HandshakeError(remote, err)
	}
}
