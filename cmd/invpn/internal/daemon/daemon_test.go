package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/peercache"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/transporttest"
	"github.com/invpn/invpn/wire"
)

// These tests run whole daemons in a synctest bubble (harness_test.go)
// with the node's default timers.

// settleRoutes is how long a start's announcements may take to reach
// every node of these small meshes: a burst of changes goes to a
// neighbour once per change delay (docs/protocol.md#quiet-refresh), so a
// few hops cost a few of them, and no other timer fires meanwhile.
var settleRoutes = 10 * node.DefaultConfig().ChangeDelay

// line starts three daemons linked 1-2-3: 2 dials 1, 3 dials 2. Nodes 1
// and 3 have max_links 1, so they never link directly although each learns
// the other's address. Every node has a route to every other within
// settleRoutes: links come up at once and announcements are flooded as
// they arrive, a burst within a change delay per hop.
func line(m *mesh) []*testNode {
	m.t.Helper()
	one := func(o *Options) { o.Node.MinLinks, o.Node.MaxLinks = 1, 1 }
	ns := []*testNode{m.start(1, one), m.start(2, nil, 1), m.start(3, one, 2)}
	for _, n := range ns {
		for _, o := range ns {
			if n != o {
				m.waitFor(settleRoutes, fmt.Sprintf("route %s -> %s", n.mac, o.mac), func() bool { return hasRoute(n.d.Status(), o.mac) })
			}
		}
	}
	if l := ns[0].d.Status().Links; len(l) != 1 || l[0].Peer != ns[1].mac {
		m.t.Fatalf("node 1 links = %+v, want only node 2", l)
	}
	return ns
}

// expectFrame waits up to within for a frame on n's TAP equal to want,
// skipping others.
func expectFrame(m *mesh, n *testNode, want []byte, within time.Duration) {
	m.t.Helper()
	m.waitFor(within, fmt.Sprintf("frame % x on the TAP of %s", want[:14], n.mac), func() bool {
		for {
			select {
			case f := <-n.tap.Written():
				if bytes.Equal(f, want) {
					return true
				}
			default:
				return false
			}
		}
	})
}

// noFrame fails unless n writes nothing to its TAP for d.
func noFrame(t *testing.T, n *testNode, d time.Duration) {
	t.Helper()
	select {
	case f := <-n.tap.Written():
		t.Fatalf("node %s: unexpected frame % x", n.mac, f)
	case <-time.After(d):
	}
}

// docs/protocol.md#behaviour: a frame to ff:ff:ff:ff:ff:ff read from the TAP
// is flooded to every node; a unicast frame is routed hop by hop. Neither
// waits for a timer.
func TestLineBroadcastAndUnicast(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		ns := line(m)
		arp := frame(wire.Broadcast, ns[0].mac, 0x0806, "who-has 10.78.0.3 tell 10.78.0.1 ....")
		if err := ns[0].tap.Inject(arp); err != nil {
			t.Fatal(err)
		}
		expectFrame(m, ns[1], arp, 0)
		expectFrame(m, ns[2], arp, 0)

		uni := frame(ns[2].mac, ns[0].mac, 0x0800, "hello node 3 through node 2")
		if err := ns[0].tap.Inject(uni); err != nil {
			t.Fatal(err)
		}
		expectFrame(m, ns[2], uni, 0)
		noFrame(t, ns[1], 50*time.Millisecond)
		if s := ns[1].d.Status(); s.Stats.Forwarded == 0 {
			t.Errorf("node 2 forwarded nothing: %+v", s.Stats)
		}
		// A frame whose source is not the node's own MAC is dropped.
		if err := ns[0].tap.Inject(frame(ns[2].mac, ns[1].mac, 0x0800, "spoofed")); err != nil {
			t.Fatal(err)
		}
		m.waitFor(0, "drop counted", func() bool {
			return ns[0].d.Status().Stats.Drops[node.DropNotOwnSource] == 1
		})
	})
}

// docs/protocol.md#defect-8: when a link drops, the routes through it are
// withdrawn at once, and the log says so with the peer's MAC and address.
func TestLinkDownWithdrawsRoutes(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		ns := line(m)
		ns[1].stop() // the middle daemon closes its links
		// Nodes 1 and 3 are below min_links, so they also link directly
		// from their caches. Either way no route may stay on the stopped
		// node: it is withdrawn, fails over or already went direct. At
		// once: no time passes, so no announcement or expiry helps.
		for _, c := range [][2]*testNode{{ns[0], ns[2]}, {ns[2], ns[0]}} {
			m.waitFor(0, c[0].mac.String()+" has no route to "+c[1].mac.String()+" via the stopped node",
				func() bool {
					if !strings.Contains(c[0].logs.String(), "msg=\"link down\" peer="+ns[1].mac.String()) {
						return false
					}
					for _, rt := range c[0].d.Status().Routes {
						if rt.NextHop == ns[1].mac {
							return false
						}
					}
					return true
				})
		}
		logs := ns[0].logs.String()
		for _, want := range []string{
			"msg=\"link up\" peer=" + ns[1].mac.String() + " addr=10.0.0.2:",
			"msg=\"link down\" peer=" + ns[1].mac.String() + " addr=10.0.0.2:",
			"msg=\"route learned\" target=" + ns[2].mac.String() + " via=" + ns[1].mac.String() + " via_addr=10.0.0.2:",
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("node 1's log lacks %q:\n%s", want, logs)
			}
		}
	})
}

// docs/protocol.md#connect-policy and docs/protocol.md#defect-10: the peer cache is saved
// atomically and dialled again after a restart; a damaged cache is logged
// and ignored.
func TestCacheSavedAndReloaded(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		ns := line(m)
		path := ns[0].cache
		ns[0].stop()
		st, err := peercache.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Peers[ns[1].mac] != testAddr(2) || st.Peers[ns[2].mac] != testAddr(3) {
			t.Errorf("cache of node 1 = %v, want nodes 2 and 3 at their listening addresses", st.Peers)
		}
		if st.IDFloor == 0 {
			t.Errorf("id floor not saved")
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("temporary file %s left behind", e.Name())
			}
		}

		// Node 1 again, without seeds: it dials node 2 or 3 from its
		// cache, at once (no connect interval passes).
		n := m.start(1, nil)
		got := n.d.NodeConfig()
		if got.IDFloor != st.IDFloor || len(got.Cache) != 2 {
			t.Errorf("restarted node config: id floor %d cache %v, want %d and 2 peers", got.IDFloor, got.Cache, st.IDFloor)
		} else if got.Cache[0].MAC != ns[1].mac || got.Cache[1].MAC != ns[2].mac {
			t.Errorf("restarted node config: cache %v, want sorted by MAC", got.Cache)
		}
		m.waitFor(0, "restarted node links from its cache", func() bool { return len(n.d.Status().Links) > 0 })
		n.stop()

		// A damaged cache is logged and ignored.
		if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		n2 := m.start(1, nil)
		if got := n2.d.NodeConfig(); len(got.Cache) != 0 {
			t.Errorf("damaged cache loaded: %v", got.Cache)
		}
		n2.stop()
		if !strings.Contains(n2.logs.String(), "peer cache ignored") {
			t.Errorf("damaged cache not logged:\n%s", n2.logs.String())
		}
		if _, err := peercache.Load(path); err != nil {
			t.Errorf("cache not rewritten at exit: %v", err)
		}
	})
}

// gatedLink is a link whose writes block until the gate opens, as a link
// to a slow peer.
type gatedLink struct {
	transport.Link
	gate   chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (g *gatedLink) WriteMessages(msgs [][]byte) error {
	select {
	case <-g.gate:
	case <-g.closed:
		return fmt.Errorf("gated link closed")
	}
	return g.Link.WriteMessages(msgs)
}

func (g *gatedLink) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.Link.Close()
}

// oneListener hands out one link, then blocks.
type oneListener struct {
	links chan transport.Link
	done  chan struct{}
	once  sync.Once
}

func (l *oneListener) Accept(ctx context.Context) (transport.Link, error) {
	select {
	case lk := <-l.links:
		return lk, nil
	case <-l.done:
		return nil, fmt.Errorf("oneListener: %w", net.ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *oneListener) Addr() netip.AddrPort { return testAddr(1) }
func (l *oneListener) Close() error         { l.once.Do(func() { close(l.done) }); return nil }

// docs/protocol.md#defect-7 and node.SendQueue: a link's queue is bounded; a
// full queue drops data frames but never control messages.
func TestFullQueueDropsDataNotControl(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		const limit = 4
		interval := node.DefaultConfig().AnnounceInterval
		peer := testMAC(9)
		ours, theirs := transporttest.Pipe(testMAC(1), peer, true)
		gl := &gatedLink{Link: ours, gate: make(chan struct{}), closed: make(chan struct{})}
		ln := &oneListener{links: make(chan transport.Link, 1), done: make(chan struct{})}
		ln.links <- acceptedLink{gl}
		n := m.start(1, func(o *Options) {
			o.QueueLimit = limit
			o.Transport.Listen = func() ([]transport.Listener, error) { return []transport.Listener{ln}, nil }
		})
		defer theirs.Close()
		// The peer announces itself every interval and keeps its sending
		// direction alive with heartbeats, as a live neighbour does, so
		// that the link does not fail while its writes are held.
		quiet := make(chan struct{})
		var peerDone sync.WaitGroup
		peerDone.Go(func() {
			beat := node.DefaultConfig().HeartbeatInterval
			for i := 0; ; i++ {
				msg := (&wire.Heartbeat{}).Append(nil) // no probe: nothing to answer
				if i%int(interval/beat) == 0 {
					msg = (&wire.InitialInfo{ID: uint64(time.Now().UnixMilli()), MAC: peer, Port: testPort}).Append(nil)
				}
				if theirs.WriteMessage(msg) != nil {
					return
				}
				select {
				case <-time.After(beat):
				case <-quiet:
					return
				}
			}
		})
		defer peerDone.Wait()
		defer close(quiet)
		m.waitFor(0, "link up", func() bool { return len(n.d.Status().Links) == 1 })

		const injected = 40
		for i := range injected {
			if err := n.tap.Inject(frame(wire.Broadcast, n.mac, 0x0806, fmt.Sprintf("arp %d ....................", i))); err != nil {
				t.Fatal(err)
			}
		}
		// The TAP reader waits at most maxStall per congestion episode.
		m.waitFor(time.Second, "data dropped at the full queue", func() bool {
			s := n.d.Status()
			return s.Stats.Drops[node.DropQueueFull] > 0 && s.Stats.FramesFromTAP == injected
		})
		// Announcements keep being queued past the data limit: one per
		// interval.
		m.waitFor(4*interval, "control queued past the data limit", func() bool {
			s := n.d.Status()
			return len(s.Links) == 1 && s.Links[0].Queued >= limit+3
		})
		s := n.d.Status()
		dropped := s.Stats.Drops[node.DropQueueFull]
		if s.Links[0].QueueDrops != dropped {
			t.Errorf("link queue drops %d, total %d", s.Links[0].QueueDrops, dropped)
		}
		close(gl.gate)
		var data, control int
		deadline := time.Now().Add(2 * time.Second)
		for data+int(dropped) < injected || control < 4 {
			if time.Now().After(deadline) {
				t.Fatalf("after opening the gate: %d data and %d control messages, %d dropped of %d", data, control, dropped, injected)
			}
			msg, err := theirs.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			switch wire.Type(msg[0]) {
			case wire.TypeBroadcastFrame, wire.TypeGroupFrame:
				data++
			default:
				control++
			}
		}
		if data > limit+maxBatchMsgs || dropped == 0 {
			t.Errorf("%d data messages delivered, %d dropped, with a queue limit of %d", data, dropped, limit)
		}
	})
}

// acceptedLink reports itself as not dialed whatever the pipe says: the
// daemon accepted it.
type acceptedLink struct{ transport.Link }

func (acceptedLink) Dialed() bool { return false }

// SIGHUP reloads the seeds and the transport without closing the TAP
// device; SIGTERM stops the daemon, which returns nil.
func TestSignals(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		m.start(1, nil)
		reloads := 0
		n2 := m.start(2, func(o *Options) {
			o.Reload = func() (*Reloaded, error) {
				reloads++
				if reloads == 1 {
					return nil, fmt.Errorf("bad file")
				}
				return &Reloaded{Seeds: []node.Peer{{MAC: testMAC(1), Addr: testAddr(1)}}, File: "node2.conf", Transport: Transport{
					Dialer: m.nw.Dialer(testMAC(2), testAddr(2).Addr(), true),
					Listen: func() ([]transport.Listener, error) {
						ln, err := m.nw.Listen(testMAC(2), testAddr(2), true)
						return []transport.Listener{ln}, err
					},
				}}, nil
			}
		})
		m.waitFor(0, "no links without seeds", func() bool { return len(n2.d.Status().Links) == 0 })
		n2.sig <- syscall.SIGHUP
		m.waitFor(0, "failed reload logged", func() bool { return strings.Contains(n2.logs.String(), "reload failed") })
		n2.sig <- syscall.SIGHUP
		m.waitFor(0, "link to the new seed", func() bool { return len(n2.d.Status().Links) == 1 })
		if logs := n2.logs.String(); !strings.Contains(logs, `msg=reloaded file=node2.conf seeds=1 listeners=1`) {
			t.Errorf("reload not logged:\n%s", logs)
		}
		select {
		case <-n2.tap.Closed():
			t.Fatal("reload closed the TAP device")
		default:
		}
		n2.sig <- syscall.SIGTERM
		select {
		case err := <-n2.errc:
			if err != nil {
				t.Fatalf("Run after SIGTERM: %v", err)
			}
			n2.errc <- nil // for the cleanup
		case <-time.After(5 * time.Second):
			t.Fatal("SIGTERM did not stop the daemon")
		}
		select {
		case <-n2.tap.Closed():
		default:
			t.Error("TAP device not closed at exit")
		}
		if st, err := peercache.Load(n2.cache); err != nil || st.Peers[testMAC(1)] != testAddr(1) {
			t.Errorf("cache at exit: %v, %v", st.Peers, err)
		}
	})
}

// A daemon that knows only a bootstrap peer joins through it without
// keeping it: it takes the peer's table over a directory link, links to
// the cached peers, and closes the directory link
// (docs/protocol.md#link-limit). Whole daemons on the in-memory network.
func TestBootstrapJoin(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		ns := []*testNode{nil, m.start(1, nil), m.start(2, nil, 1), m.start(3, nil, 1, 2)}
		m.waitFor(time.Minute, "the triangle", func() bool {
			return len(ns[1].d.Status().Links) == 2 && len(ns[3].d.Status().Links) == 2
		})
		j := m.start(4, func(o *Options) {
			o.Node.Bootstrap = []node.Peer{{MAC: testMAC(1), Addr: testAddr(1)}}
			o.Node.MinLinks = 2
		})
		m.waitFor(time.Minute, "node 4 linked to 2 and 3 only, routing to 1", func() bool {
			s := j.d.Status()
			var peers []int
			for _, l := range s.Links {
				peers = append(peers, macIndex(l.Peer))
			}
			slices.Sort(peers)
			return slices.Equal(peers, []int{2, 3}) && hasRoute(s, testMAC(1))
		})
		for _, l := range ns[1].d.Status().Links {
			if l.Peer == testMAC(4) {
				t.Errorf("the bootstrap node kept a link to the joiner: %+v", l)
			}
		}
		if logs := j.logs.String(); !strings.Contains(logs, "directory link up") || !strings.Contains(logs, "directory link down") {
			t.Errorf("the joiner's log does not show its directory link:\n%s", logs)
		}
	})
}

// TestStateGivesSecretSeeds: a daemon's node gets a randomness source and
// a route-index seed of its own when its configuration has none (two
// daemons draw different seeds), and keeps the ones it was given.
func TestStateGivesSecretSeeds(t *testing.T) {
	a, b := withState(node.Config{}, peercache.State{}), withState(node.Config{}, peercache.State{})
	if a.Rand == nil || a.IndexSeed == 0 || a.IndexSeed == b.IndexSeed {
		t.Fatalf("index seeds %#x and %#x (rand %v): want two different, non-zero seeds", a.IndexSeed, b.IndexSeed, a.Rand)
	}
	if c := withState(node.Config{IndexSeed: 7}, peercache.State{}); c.IndexSeed != 7 {
		t.Fatalf("a given index seed became %#x", c.IndexSeed)
	}
}
