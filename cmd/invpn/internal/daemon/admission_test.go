package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
)

// guardedFake is an in-memory listener that also takes the daemon's known
// set and reports admission counters, as tlstransport.Listener does.
type guardedFake struct {
	transport.Listener
	mu      sync.Mutex
	known   func(netip.Addr) bool
	refused [tlstransport.NumRefusals]uint64
}

func (g *guardedFake) SetKnown(f func(netip.Addr) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.known = f
}

func (g *guardedFake) isKnown(a netip.Addr) bool {
	g.mu.Lock()
	f := g.known
	g.mu.Unlock()
	return f != nil && f(a)
}

func (g *guardedFake) AdmissionStats() tlstransport.AdmissionStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return tlstransport.AdmissionStats{InProgress: 2, Refused: g.refused}
}

// The daemon gives its listeners the addresses of its seeds, its cached
// peers and its linked peers as known (docs/security.md#admission), and
// adds up what they refused, across a reload that replaces them.
func TestKnownPeersAndPreauthCounters(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		var mu sync.Mutex
		var guards []*guardedFake
		guarded := func(i int) func(*Options) {
			return func(o *Options) {
				listen := func() ([]transport.Listener, error) {
					ln, err := m.nw.Listen(testMAC(i), testAddr(i), true)
					if err != nil {
						return nil, err
					}
					g := &guardedFake{Listener: ln}
					g.refused[tlstransport.RefusedPerSource] = 5
					mu.Lock()
					guards = append(guards, g)
					mu.Unlock()
					return []transport.Listener{g}, nil
				}
				o.Transport.Listen = listen
				o.Reload = func() (*Reloaded, error) {
					return &Reloaded{Seeds: []node.Peer{{MAC: testMAC(9), Addr: testAddr(9)}}, Transport: Transport{Listen: listen}}, nil
				}
			}
		}
		n1 := m.start(1, guarded(1), 3) // seed 3 never answers
		g1 := guards[0]
		if !g1.isKnown(testAddr(3).Addr()) {
			t.Errorf("seed %s is not known", testAddr(3).Addr())
		}
		if g1.isKnown(testAddr(2).Addr()) {
			t.Errorf("%s is known before it linked or was announced", testAddr(2).Addr())
		}
		m.start(2, nil, 1)
		m.waitFor(10*time.Second, "a link 1-2", func() bool { return len(n1.d.Status().Links) == 1 })
		if !g1.isKnown(testAddr(2).Addr()) {
			t.Errorf("linked peer %s is not known", testAddr(2).Addr())
		}
		if !g1.isKnown(netip.AddrFrom16(testAddr(2).Addr().As16())) {
			t.Error("an IPv4-mapped form of a known address is not known")
		}
		s := n1.d.Status()
		if s.Preauth.InProgress != 2 || s.Preauth.Refused[tlstransport.RefusedPerSource] != 5 {
			t.Errorf("snapshot's preauth = %+v, want 2 in progress and 5 per-source refusals", s.Preauth)
		}
		st := n1.d.controlStatus(&s)
		if st.PreauthRefused["per_source"] != 5 || st.PreauthInProgress != 2 || len(st.PreauthRefused) != tlstransport.NumRefusals {
			t.Errorf("control status preauth = %v, %d; want per_source 5 of every reason, 2 in progress", st.PreauthRefused, st.PreauthInProgress)
		}

		// A reload replaces the seeds and the listener; the old listener's
		// refusals stay counted.
		n1.sig <- syscall.SIGHUP
		m.waitFor(time.Second, "the reload", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(guards) == 2
		})
		g2 := guards[1]
		if g2.isKnown(testAddr(3).Addr()) || !g2.isKnown(testAddr(9).Addr()) || !g2.isKnown(testAddr(2).Addr()) {
			t.Errorf("after the reload: old seed known %v, new seed known %v, linked peer known %v; want false, true, true",
				g2.isKnown(testAddr(3).Addr()), g2.isKnown(testAddr(9).Addr()), g2.isKnown(testAddr(2).Addr()))
		}
		if got := n1.d.Status().Preauth.Refused[tlstransport.RefusedPerSource]; got != 10 {
			t.Errorf("per-source refusals after a reload = %d, want 10 (5 of the closed listener)", got)
		}
	})
}

// The known set counts each reason an address is known for.
func TestKnownAddrs(t *testing.T) {
	k := newKnownAddrs()
	a := netip.MustParseAddr("10.0.0.1")
	k.add(a)
	k.add(netip.MustParseAddr("::ffff:10.0.0.1"))
	k.remove(a)
	if !k.contains(a) {
		t.Fatal("address known twice, removed once, is not known")
	}
	k.remove(a)
	if k.contains(a) || k.len() != 0 {
		t.Fatal("address still known after both reasons went")
	}
	k.add(netip.Addr{})
	k.remove(netip.MustParseAddr("10.9.9.9")) // never added: harmless
	if k.len() != 0 {
		t.Fatalf("%d addresses known, want 0", k.len())
	}
}

// Refused connections are logged once per source per interval, with the
// count of those not logged, and at most refusalLogPerSecond lines a
// second in all; an IPv6 /64 is one source.
func TestRefusalLogRateLimited(t *testing.T) {
	var buf syncBuffer
	r := newRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	refuse := func(addr string, n int) {
		for range n {
			err := &tlstransport.RefusedError{Reason: tlstransport.RefusedHelloTimeout, Err: errors.New("no ClientHello")}
			r.refused(netip.MustParseAddrPort(addr), err)
		}
	}
	lines := func() []string {
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	refuse("10.0.0.1:40000", 100)
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], `msg="incoming link refused" addr=10.0.0.1:40000 reason=hello_timeout`) {
		t.Fatalf("100 refusals from one source logged as:\n%s", buf.String())
	}
	now = now.Add(refusalLogInterval)
	refuse("10.0.0.1:40001", 1)
	if l := lines(); len(l) != 2 || !strings.Contains(l[1], "not_logged=99") {
		t.Fatalf("after the interval:\n%s", buf.String())
	}
	// 30 sources at once: 10 lines this second, 10 more the next.
	now = now.Add(time.Second)
	for i := range 30 {
		refuse(fmt.Sprintf("[2001:db8:0:%x::%d]:1", i, i+1), 1)
		refuse(fmt.Sprintf("[2001:db8:0:%x::ffff]:2", i), 1) // same /64
	}
	if n := len(lines()) - 2; n != refusalLogPerSecond {
		t.Errorf("30 new sources in one second: %d lines, want %d", n, refusalLogPerSecond)
	}
	now = now.Add(time.Second)
	for i := range 30 {
		refuse(fmt.Sprintf("[2001:db8:0:%x::9]:3", i), 1)
	}
	if n := len(lines()) - 2; n != 2*refusalLogPerSecond {
		t.Errorf("a second later: %d lines in all, want %d", n, 2*refusalLogPerSecond)
	}
	// A listener's own error (zero address) is always logged.
	r.refused(netip.AddrPort{}, errors.New("accept: too many open files"))
	if l := lines(); !strings.Contains(l[len(l)-1], "too many open files") {
		t.Errorf("listener error not logged: %s", l[len(l)-1])
	}
}
