package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev/taptest"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/transporttest"
	"github.com/invpn/invpn/wire"
)

// The in-process harness: whole daemons on one in-memory network
// (transporttest) with fake TAP devices (taptest) and the node's default
// timers. Tests run it in a synctest bubble (inBubble): time is virtual,
// so an announcement interval of 5 s or a link timeout of 15 s costs
// nothing, and a test waits with synctest.Wait until every daemon is idle
// instead of polling. Only the tests that need real sockets (the control
// socket, the metrics endpoint) run a mesh in real time (realTimeMesh).

// testPort is the port every test node listens on, on its own address.
const testPort = 41744

func testMAC(i int) wire.MAC { return wire.MAC{0x02, 0, 0, 0, 0, byte(i)} }

func testAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), testPort)
}

func macIndex(m wire.MAC) int { return int(m[5]) }

// checkLeaks registers a goroutine leak check that runs after every other
// cleanup of t (cleanups run last registered first). For a bubble it is
// registered on the outer t, so it runs after the bubble has ended.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

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

// mesh is a set of test daemons on one in-memory network.
type mesh struct {
	t       *testing.T
	nw      *transporttest.Network
	dir     string // the peer caches
	virtual bool   // in a synctest bubble
}

// inBubble runs f in a synctest bubble with an empty mesh. Every daemon f
// starts is stopped by the bubble's cleanups; the leak check runs after
// the bubble has ended.
func inBubble(t *testing.T, f func(t *testing.T, m *mesh)) {
	checkLeaks(t)
	dir := t.TempDir() // outside: removed after the bubble
	synctest.Test(t, func(t *testing.T) {
		f(t, &mesh{t: t, nw: transporttest.NewNetwork(), dir: dir, virtual: true})
	})
}

// realTimeMesh returns an empty mesh that runs in real time, for a test
// that needs real sockets (they do not block durably, so a bubble's clock
// would stand still while a daemon waits on one).
func realTimeMesh(t *testing.T) *mesh {
	checkLeaks(t)
	return &mesh{t: t, nw: transporttest.NewNetwork(), dir: t.TempDir()}
}

// testNode is one daemon of a mesh.
type testNode struct {
	t      *testing.T
	d      *Daemon
	tap    *taptest.Device
	mac    wire.MAC
	addr   netip.AddrPort
	cache  string // the peer cache file
	logs   *syncBuffer
	sig    chan os.Signal
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
}

// cachePath is the peer cache file of node i.
func (m *mesh) cachePath(i int) string { return filepath.Join(m.dir, fmt.Sprintf("cache%d.json", i)) }

// start starts daemon i with the node's default configuration, its cache
// file in the mesh's directory and the given seeds, listening and dialing
// on the mesh's network; mutate, if not nil, changes the options first.
// It returns once the daemon listens and its loop runs (or Run failed), so
// a node started later finds it when it dials.
func (m *mesh) start(i int, mutate func(*Options), seeds ...int) *testNode {
	m.t.Helper()
	n := &testNode{t: m.t, mac: testMAC(i), addr: testAddr(i), cache: m.cachePath(i), logs: &syncBuffer{},
		tap: taptest.New(taptest.Config{Name: fmt.Sprintf("tap%d", i)}), sig: make(chan os.Signal, 1)}
	nc := node.DefaultConfig()
	nc.MAC, nc.Port = n.mac, testPort
	for _, s := range seeds {
		nc.Seeds = append(nc.Seeds, node.Peer{MAC: testMAC(s), Addr: testAddr(s)})
	}
	opts := Options{
		Node:      nc,
		CacheFile: n.cache,
		Transport: Transport{
			Dialer: m.nw.Dialer(n.mac, n.addr.Addr(), true),
			Listen: func() ([]transport.Listener, error) {
				ln, err := m.nw.Listen(n.mac, n.addr, true)
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
	if mutate != nil {
		mutate(&opts)
	}
	n.cache = opts.CacheFile
	d, err := New(opts)
	if err != nil {
		m.t.Fatal(err)
	}
	n.d = d
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.errc = make(chan error, 1)
	go func() { n.errc <- d.Run(ctx) }()
	m.t.Cleanup(n.stop)
	d.Status() // served by the loop, which starts after the listeners
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

// realTimeSlack is what a real-time mesh adds to the time a test allows:
// real goroutines and sockets take time that virtual time does not.
const realTimeSlack = 10 * time.Second

// waitFor waits until cond holds, for at most within. In a bubble it lets
// every daemon finish what it is doing (synctest.Wait) before each check,
// and only then moves the clock on: a within of zero means cond must hold
// without any time passing. In real time it checks every few
// milliseconds for within plus realTimeSlack.
func (m *mesh) waitFor(within time.Duration, what string, cond func() bool) {
	m.t.Helper()
	if !m.virtual {
		waitFor(m.t, within+realTimeSlack, what, cond)
		return
	}
	start := time.Now()
	for {
		synctest.Wait()
		if cond() {
			return
		}
		if time.Since(start) >= within {
			m.t.Fatalf("no %s within %v (virtual time)", what, within)
		}
		time.Sleep(min(10*time.Millisecond, within-time.Since(start)))
	}
}

// waitFor waits in real time, for tests on real sockets: it checks cond
// every 5 ms for at most d.
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

// frame builds an Ethernet frame.
func frame(dst, src wire.MAC, etype uint16, payload string) []byte {
	f := append(append(append([]byte{}, dst[:]...), src[:]...), byte(etype>>8), byte(etype))
	return append(f, payload...)
}
