package quictransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
)

// Listener accepts QUIC links on one UDP socket. The accepted links share
// the socket, so it stays open after Close until the last of them ends.
//
// Strangers are taken into handshakes by tlstransport's admission limits
// (Config.Identity.Admission): a connection attempt beyond them is
// refused before any cryptography. QUIC's address validation (Retry) is
// asked of a source that is not known once half the handshake slots are
// taken, so a spoofed flood cannot fill them.
type Listener struct {
	cfg    Config
	tlsCfg atomic.Pointer[tls.Config] // the identity; swapped by SetIdentity
	udp    *net.UDPConn               // the socket; the transport does not close it
	tr     *quic.Transport
	ln     *quic.Listener
	addr   netip.AddrPort
	gate   *tlstransport.Gate
	known  atomic.Pointer[func(netip.Addr) bool]

	refused [tlstransport.NumRefusals]atomic.Uint64

	links  chan *link
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and the handshakes

	mu      sync.Mutex
	open    int  // accepted links not yet finished
	stopped bool // Close was called

	closeOnce sync.Once
	closeErr  error
}

var _ transport.Listener = (*Listener)(nil)

type releaseKey struct{}

// Listen listens on the UDP address addr ("127.0.0.1:41744", "[::1]:0").
// An IPv6 address is listened on for IPv6 only, as tlstransport does.
func Listen(cfg Config, addr string) (*Listener, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	network := "udp"
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		network = "udp4"
		if ap.Addr().Is6() && !ap.Addr().Is4In6() {
			network = "udp6"
		}
	}
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		return nil, fmt.Errorf("quictransport: listen on %s: %w", addr, err)
	}
	uc, err := net.ListenUDP(network, ua)
	if err != nil {
		return nil, fmt.Errorf("quictransport: listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		cfg:    cfg,
		udp:    uc,
		addr:   addrPort(uc.LocalAddr()),
		gate:   tlstransport.NewGate(cfg.Identity.Admission),
		links:  make(chan *link),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	if cfg.Known != nil {
		l.known.Store(&cfg.Known)
	}
	l.tlsCfg.Store(l.serverTLS(cfg))
	l.tr = &quic.Transport{
		Conn:                uc,
		ConnContext:         l.admit,
		VerifySourceAddress: l.validate,
	}
	// crypto/tls asks GetConfigForClient per handshake: the identity of
	// the moment, and the client's address for the refusal report.
	outer := &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return l.connTLS(hello), nil
		},
	}
	l.ln, err = l.tr.Listen(outer, cfg.quicConfig())
	if err != nil {
		l.closeSocket()
		cancel()
		return nil, fmt.Errorf("quictransport: listen on %s: %w", addr, err)
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// serverTLS is the identity of cfg for QUIC: TLS 1.3 only.
func (l *Listener) serverTLS(cfg Config) *tls.Config {
	t := cfg.Identity.ServerTLS()
	t.MinVersion = tls.VersionTLS13
	return t
}

// connTLS returns the configuration of one handshake: the current
// identity, with refused certificates reported with the client's address.
func (l *Listener) connTLS(hello *tls.ClientHelloInfo) *tls.Config {
	t := l.tlsCfg.Load().Clone()
	var remote netip.AddrPort
	if hello.Conn != nil {
		remote = addrPort(hello.Conn.RemoteAddr())
	}
	verify := t.VerifyConnection
	t.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verify(cs)
		if err != nil && l.ctx.Err() == nil {
			l.refuse(remote, tlstransport.RefusedCertificate, fmt.Errorf("quictransport: incoming from %s: %w", remote, err))
		}
		return err
	}
	return t
}

// SetIdentity gives the handshakes from now on the certificate, key, CA
// pool and revocation check of cfg.Identity, without closing the
// listener. Links already up keep theirs.
func (l *Listener) SetIdentity(cfg Config) error {
	checked, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	next := l.cfg
	next.Identity.Cert, next.Identity.CAs, next.Identity.Revoked = checked.Identity.Cert, checked.Identity.CAs, checked.Identity.Revoked
	l.tlsCfg.Store(l.serverTLS(next))
	return nil
}

// Addr returns the bound UDP address.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// SetKnown replaces Config.Known.
func (l *Listener) SetKnown(known func(netip.Addr) bool) {
	if known == nil {
		l.known.Store(nil)
		return
	}
	l.known.Store(&known)
}

// AdmissionStats returns the handshakes in progress and the refusals
// counted since Listen.
func (l *Listener) AdmissionStats() tlstransport.AdmissionStats {
	var s tlstransport.AdmissionStats
	s.InProgress, s.Known, s.Sources = l.gate.Stats()
	for i := range s.Refused {
		s.Refused[i] = l.refused[i].Load()
	}
	return s
}

func (l *Listener) isKnown(a netip.Addr) bool {
	f := l.known.Load()
	return f != nil && (*f)(a)
}

// validate is QUIC's VerifySourceAddress: a Retry for a stranger once
// half the handshake slots are taken.
func (l *Listener) validate(a net.Addr) bool {
	ap := addrPort(a)
	if l.isKnown(ap.Addr()) {
		return false
	}
	inProgress, _, _ := l.gate.Stats()
	total := l.cfg.Identity.Admission.Total
	if total <= 0 {
		total = tlstransport.DefaultTotal
	}
	return inProgress >= total/2
}

// admit is QUIC's ConnContext: it takes the connection into a handshake
// slot or refuses it before any cryptography. The slot is given back
// when the link is accepted or the attempt fails.
func (l *Listener) admit(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
	remote := addrPort(ci.RemoteAddr)
	known := l.isKnown(remote.Addr())
	release, why, ok := l.gate.Admit(remote.Addr(), known)
	if !ok {
		err := fmt.Errorf("quictransport: incoming from %s: refused by admission (%v)", remote, why)
		l.refuse(remote, why, err)
		return nil, err
	}
	context.AfterFunc(ctx, release)
	return context.WithValue(ctx, releaseKey{}, release), nil
}

// Accept returns the next incoming link whose handshake and stream are
// complete.
func (l *Listener) Accept(ctx context.Context) (transport.Link, error) {
	select {
	case lk := <-l.links:
		return lk, nil
	case <-l.done:
		return nil, fmt.Errorf("quictransport: accept on %s: %w", l.addr, net.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("quictransport: accept on %s: %w", l.addr, ctx.Err())
	}
}

// Close stops listening, aborts handshakes in progress and closes links
// not yet accepted. Links already accepted stay up; the socket closes
// when the last of them has ended.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.cancel()
		if err := l.ln.Close(); err != nil {
			l.closeErr = fmt.Errorf("quictransport: close listener on %s: %w", l.addr, err)
		}
		l.wg.Wait()
		l.mu.Lock()
		l.stopped = true
		idle := l.open == 0
		l.mu.Unlock()
		if idle {
			l.closeSocket()
		}
	})
	return l.closeErr
}

// linkEnded is called when an accepted link has finished.
func (l *Listener) linkEnded() {
	l.mu.Lock()
	l.open--
	last := l.stopped && l.open == 0
	l.mu.Unlock()
	if last {
		l.closeSocket()
	}
}

// closeSocket closes the transport and its socket.
func (l *Listener) closeSocket() {
	l.tr.Close()
	l.udp.Close()
}

// acceptLoop hands each handshaken connection to a goroutine that waits
// for its stream.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		conn, err := l.ln.Accept(l.ctx)
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, quic.ErrServerClosed) {
				return
			}
			l.report(netip.AddrPort{}, fmt.Errorf("quictransport: accept on %s: %w", l.addr, err))
			continue
		}
		l.wg.Add(1)
		go l.openStream(conn)
	}
}

// openStream waits, within the handshake timeout, for the stream the
// dialer opens and its version byte, and hands the link to Accept.
func (l *Listener) openStream(conn *quic.Conn) {
	defer l.wg.Done()
	remote := addrPort(conn.RemoteAddr())
	if release, ok := conn.Context().Value(releaseKey{}).(func()); ok {
		defer release()
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	stream, err := conn.AcceptStream(ctx)
	if err == nil {
		_ = stream.SetReadDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
		var v [1]byte
		if _, err = io.ReadFull(stream, v[:]); err == nil && v[0] != streamVersion {
			err = fmt.Errorf("stream version %d, want %d", v[0], streamVersion)
		}
		_ = stream.SetReadDeadline(time.Time{})
	}
	if err != nil {
		closeConn(conn, "no stream")
		if l.ctx.Err() == nil {
			why := tlstransport.RefusedHandshake
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) {
				why = tlstransport.RefusedHandshakeTimeout
			}
			l.refuse(remote, why, fmt.Errorf("quictransport: incoming from %s: stream: %w", remote, err))
		}
		return
	}
	lk, err := newLink(conn, stream, false)
	if err != nil {
		closeConn(conn, "bad certificate")
		l.refuse(remote, tlstransport.RefusedCertificate, fmt.Errorf("quictransport: incoming from %s: %w", remote, err))
		return
	}
	l.mu.Lock()
	l.open++
	l.mu.Unlock()
	lk.onEnd = l.linkEnded
	select {
	case l.links <- lk:
	case <-l.done:
		lk.Close()
	}
}

// refuse counts a refused connection and reports it.
func (l *Listener) refuse(remote netip.AddrPort, why tlstransport.Refusal, err error) {
	l.refused[why].Add(1)
	l.report(remote, &tlstransport.RefusedError{Reason: why, Err: err})
}

func (l *Listener) report(remote netip.AddrPort, err error) {
	if l.cfg.HandshakeError != nil {
		l.cfg.HandshakeError(remote, err)
	}
}
