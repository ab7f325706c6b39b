package daemon

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/quictransport"
	"github.com/invpn/invpn/transport/tlstransport"
)

// Admission before authentication (docs/security.md#admission): the
// listeners reserve handshake slots for the addresses the daemon knows as
// peers, and the daemon counts and logs what they refuse.

// guardedListener is a listener that admits incoming connections before
// they authenticate, as tlstransport.Listener does: the daemon tells it
// which addresses are known and reads what it refused.
type guardedListener interface {
	transport.Listener
	SetKnown(func(netip.Addr) bool)
	AdmissionStats() tlstransport.AdmissionStats
}

var (
	_ guardedListener = (*tlstransport.Listener)(nil)
	_ guardedListener = (*quictransport.Listener)(nil)
)

// knownAddrs is the set of addresses the daemon knows as peers': those of
// the peer cache, the seeds, the dials in progress and the links that are
// up. The loop adds and removes (each address counted once per reason it
// is known for); the listeners' accept loops ask, concurrently.
type knownAddrs struct {
	mu sync.RWMutex
	n  map[netip.Addr]int
}

func newKnownAddrs() *knownAddrs { return &knownAddrs{n: map[netip.Addr]int{}} }

func knownKey(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

func (k *knownAddrs) add(a netip.Addr) {
	if k == nil || !a.IsValid() {
		return
	}
	k.mu.Lock()
	k.n[knownKey(a)]++
	k.mu.Unlock()
}

func (k *knownAddrs) remove(a netip.Addr) {
	if k == nil || !a.IsValid() {
		return
	}
	key := knownKey(a)
	k.mu.Lock()
	if k.n[key] <= 1 {
		delete(k.n, key)
	} else {
		k.n[key]--
	}
	k.mu.Unlock()
}

// contains reports whether a is known; safe for concurrent use.
func (k *knownAddrs) contains(a netip.Addr) bool {
	k.mu.RLock()
	_, ok := k.n[knownKey(a)]
	k.mu.RUnlock()
	return ok
}

func (k *knownAddrs) len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.n)
}

// preauthStats adds up the admission counters of the listeners that are
// open and of those closed before (d.preauthClosed). It runs on the loop.
func (d *Daemon) preauthStats() tlstransport.AdmissionStats {
	s := tlstransport.AdmissionStats{Refused: d.preauthClosed}
	for _, ln := range d.listeners {
		if g, ok := ln.(guardedListener); ok {
			ls := g.AdmissionStats()
			s.InProgress += ls.InProgress
			s.Known += ls.Known
			s.Sources += ls.Sources
			for i, n := range ls.Refused {
				s.Refused[i] += n
			}
		}
	}
	return s
}

// Defaults of the refusal log.
const (
	// refusalLogInterval is the least time between two log lines about
	// refused connections from one source.
	refusalLogInterval = 10 * time.Second
	// refusalLogPerSecond caps the refusal lines of all sources together.
	refusalLogPerSecond = 10
	// refusalLogSources caps the sources remembered; when full, sources
	// last logged longer than an interval ago are forgotten, and if that
	// frees nothing new sources are not logged.
	refusalLogSources = 4096
)

// refusalLog writes refused incoming connections to the log, at most one
// line per source (an IPv4 address or an IPv6 /64) per interval and
// refusalLogPerSecond lines in all; each line says how many refusals of
// its source were not logged since the previous one. Every refusal is
// counted anyway (invpn_preauth_refused_total). It is called from the
// listeners' goroutines, so it is safe for concurrent use, and it never
// waits for anything but its mutex and the log.
type refusalLog struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	sources map[netip.Addr]*refusalSource
	second  time.Time // start of the current second of the global cap
	lines   int       // lines written in it
}

type refusalSource struct {
	logged     time.Time // last line
	suppressed int       // refusals not logged since
}

func newRefusalLog(log *slog.Logger) *refusalLog {
	return &refusalLog{log: log, interval: refusalLogInterval, now: time.Now, sources: map[netip.Addr]*refusalSource{}}
}

// sourceOf names the source of a refused connection for the log.
func sourceOf(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// refused logs, or counts, one refused connection from remote.
func (r *refusalLog) refused(remote netip.AddrPort, err error) {
	if !remote.IsValid() { // an error of the listener itself, not of a peer
		r.log.Warn("accepting incoming links", "err", err)
		return
	}
	now := r.now()
	key := sourceOf(remote.Addr())
	r.mu.Lock()
	s := r.sources[key]
	if s == nil {
		if len(r.sources) >= refusalLogSources {
			for k, o := range r.sources {
				if now.Sub(o.logged) >= r.interval {
					delete(r.sources, k)
				}
			}
		}
		if len(r.sources) >= refusalLogSources {
			r.mu.Unlock()
			return
		}
		s = &refusalSource{}
		r.sources[key] = s
	} else if now.Sub(s.logged) < r.interval {
		s.suppressed++
		r.mu.Unlock()
		return
	}
	if now.Sub(r.second) >= time.Second {
		r.second, r.lines = now, 0
	}
	if r.lines >= refusalLogPerSecond {
		s.suppressed++
		r.mu.Unlock()
		return
	}
	r.lines++
	suppressed := s.suppressed
	s.logged, s.suppressed = now, 0
	r.mu.Unlock()

	attrs := []any{"addr", remote}
	var re *tlstransport.RefusedError
	if errors.As(err, &re) {
		attrs = append(attrs, "reason", re.Reason.String())
	}
	attrs = append(attrs, "err", err)
	if suppressed > 0 {
		attrs = append(attrs, "not_logged", suppressed)
	}
	r.log.Info("incoming link refused", attrs...)
}
