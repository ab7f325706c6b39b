package transporttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// ErrRefused means no listener is bound to the dialed address.
var ErrRefused = errors.New("connection refused")

// firstEphemeralPort is the first source port a Network hands to a dialer,
// and the first port it binds for a listener that asks for port 0.
const firstEphemeralPort = 49152

// Network is an in-memory network on which listeners bind addresses and
// dialers reach them. Dials complete at once: an accepted link waits in its
// listener's backlog, which is unbounded, until Accept takes it. The zero
// value is not usable; call [NewNetwork].
type Network struct {
	mu        sync.Mutex
	listeners map[netip.AddrPort]*Listener
	nextPort  uint16
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{listeners: make(map[netip.AddrPort]*Listener), nextPort: firstEphemeralPort}
}

// ephemeralPort returns an unused port number. Callers hold n.mu.
func (n *Network) ephemeralPort() uint16 {
	p := n.nextPort
	n.nextPort++
	if n.nextPort == 0 {
		n.nextPort = firstEphemeralPort
	}
	return p
}

// Listen binds a listener for the member with MAC mac at addr. A port of 0
// picks a free port; read it back with Addr. Links accepted by the listener
// are extended when both it and the dialer are.
func (n *Network) Listen(mac wire.MAC, addr netip.AddrPort, extended bool) (*Listener, error) {
	addr = unmap(addr)
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr.Port() == 0 {
		for {
			a := netip.AddrPortFrom(addr.Addr(), n.ephemeralPort())
			if n.listeners[a] == nil {
				addr = a
				break
			}
		}
	}
	if n.listeners[addr] != nil {
		return nil, fmt.Errorf("transporttest: listen on %s: address already in use", addr)
	}
	l := &Listener{
		net: n, mac: mac, addr: addr, extended: extended,
		ready: make(chan struct{}, 1), done: make(chan struct{}),
	}
	n.listeners[addr] = l
	return l, nil
}

// Dialer returns a dialer for the member with MAC mac whose links come from
// address src (what the listening end sees as RemoteAddr, with a fresh port
// per link).
func (n *Network) Dialer(mac wire.MAC, src netip.Addr, extended bool) *Dialer {
	return &Dialer{net: n, mac: mac, src: src.Unmap(), extended: extended}
}

// Dialer dials listeners of one [Network] as one member.
type Dialer struct {
	net      *Network
	mac      wire.MAC
	src      netip.Addr
	extended bool
}

var _ transport.Dialer = (*Dialer)(nil)

// Dial connects to the listener at addr. It fails with an error wrapping
// [ErrRefused] when nothing listens there, and with one wrapping
// transport.ErrWrongPeer when the listener's member is not want; in that
// case the listener sees nothing, as with a TLS handshake the dialer aborts.
func (d *Dialer) Dial(ctx context.Context, want wire.MAC, addr netip.AddrPort) (transport.Link, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transporttest: dial %s at %s: %w", want, addr, err)
	}
	addr = unmap(addr)
	d.net.mu.Lock()
	l := d.net.listeners[addr]
	var src netip.AddrPort
	if l != nil {
		src = netip.AddrPortFrom(d.src, d.net.ephemeralPort())
	}
	d.net.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("transporttest: dial %s at %s: %w", want, addr, ErrRefused)
	}
	if l.mac != want {
		return nil, fmt.Errorf("transporttest: dial %s at %s: certificate names %s: %w",
			want, addr, l.mac, transport.ErrWrongPeer)
	}
	dl, ll := pipe(endpoint{mac: d.mac, addr: src}, endpoint{mac: l.mac, addr: addr}, d.extended && l.extended)
	if !l.enqueue(ll) {
		return nil, fmt.Errorf("transporttest: dial %s at %s: %w", want, addr, ErrRefused)
	}
	return dl, nil
}

// Listener is a listening address on a [Network].
type Listener struct {
	net      *Network
	mac      wire.MAC
	addr     netip.AddrPort
	extended bool
	ready    chan struct{} // holds a token when pending may be non-empty
	done     chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	pending []*link
}

var _ transport.Listener = (*Listener)(nil)

// enqueue adds an incoming link to the backlog. It reports false when the
// listener is closed.
func (l *Listener) enqueue(ll *link) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending = append(l.pending, ll)
	select {
	case l.ready <- struct{}{}:
	default:
	}
	return true
}

// Accept returns the next incoming link.
func (l *Listener) Accept(ctx context.Context) (transport.Link, error) {
	for {
		l.mu.Lock()
		switch {
		case l.closed:
			l.mu.Unlock()
			return nil, fmt.Errorf("transporttest: accept on %s: %w", l.addr, net.ErrClosed)
		case len(l.pending) > 0:
			ll := l.pending[0]
			l.pending[0] = nil
			l.pending = l.pending[1:]
			if len(l.pending) > 0 {
				select {
				case l.ready <- struct{}{}:
				default:
				}
			}
			l.mu.Unlock()
			return ll, nil
		}
		l.mu.Unlock()
		select {
		case <-l.ready:
		case <-l.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("transporttest: accept on %s: %w", l.addr, ctx.Err())
		}
	}
}

// Addr returns the bound address.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// Close unbinds the address, closes the links not yet accepted and
// unblocks Accept.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	pending := l.pending
	l.pending = nil
	close(l.done)
	l.mu.Unlock()
	for _, ll := range pending {
		ll.Close()
	}
	l.net.mu.Lock()
	if l.net.listeners[l.addr] == l {
		delete(l.net.listeners, l.addr)
	}
	l.net.mu.Unlock()
	return nil
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
