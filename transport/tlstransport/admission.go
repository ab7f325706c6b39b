package tlstransport

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Admission limits the incoming connections a listener takes into the TLS
// handshake. Nobody is authenticated before the handshake ends, so these
// limits are what keeps one stranger, or a few, from holding every
// handshake slot: each source gets a few slots, slots are held for at
// most Config.HandshakeTimeout (the ClientHello must arrive within
// Config.HelloTimeout), and part of the slots are reserved for the
// addresses the daemon knows as peers (Config.Known). docs/security.md
// gives the numbers and what they do and do not stop.
//
// A source is an IPv4 address, or the /64 of an IPv6 address. A known
// address is its own source, apart from the strangers of its /64. A zero
// field selects the default below.
type Admission struct {
	// Total is the most handshakes in progress at once, from all sources
	// together (default DefaultTotal).
	Total int
	// Reserved is how many of Total only known addresses may use: sources
	// that are not known are refused once Total−Reserved of their
	// handshakes are in progress (default DefaultReserved, or half of a
	// Total below 128). Negative: none.
	Reserved int
	// PerSource is the most handshakes in progress from one source that
	// is not known (default DefaultPerSource).
	PerSource int
	// PerKnownSource is the most handshakes in progress from one known
	// address (default DefaultPerKnownSource).
	PerKnownSource int
	// Rate is how many handshakes per second one source that is not known
	// may start, after a first Burst (defaults DefaultRate, DefaultBurst):
	// a stranger that reconnects at once whenever it is refused gets a few
	// handshakes a second, not a CPU. Negative Rate: no limit. Known
	// addresses have none.
	Rate  float64
	Burst int
	// Sources bounds the sources whose state is kept at once (default
	// DefaultSources); a new source that does not fit is refused until
	// old entries expire.
	Sources int
}

// Defaults of the zero fields of [Admission].
const (
	DefaultTotal          = 512
	DefaultReserved       = 64
	DefaultPerSource      = 4
	DefaultPerKnownSource = 16
	DefaultRate           = 10.0
	DefaultBurst          = 20
	DefaultSources        = 4096
)

func (a Admission) withDefaults() Admission {
	if a.Total <= 0 {
		a.Total = DefaultTotal
	}
	switch {
	case a.Reserved == 0:
		a.Reserved = min(DefaultReserved, a.Total/2)
	case a.Reserved < 0:
		a.Reserved = 0
	}
	a.Reserved = min(a.Reserved, a.Total-1)
	if a.PerSource <= 0 {
		a.PerSource = DefaultPerSource
	}
	if a.PerKnownSource <= 0 {
		a.PerKnownSource = DefaultPerKnownSource
	}
	if a.Rate == 0 {
		a.Rate = DefaultRate
	}
	if a.Burst <= 0 {
		a.Burst = DefaultBurst
	}
	if a.Sources <= 0 {
		a.Sources = DefaultSources
	}
	return a
}

// Refusal says why a listener closed an incoming connection before it
// became a link.
type Refusal uint8

// The refusals, in the order of a connection's life: admission (before
// anything is read), the ClientHello, the handshake.
const (
	// RefusedPerSource: the source already has its most handshakes in
	// progress (Admission.PerSource or PerKnownSource).
	RefusedPerSource Refusal = iota
	// RefusedTotal: every slot open to the source is taken (Admission.Total,
	// less Reserved for a stranger), or no room is left to track a new
	// source (Admission.Sources).
	RefusedTotal
	// RefusedRate: the source started handshakes faster than
	// Admission.Rate allows.
	RefusedRate
	// RefusedHelloTimeout: no complete first TLS record within
	// Config.HelloTimeout.
	RefusedHelloTimeout
	// RefusedNotTLS: the first bytes were not a TLS ClientHello, or the
	// client closed before sending one.
	RefusedNotTLS
	// RefusedHandshakeTimeout: the handshake did not end within
	// Config.HandshakeTimeout.
	RefusedHandshakeTimeout
	// RefusedHandshake: the TLS handshake failed (a protocol error, an
	// alert, a connection closed mid-way).
	RefusedHandshake
	// RefusedCertificate: the handshake ended but the certificate was
	// refused: none, not of the group's CA (expired, not yet valid, wrong
	// usage, foreign), or a Common Name that is not a MAC.
	RefusedCertificate

	// NumRefusals is the number of refusals; they are 0 to NumRefusals−1.
	NumRefusals = int(iota)
)

var refusalNames = [NumRefusals]string{"per_source", "total", "rate", "hello_timeout", "not_tls",
	"handshake_timeout", "handshake", "certificate"}

// String returns the refusal's name, a Prometheus label value such as
// "per_source".
func (r Refusal) String() string {
	if int(r) < NumRefusals {
		return refusalNames[r]
	}
	return fmt.Sprintf("refusal(%d)", uint8(r))
}

// Refusals returns every refusal in order.
func Refusals() []Refusal {
	rs := make([]Refusal, NumRefusals)
	for i := range rs {
		rs[i] = Refusal(i)
	}
	return rs
}

// RefusedError is the error Config.HandshakeError gets for an incoming
// connection the listener closed: why, and the underlying error.
type RefusedError struct {
	Reason Refusal
	Err    error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused (%s): %v", e.Reason, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// AdmissionStats is a listener's admission state and counters.
type AdmissionStats struct {
	// InProgress is the handshakes in progress now; Known of them from
	// known addresses.
	InProgress, Known int
	// Sources is the number of sources whose state is kept.
	Sources int
	// Refused counts the connections closed before they became links, by
	// Refusal.
	Refused [NumRefusals]uint64
}

// sourceKey names a source: a known address by itself, a stranger by its
// IPv4 address or IPv6 /64.
type sourceKey struct {
	addr  netip.Addr
	known bool
}

func keyOf(a netip.Addr, known bool) sourceKey {
	a = a.Unmap().WithZone("")
	if !known && a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return sourceKey{addr: a, known: known}
}

// source is the state of one source.
type source struct {
	pending int       // handshakes in progress
	tokens  float64   // handshakes it may start now (strangers)
	at      time.Time // when tokens was last brought up to date
}

// gate admits connections into the handshake. It is safe for concurrent
// use: the accept loop admits, the handshake goroutines release.
type gate struct {
	cfg Admission
	now func() time.Time

	mu        sync.Mutex
	total     int // handshakes in progress
	strangers int // of which from sources not known
	sources   map[sourceKey]*source
	swept     time.Time // the last sweep of idle sources
}

func newGate(cfg Admission, now func() time.Time) *gate {
	return &gate{cfg: cfg.withDefaults(), now: now, sources: map[sourceKey]*source{}}
}

// sweepEvery is how often admit drops the state of idle sources.
const sweepEvery = time.Second

// admit takes a handshake slot for a connection from a, or says why not.
// A taken slot is given back with release(key).
func (g *gate) admit(a netip.Addr, known bool) (sourceKey, Refusal, bool) {
	k := keyOf(a, known)
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.swept) >= sweepEvery {
		g.sweep(now)
	}
	s := g.sources[k]
	if s != nil && !known {
		g.refill(s, now)
	}
	switch {
	case g.total >= g.cfg.Total, !known && g.strangers >= g.cfg.Total-g.cfg.Reserved:
		return k, RefusedTotal, false
	case s != nil && known && s.pending >= g.cfg.PerKnownSource, s != nil && !known && s.pending >= g.cfg.PerSource:
		return k, RefusedPerSource, false
	case s != nil && !known && g.cfg.Rate > 0 && s.tokens < 1:
		return k, RefusedRate, false
	}
	if s == nil {
		if len(g.sources) >= g.cfg.Sources {
			g.sweep(now)
			if len(g.sources) >= g.cfg.Sources {
				return k, RefusedTotal, false
			}
		}
		s = &source{tokens: float64(g.cfg.Burst), at: now}
		g.sources[k] = s
	}
	s.pending++
	g.total++
	if !known {
		s.tokens--
		g.strangers++
	}
	return k, 0, true
}

// release gives back a slot admit took.
func (g *gate) release(k sourceKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sources[k]
	if s == nil || s.pending == 0 {
		panic(fmt.Sprintf("tlstransport: release of %v without a slot", k.addr))
	}
	s.pending--
	g.total--
	if !k.known {
		g.strangers--
	}
	if s.pending == 0 && (k.known || g.cfg.Rate < 0) {
		delete(g.sources, k) // nothing left to remember
	}
}

// refill brings a stranger's tokens up to date.
func (g *gate) refill(s *source, now time.Time) {
	if g.cfg.Rate < 0 {
		return
	}
	if d := now.Sub(s.at); d > 0 {
		s.tokens = min(float64(g.cfg.Burst), s.tokens+d.Seconds()*g.cfg.Rate)
	}
	s.at = now
}

// sweep drops the sources with nothing in progress whose tokens are full
// again: a new entry would be the same. Runs with g.mu held.
func (g *gate) sweep(now time.Time) {
	g.swept = now
	for k, s := range g.sources {
		if s.pending > 0 {
			continue
		}
		g.refill(s, now)
		if k.known || g.cfg.Rate < 0 || s.tokens >= float64(g.cfg.Burst) {
			delete(g.sources, k)
		}
	}
}

// stats returns the gate's state.
func (g *gate) stats() (inProgress, known, sources int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total, g.total - g.strangers, len(g.sources)
}

// Gate is an admission gate with the limits of an [Admission], for a
// listener of another transport (quictransport) that takes strangers into
// its handshakes by the same rules as this package's Listener. It is safe
// for concurrent use.
type Gate struct{ g *gate }

// NewGate returns a gate with the limits of a (zero fields: the defaults).
func NewGate(a Admission) *Gate { return &Gate{g: newGate(a, time.Now)} }

// Admit takes a handshake from a into the gate, known saying whether a is
// a known peer's address. When ok, release must be called once when the
// handshake ends, whichever way; otherwise why says which limit refused it.
func (g *Gate) Admit(a netip.Addr, known bool) (release func(), why Refusal, ok bool) {
	key, why, ok := g.g.admit(a, known)
	if !ok {
		return nil, why, false
	}
	var once sync.Once
	return func() { once.Do(func() { g.g.release(key) }) }, 0, true
}

// Stats returns the handshakes in progress, those of known addresses, and
// the sources tracked.
func (g *Gate) Stats() (inProgress, known, sources int) { return g.g.stats() }
