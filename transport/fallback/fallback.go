// Package fallback dials a peer over the first of several transports that
// reaches it: QUIC first, say, then TLS over TCP for a peer behind a
// firewall that drops UDP, or an original node, which speaks TLS only
// (docs/protocol.md#choosing-a-transport).
//
// A transport that did not reach an address is tried last at that address
// for a while (Dialer.Remember), so a peer that never answers over UDP
// costs the wait once, not on every redial. A peer that answered and
// refused us (a wrong or untrusted certificate, a revoked one) is not
// tried again over the next transport: it would refuse us there too.
package fallback

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// DefaultRemember is how long a transport that failed at an address is
// tried last there.
const DefaultRemember = 10 * time.Minute

// maxRemembered bounds the addresses remembered; older ones are forgotten
// first when it is reached.
const maxRemembered = 4096

// Try is one transport of a Dialer.
type Try struct {
	// Name names the transport in errors ("quic", "tls").
	Name string
	// Dialer dials over it.
	Dialer transport.Dialer
	// Budget bounds a dial over it before the next transport is tried;
	// zero leaves the caller's context alone (the last transport's dial
	// gets whatever time is left).
	Budget time.Duration
}

// Dialer tries its transports in order. It is safe for concurrent use.
type Dialer struct {
	tries    []Try
	remember time.Duration
	now      func() time.Time

	// OnFallback, if not nil, is told of every transport that failed
	// where another is tried next, from the dialing goroutine (the
	// daemon logs it).
	OnFallback func(want wire.MAC, addr netip.AddrPort, failed, next string, err error)

	mu     sync.Mutex
	failed map[failure]time.Time // when a transport last failed at an address
}

type failure struct {
	try  int
	addr netip.AddrPort
}

var _ transport.Dialer = (*Dialer)(nil)

// New returns a dialer over tries, in order; remember zero means
// DefaultRemember.
func New(tries []Try, remember time.Duration) (*Dialer, error) {
	if len(tries) == 0 {
		return nil, errors.New("fallback: no transport to dial")
	}
	if remember == 0 {
		remember = DefaultRemember
	}
	return &Dialer{tries: tries, remember: remember, now: time.Now, failed: map[failure]time.Time{}}, nil
}

// Dial dials want at addr over each transport in turn until one links.
// The transports that failed at addr within Remember go last. It returns
// the first refusal by the peer itself at once (transport.ErrWrongPeer,
// ErrUntrusted, ErrNoMAC, ErrRevoked), else, when all fail, every
// transport's error.
func (d *Dialer) Dial(ctx context.Context, want wire.MAC, addr netip.AddrPort) (transport.Link, error) {
	var errs []error
	order := d.order(addr)
	for k, i := range order {
		t := d.tries[i]
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if t.Budget > 0 {
			dctx, cancel = context.WithTimeout(ctx, t.Budget)
		}
		l, err := t.Dialer.Dial(dctx, want, addr)
		cancel()
		if err == nil {
			d.forget(i, addr)
			return l, nil
		}
		if refusedByPeer(err) {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("over %s: %w", t.Name, err))
		d.note(i, addr)
		if ctx.Err() != nil {
			break
		}
		if k+1 < len(order) && d.OnFallback != nil {
			d.OnFallback(want, addr, t.Name, d.tries[order[k+1]].Name, err)
		}
	}
	return nil, fmt.Errorf("fallback: dial %s at %s: %w", want, addr, errors.Join(errs...))
}

// refusedByPeer reports whether err says the peer answered and refused
// the link for who it or we are.
func refusedByPeer(err error) bool {
	return errors.Is(err, transport.ErrWrongPeer) || errors.Is(err, transport.ErrUntrusted) ||
		errors.Is(err, transport.ErrNoMAC) || errors.Is(err, transport.ErrRevoked)
}

// order returns the indexes of the transports to try at addr: those that
// did not fail there lately first, in configured order.
func (d *Dialer) order(addr netip.AddrPort) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var good, bad []int
	for i := range d.tries {
		if at, ok := d.failed[failure{i, addr}]; ok && now.Sub(at) < d.remember {
			bad = append(bad, i)
		} else {
			good = append(good, i)
		}
	}
	return append(good, bad...)
}

func (d *Dialer) note(i int, addr netip.AddrPort) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if len(d.failed) >= maxRemembered {
		for k, at := range d.failed {
			if now.Sub(at) >= d.remember {
				delete(d.failed, k)
			}
		}
		for k := range d.failed { // still full: forget any
			if len(d.failed) < maxRemembered {
				break
			}
			delete(d.failed, k)
		}
	}
	d.failed[failure{i, addr}] = now
}

func (d *Dialer) forget(i int, addr netip.AddrPort) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.failed, failure{i, addr})
}
