package daemon

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/transporttest"
	"github.com/invpn/invpn/wire"
)

// testPeer is a neighbour played by the test over an in-memory pipe: it
// announces itself and beats like a live node, and counts the frames that
// reach it. Its link's writes on the daemon's side pass the gate.
type testPeer struct {
	mac    wire.MAC
	link   *gatedLink
	frames atomic.Int64 // unicast frame messages received
	last   atomic.Int64 // when the last of them came, in Unix nanoseconds
}

// startPeers starts daemon 1 with the given queue limit and one accepted
// link per peer, and returns once every peer has a route.
func startPeers(t *testing.T, m *mesh, limit int, peers ...*testPeer) *testNode {
	t.Helper()
	ln := &oneListener{links: make(chan transport.Link, len(peers)), done: make(chan struct{})}
	quiet := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range peers {
		ours, theirs := transporttest.Pipe(testMAC(1), p.mac, true)
		p.link = &gatedLink{Link: ours, gate: make(chan struct{}), closed: make(chan struct{})}
		ln.links <- acceptedLink{p.link}
		wg.Go(func() { // the peer's sending side
			defer theirs.Close()
			beat := node.DefaultConfig().HeartbeatInterval
			every := int(node.DefaultConfig().AnnounceInterval / beat)
			for i := 0; ; i++ {
				msg := (&wire.Heartbeat{}).Append(nil)
				if i%every == 0 {
					msg = (&wire.InitialInfo{ID: uint64(time.Now().UnixMilli()), MAC: p.mac, Port: testPort}).Append(nil)
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
		wg.Go(func() { // the peer's receiving side
			for {
				msg, err := theirs.ReadMessage()
				if err != nil {
					return
				}
				if _, ok := wire.UnicastDst(msg); ok {
					p.frames.Add(1)
					p.last.Store(time.Now().UnixNano())
				}
			}
		})
	}
	n := m.start(1, func(o *Options) {
		o.QueueLimit = limit
		o.Transport.Listen = func() ([]transport.Listener, error) { return []transport.Listener{ln}, nil }
	})
	t.Cleanup(func() { close(quiet); n.stop(); wg.Wait() })
	m.waitFor(time.Second, "routes to every peer", func() bool {
		s := n.d.Status()
		for _, p := range peers {
			if !hasRoute(s, p.mac) {
				return false
			}
		}
		return true
	})
	// The readers' hop table follows the routes at most hopRebuild later.
	// Waiting for it, not sleeping hopRebuild: a sleep ends at the instant
	// the rebuild is due, and which of the two runs first is up to the
	// scheduler (the frames then met no back-pressure, 1 run in 12).
	m.waitFor(time.Second, "every peer in the readers' hop table", func() bool {
		for _, p := range peers {
			if n.d.hops.link(p.mac) == nil {
				return false
			}
		}
		return true
	})
	return n
}

// A link whose writer is slow but keeps writing holds the TAP reader
// instead of losing frames: the host's TCP meets the TAP device's queue,
// not drops at the link queue.
func TestBackPressureHoldsForAMovingLink(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		p := &testPeer{mac: testMAC(9)}
		n := startPeers(t, m, 8, p)
		stop := make(chan struct{})
		defer close(stop)
		go func() { // one write every 2 ms, well inside holdCheck
			for {
				select {
				case p.link.gate <- struct{}{}:
				case <-stop:
					return
				}
				select {
				case <-time.After(2 * time.Millisecond):
				case <-stop:
					return
				}
			}
		}()
		const frames = 300
		for i := range frames {
			if err := n.tap.Inject(frame(p.mac, n.mac, 0x0800, fmt.Sprintf("frame %d ...............................", i))); err != nil {
				t.Fatal(err)
			}
		}
		m.waitFor(10*time.Second, "every frame at the peer", func() bool { return p.frames.Load() == frames })
		if d := n.d.Status().Stats.Drops[node.DropQueueFull]; d != 0 {
			t.Errorf("%d frames dropped at the queue of a link that kept writing", d)
		}
	})
}

// A link whose writer is stuck loses its frames and holds up the frames
// for other links for at most holdCheck.
func TestBackPressureStuckLinkHoldsUpNoOther(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		stuck, free := &testPeer{mac: testMAC(8)}, &testPeer{mac: testMAC(9)}
		n := startPeers(t, m, 8, stuck, free)
		close(free.link.gate) // every write passes; stuck's never does
		const each = 100
		start := time.Now()
		for i := range each {
			for _, p := range []*testPeer{stuck, free} {
				if err := n.tap.Inject(frame(p.mac, n.mac, 0x0800, fmt.Sprintf("frame %d ...............................", i))); err != nil {
					t.Fatal(err)
				}
			}
		}
		m.waitFor(time.Second, "every frame for the free link", func() bool { return free.frames.Load() == each })
		if took := time.Unix(0, free.last.Load()).Sub(start); took > holdCheck {
			t.Errorf("frames for the free link took %v (virtual) behind the stuck one, want at most %v", took, holdCheck)
		}
		if d := n.d.Status().Stats.Drops[node.DropQueueFull]; d == 0 {
			t.Errorf("no frame dropped at the stuck link's queue")
		}
	})
}

func TestWithin(t *testing.T) {
	buf := make([]byte, 2048)
	other := make([]byte, 2048)
	for _, tc := range []struct {
		name string
		b    []byte
		off  int
		ok   bool
	}{
		{"a reslice", buf[10:20], 10, true},
		{"the whole buffer", buf, 0, true},
		{"at the end", buf[2048:], 0, false}, // empty: no element to compare
		{"capped short", buf[10:20:30], 0, false},
		{"another buffer", other[10:20], 0, false},
		{"nil", nil, 0, false},
	} {
		off, ok := within(buf, tc.b)
		if ok != tc.ok || off != tc.off {
			t.Errorf("%s: within = %d, %v; want %d, %v", tc.name, off, ok, tc.off, tc.ok)
		}
	}
}
