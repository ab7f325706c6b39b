package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/peercache"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev/taptest"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/transporttest"
	"github.com/invpn/invpn/wire"
)

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testNode is one daemon on an in-memory network with a fake TAP.
type testNode struct {
	t      *testing.T
	d      *Daemon
	tap    *taptest.Device
	mac    wire.MAC
	addr   netip.AddrPort
	cfg    *config.Config
	logs   *syncBuffer
	sig    chan os.Signal
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
}

func testMAC(i int) wire.MAC { return wire.MAC{0x02, 0, 0, 0, 0, byte(i)} }

func testAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), config.DefaultPort)
}

// checkLeaks registers a goroutine leak check that runs after every other
// cleanup of t (cleanups run last registered first).
func checkLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// testConfig returns the configuration of node i: fast announcements, a
// cache file in dir, and the given seeds.
func testConfig(dir string, i int, seeds ...int) *config.Config {
	cfg := config.Default()
	cfg.File = fmt.Sprintf("node%d.conf", i)
	cfg.Network.Cache = filepath.Join(dir, fmt.Sprintf("cache%d.json", i))
	cfg.Timers.Announce = 100 * time.Millisecond
	cfg.Timers.LinkTimeout = 10 * time.Second
	cfg.Timers.Connect = time.Second
	for _, s := range seeds {
		cfg.Network.Init = append(cfg.Network.Init, config.Seed{MAC: testMAC(s), Addr: testAddr(s)})
	}
	return cfg
}

// startNode starts daemon i on nw with cfg.
func startNode(t *testing.T, nw *transporttest.Network, i int, cfg *config.Config, mutate func(*Options)) *testNode {
	t.Helper()
	n := &testNode{t: t, mac: testMAC(i), addr: testAddr(i), cfg: cfg, logs: &syncBuffer{},
		tap: taptest.New(taptest.Config{Name: fmt.Sprintf("tap%d", i)}), sig: make(chan os.Signal, 1)}
	opts := Options{
		Config: cfg,
		MAC:    n.mac,
		Transport: Transport{
			Dialer: nw.Dialer(n.mac, n.addr.Addr(), true),
			Listen: func() ([]transport.Listener, error) {
				ln, err := nw.Listen(n.mac, n.addr, true)
				if err != nil {
					return nil, err
				}
				return []transport.Listener{ln}, nil
			},
		},
		TAP:     n.tap,
		Logger:  slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Signals: n.sig,
	}
	if cfg.Network.NoIncoming {
		opts.Transport.Listen = nil
	}
	if mutate != nil {
		mutate(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	n.d = d
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.errc = make(chan error, 1)
	go func() { n.errc <- d.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop stops the daemon and waits for Run to return.
func (n *testNode) stop() {
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.errc:
			if err != nil {
				n.t.Errorf("node %s: Run: %v", n.mac, err)
			}
		case <-time.After(10 * time.Second):
			n.t.Errorf("node %s: Run did not return within 10 s", n.mac)
		}
		if n.t.Failed() {
			n.t.Logf("log of %s:\n%s", n.mac, n.logs.String())
		}
	})
}

// waitFor polls cond every 5 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasRoute(s Snapshot, target wire.MAC) bool {
	for _, r := range s.Routes {
		if r.Target == target {
			return true
		}
	}
	return false
}

// line starts three daemons linked 1-2-3: 2 dials 1, 3 dials 2. Nodes 1
// and 3 have max_links 1, so they never link directly although each learns
// the other's address.
func line(t *testing.T) (*transporttest.Network, []*testNode) {
	t.Helper()
	dir := t.TempDir()
	nw := transporttest.NewNetwork()
	c1 := testConfig(dir, 1)
	c2 := testConfig(dir, 2, 1)
	c3 := testConfig(dir, 3, 2)
	for _, c := range []*config.Config{c1, c3} {
		c.Network.MinLinks, c.Network.MaxLinks = 1, 1
	}
	ns := []*testNode{startNode(t, nw, 1, c1, nil), startNode(t, nw, 2, c2, nil), startNode(t, nw, 3, c3, nil)}
	for _, n := range ns {
		for _, m := range ns {
			if n != m {
				waitFor(t, 5*time.Second, fmt.Sprintf("route %s -> %s", n.mac, m.mac), func() bool { return hasRoute(n.d.Status(), m.mac) })
			}
		}
	}
	if l := ns[0].d.Status().Links; len(l) != 1 || l[0].Peer != ns[1].mac {
		t.Fatalf("node 1 links = %+v, want only node 2", l)
	}
	return nw, ns
}

// frame builds an Ethernet frame.
func frame(dst, src wire.MAC, etype uint16, payload string) []byte {
	f := append(append(append([]byte{}, dst[:]...), src[:]...), byte(etype>>8), byte(etype))
	return append(f, payload...)
}

// expectFrame waits up to d for a frame on tap equal to want, skipping others.
func expectFrame(t *testing.T, n *testNode, want []byte, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case f := <-n.tap.Written():
			if bytes.Equal(f, want) {
				return
			}
		case <-timeout:
			t.Fatalf("node %s: frame % x not written to the TAP within %v", n.mac, want[:14], d)
		}
	}
}

func noFrame(t *testing.T, n *testNode, d time.Duration) {
	t.Helper()
	select {
	case f := <-n.tap.Written():
		t.Fatalf("node %s: unexpected frame % x", n.mac, f)
	case <-time.After(d):
	}
}

// PROTOCOL.md "Behaviour": a frame to ff:ff:ff:ff:ff:ff read from the TAP
// is flooded to every node; a unicast frame is routed hop by hop.
func TestLineBroadcastAndUnicast(t *testing.T) {
	checkLeaks(t)
	_, ns := line(t)
	arp := frame(wire.Broadcast, ns[0].mac, 0x0806, "who-has 10.78.0.3 tell 10.78.0.1 ....")
	if err := ns[0].tap.Inject(arp); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, ns[1], arp, 2*time.Second)
	expectFrame(t, ns[2], arp, 2*time.Second)

	uni := frame(ns[2].mac, ns[0].mac, 0x0800, "hello node 3 through node 2")
	if err := ns[0].tap.Inject(uni); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, ns[2], uni, 2*time.Second)
	noFrame(t, ns[1], 50*time.Millisecond)
	if s := ns[1].d.Status(); s.Stats.Forwarded == 0 {
		t.Errorf("node 2 forwarded nothing: %+v", s.Stats)
	}
	// A frame whose source is not the node's own MAC is dropped.
	if err := ns[0].tap.Inject(frame(ns[2].mac, ns[1].mac, 0x0800, "spoofed")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "drop counted", func() bool {
		return ns[0].d.Status().Stats.Drops[node.DropNotOwnSource] == 1
	})
}

// PROTOCOL.md defect 8: when a link drops, the routes through it are
// withdrawn at once, and the log says so with the peer's MAC and address.
func TestLinkDownWithdrawsRoutes(t *testing.T) {
	checkLeaks(t)
	_, ns := line(t)
	ns[1].stop() // the middle daemon closes its links
	// Nodes 1 and 3 are below min_links, so they also link directly from
	// their caches, sometimes before node 2 stops. Either way no route may
	// stay on the stopped node: it is withdrawn, fails over or already
	// went direct.
	for _, c := range [][2]*testNode{{ns[0], ns[2]}, {ns[2], ns[0]}} {
		waitFor(t, 2*time.Second, c[0].mac.String()+" has no route to "+c[1].mac.String()+" via the stopped node",
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
	// Withdrawn at once (no wait for an announcement or expiry): the
	// route to node 3 is either gone or goes directly.
	for _, rt := range ns[0].d.Status().Routes {
		if rt.NextHop == ns[1].mac {
			t.Errorf("route %s still via the stopped node", rt.Target)
		}
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
}

// PROTOCOL.md "Connecting" and defect 10: the peer cache is saved
// atomically and dialled again after a restart; a damaged cache is logged
// and ignored.
func TestCacheSavedAndReloaded(t *testing.T) {
	checkLeaks(t)
	nw, ns := line(t)
	path := ns[0].cfg.Network.Cache
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

	// Node 1 again, without seeds: it dials node 2 or 3 from its cache.
	cfg := testConfig(filepath.Dir(path), 1)
	cfg.Network.Cache = path
	n := startNode(t, nw, 1, cfg, nil)
	if got := n.d.NodeConfig(); got.IDFloor != st.IDFloor || len(got.Cache) != 2 {
		t.Errorf("restarted node config: id floor %d cache %v, want %d and 2 peers", got.IDFloor, got.Cache, st.IDFloor)
	}
	waitFor(t, 5*time.Second, "restarted node links from its cache", func() bool { return len(n.d.Status().Links) > 0 })
	n.stop()

	// A damaged cache is logged and ignored.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg2 := testConfig(filepath.Dir(path), 1)
	cfg2.Network.Cache = path
	n2 := startNode(t, nw, 1, cfg2, nil)
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

// PROTOCOL.md defect 7 and node.SendQueue: a link's queue is bounded; a
// full queue drops data frames but never control messages.
func TestFullQueueDropsDataNotControl(t *testing.T) {
	checkLeaks(t)
	const limit = 4
	peer := testMAC(9)
	ours, theirs := transporttest.Pipe(testMAC(1), peer, true)
	gl := &gatedLink{Link: ours, gate: make(chan struct{}), closed: make(chan struct{})}
	ln := &oneListener{links: make(chan transport.Link, 1), done: make(chan struct{})}
	ln.links <- acceptedLink{gl}
	cfg := testConfig(t.TempDir(), 1)
	cfg.Timers.Announce = 20 * time.Millisecond
	nw := transporttest.NewNetwork()
	n := startNode(t, nw, 1, cfg, func(o *Options) {
		o.QueueLimit = limit
		o.Transport.Listen = func() ([]transport.Listener, error) { return []transport.Listener{ln}, nil }
	})
	defer theirs.Close()
	waitFor(t, 2*time.Second, "link up", func() bool { return len(n.d.Status().Links) == 1 })

	const injected = 40
	for i := range injected {
		if err := n.tap.Inject(frame(wire.Broadcast, n.mac, 0x0806, fmt.Sprintf("arp %d ....................", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 2*time.Second, "data dropped at the full queue", func() bool {
		s := n.d.Status()
		return s.Stats.Drops[node.DropQueueFull] > 0 && s.Stats.FramesFromTAP == injected
	})
	// Announcements keep being queued past the data limit.
	waitFor(t, 2*time.Second, "control queued past the data limit", func() bool {
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
}

// acceptedLink reports itself as not dialed whatever the pipe says: the
// daemon accepted it.
type acceptedLink struct{ transport.Link }

func (acceptedLink) Dialed() bool { return false }

// SIGHUP reloads the seeds and the transport without closing the TAP
// device; SIGTERM stops the daemon, which returns nil.
func TestSignals(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	nw := transporttest.NewNetwork()
	startNode(t, nw, 1, testConfig(dir, 1), nil)
	reloads := 0
	var n2 *testNode
	n2 = startNode(t, nw, 2, testConfig(dir, 2), func(o *Options) {
		o.Reload = func() (*Reloaded, error) {
			reloads++
			if reloads == 1 {
				return nil, fmt.Errorf("bad file")
			}
			return &Reloaded{Config: testConfig(dir, 2, 1), Transport: Transport{
				Dialer: nw.Dialer(testMAC(2), testAddr(2).Addr(), true),
				Listen: func() ([]transport.Listener, error) {
					ln, err := nw.Listen(testMAC(2), testAddr(2), true)
					return []transport.Listener{ln}, err
				},
			}}, nil
		}
	})
	n2.sig <- syscall.SIGHUP
	waitFor(t, 2*time.Second, "failed reload logged", func() bool { return strings.Contains(n2.logs.String(), "reload failed") })
	n2.sig <- syscall.SIGHUP
	waitFor(t, 2*time.Second, "link to the new seed", func() bool { return len(n2.d.Status().Links) == 1 })
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
	if st, err := peercache.Load(n2.cfg.Network.Cache); err != nil || st.Peers[testMAC(1)] != testAddr(1) {
		t.Errorf("cache at exit: %v, %v", st.Peers, err)
	}
}
