package tlstransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/invpn/invpn/transport"
)

// maxPendingHandshakes bounds the incoming connections a listener
// handshakes at once; more are closed at once.
const maxPendingHandshakes = 64

// Listener accepts TLS links. One goroutine accepts TCP connections and
// each connection is handshaken in its own goroutine, bounded by
// Config.HandshakeTimeout, so a slow client delays no one else.
type Listener struct {
	cfg    Config
	tlsCfg *tls.Config
	ln     net.Listener
	addr   netip.AddrPort

	links   chan *link    // handshaken links waiting for Accept
	done    chan struct{} // closed by Close
	pending chan struct{} // one token per handshake in progress
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the accept loop and the handshakes

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
		cfg:     cfg,
		tlsCfg:  cfg.serverTLS(),
		ln:      ln,
		addr:    addrPort(ln.Addr()),
		links:   make(chan *link),
		done:    make(chan struct{}),
		pending: make(chan struct{}, maxPendingHandshakes),
		ctx:     ctx,
		cancel:  cancel,
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the bound address.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

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

// acceptLoop runs in its own goroutine until the listener is closed.
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
		select {
		case l.pending <- struct{}{}:
		default:
			c.Close()
			l.report(addrPort(c.RemoteAddr()), fmt.Errorf("tlstransport: %d handshakes in progress: connection dropped", maxPendingHandshakes))
			continue
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

// handshake runs in its own goroutine per incoming connection and hands a
// verified link to Accept.
func (l *Listener) handshake(c net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.pending }()
	remote := addrPort(c.RemoteAddr())
	lk, err := l.serverHandshake(c)
	if err != nil {
		c.Close()
		l.report(remote, fmt.Errorf("tlstransport: incoming from %s: %w", remote, err))
		return
	}
	select {
	case l.links <- lk:
	case <-l.done:
		lk.Close()
	}
}

func (l *Listener) serverHandshake(c net.Conn) (*link, error) {
	if err := tuneTCP(c, l.cfg.UserTimeout); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	tc := tls.Server(c, l.tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return newLink(tc, false)
}

func (l *Listener) report(remote netip.AddrPort, err error) {
	if l.cfg.HandshakeError != nil {
		l.cfg.HandshakeError(remote, err)
	}
}
