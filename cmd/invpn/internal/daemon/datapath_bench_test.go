package daemon

// Benchmarks of the daemon's data path over a real TLS link on the
// loopback: one Daemon with a zero-allocation fake TAP device, and a peer
// driven by the benchmark (a node.Node of its own on a tlstransport link).
//
//	outside: TAP frame → readTAP → loop (node.FrameFromTAP) → link queue →
//	         writer → TLS record on the socket (BenchmarkInsideToOutside)
//	inside:  TLS record → link reader → loop (node.Receive) → TAP write
//	         (BenchmarkOutsideToInside)
//	quiet:   the outside path one frame at a time (BenchmarkOneFrameAtATime)
//
// One op is one frame; allocs/op counts every goroutine of the process.

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/peercache"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// benchTAP is a tapdev.Device that allocates nothing per frame: ReadFrame
// returns copies of frame, as many as the benchmark grants through gate;
// WriteFrame only counts.
type benchTAP struct {
	frame  []byte
	gate   chan int // grants of frames to read
	left   int      // owned by the reading goroutine
	closed chan struct{}
	once   sync.Once

	written atomic.Int64
	want    atomic.Int64
	done    chan struct{} // gets a token when written reaches want
}

func newBenchTAP() *benchTAP {
	return &benchTAP{gate: make(chan int, 16), closed: make(chan struct{}), done: make(chan struct{}, 1)}
}

func (t *benchTAP) ReadFrame(buf []byte) (int, error) {
	for t.left == 0 {
		select {
		case k := <-t.gate:
			t.left = k
		case <-t.closed:
			return 0, tapdev.ErrClosed
		}
	}
	t.left--
	return copy(buf, t.frame), nil
}

func (t *benchTAP) WriteFrame(frame []byte) error {
	if len(frame) >= tapdev.EthernetHeaderLen && frame[12] == 0x88 && frame[13] == 0xb5 {
		if t.written.Add(1) == t.want.Load() {
			select {
			case t.done <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

func (t *benchTAP) Name() string { return "bench0" }
func (t *benchTAP) MTU() int     { return tapdev.DefaultMTU }
func (t *benchTAP) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

// benchPeer is the far end of the daemon's link: a node.Node driven by one
// goroutine that reads the link. Data frames (0x80, 0x84) are counted, not
// given to the node.
type benchPeer struct {
	link transport.Link
	wmu  sync.Mutex // serialises writes: the driver and the benchmark

	recv     atomic.Int64
	target   atomic.Int64  // the count of frames the benchmark waits for
	progress chan struct{} // a token every 64 frames received, and at target
	routed   chan struct{} // closed once the peer has a route to the daemon
	stopped  chan struct{}
}

type benchRig struct {
	d    *Daemon
	tap  *benchTAP
	peer *benchPeer
	dmac wire.MAC
	pmac wire.MAC
	stop func()
}

func startBenchRig(b *testing.B) *benchRig {
	b.Helper()
	dir := b.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		b.Fatal(err)
	}
	r := &benchRig{dmac: wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}, pmac: wire.MAC{0x02, 0x50, 0x56, 0, 0, 2}}
	port := freePort(b)
	tc := issueIdentity(b, caDir, filepath.Join(dir, "d"), r.dmac)
	ptc := issueIdentity(b, caDir, filepath.Join(dir, "p"), r.pmac)

	// The daemon logs nothing but says when it has a route to the peer.
	routed := make(chan struct{})
	log := slog.New(&routeHandler{target: r.pmac, routed: routed})
	tr, err := TLSTransport(tc, []string{netipAddrPort("127.0.0.1", port).String()}, log)
	if err != nil {
		b.Fatal(err)
	}
	r.tap = newBenchTAP()
	r.tap.frame = make([]byte, 64)
	nc := node.DefaultConfig()
	nc.MAC, nc.Port = r.dmac, port
	r.d, err = New(Options{Node: nc, CacheFile: filepath.Join(dir, "d", "cache.json"), Transport: tr, TAP: r.tap, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.d.Run(ctx) }()
	r.d.Status() // returns once Run listens and its loop runs

	dialer, err := tlstransport.NewDialer(ptc)
	if err != nil {
		b.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	l, err := dialer.Dial(dctx, r.dmac, netipAddrPort("127.0.0.1", port))
	dcancel()
	if err != nil {
		b.Fatal(err)
	}
	p := &benchPeer{link: l, progress: make(chan struct{}, 1), routed: make(chan struct{}), stopped: make(chan struct{})}
	r.peer = p
	pnc := node.DefaultConfig()
	pnc.MAC = r.pmac
	pn, err := node.New(withState(pnc, peercache.State{}))
	if err != nil {
		b.Fatal(err)
	}
	go p.drive(pn, r.dmac)

	for what, ch := range map[string]chan struct{}{"daemon has no route to the peer": routed, "peer has no route to the daemon": p.routed} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			b.Fatal(what)
		}
	}
	r.stop = func() {
		cancel()
		<-errc
		l.Close()
		<-p.stopped
	}
	return r
}

// routeHandler is a slog.Handler that drops every record and closes routed
// at the first "route learned" to target.
type routeHandler struct {
	target wire.MAC
	routed chan struct{}
	once   sync.Once
}

func (h *routeHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *routeHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *routeHandler) WithGroup(string) slog.Handler            { return h }

func (h *routeHandler) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != node.EventRouteLearned.String() {
		return nil
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "target" && a.Value.String() == h.target.String() {
			h.once.Do(func() { close(h.routed) })
			return false
		}
		return true
	})
	return nil
}

// drive runs the peer's node: every non-data message goes to the node, and
// its sends are written back on the link.
func (p *benchPeer) drive(n *node.Node, target wire.MAC) {
	defer close(p.stopped)
	now := time.Now()
	n.Step(now, node.LinkUp{Link: 1, Peer: p.link.Peer(), Addr: p.link.RemoteAddr(), Dialed: p.link.Dialed(), Extended: p.link.Extended()})
	p.flush(n)
	routed := false
	var last time.Time
	for {
		msg, err := p.link.ReadMessage()
		if err != nil {
			return
		}
		if len(msg) > 0 && (msg[0] == byte(wire.TypeTargetedFrame) || msg[0] == byte(wire.TypeLimitedFrame)) {
			if c := p.recv.Add(1); c%64 == 0 || c == p.target.Load() {
				select {
				case p.progress <- struct{}{}:
				default:
				}
			}
			// A flood of frames carries no heartbeats to answer: the
			// peer's own timers must still run, or the daemon finds the
			// link silent and closes it after a few seconds.
			if p.recv.Load()%1024 == 0 {
				if now := time.Now(); now.Sub(last) > 50*time.Millisecond {
					n.Step(now, node.Tick{})
					last = now
					p.flush(n)
				}
			}
			continue
		}
		now := time.Now()
		n.Receive(now, 1, msg)
		if now.Sub(last) > 50*time.Millisecond {
			n.Step(now, node.Tick{})
			last = now
		}
		p.flush(n)
		if !routed {
			for _, rt := range n.Routes() {
				if rt.Target == target {
					routed = true
					close(p.routed)
					break
				}
			}
		}
	}
}

func (p *benchPeer) flush(n *node.Node) {
	r := n.Ready()
	var msgs [][]byte
	for _, s := range r.Sends {
		msgs = append(msgs, s.Msg)
	}
	if len(msgs) > 0 {
		p.wmu.Lock()
		_ = p.link.WriteMessages(msgs)
		p.wmu.Unlock()
	}
	n.Advance()
}

// benchFrame is an Ethernet frame of size bytes from src to dst with the
// local experimental EtherType 0x88b5.
func benchFrame(dst, src wire.MAC, size int) []byte {
	f := make([]byte, size)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x88, 0xb5
	return f
}

var benchSizes = []int{64, 512, 1514}

// BenchmarkInsideToOutside: frames read from the TAP device leave on the
// TLS link. The benchmark grants at most window frames beyond those the
// peer has received, so that the link queue (256) never drops.
func BenchmarkInsideToOutside(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			r := startBenchRig(b)
			defer r.stop()
			r.tap.frame = benchFrame(r.pmac, r.dmac, size)
			const window, grant = 192, 32
			base := r.peer.recv.Load()
			r.peer.target.Store(base + int64(b.N))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			sent := 0
			for sent < b.N {
				if int64(sent)-(r.peer.recv.Load()-base) < window {
					k := min(grant, b.N-sent)
					r.tap.gate <- k
					sent += k
					continue
				}
				<-r.peer.progress
			}
			for r.peer.recv.Load()-base < int64(b.N) {
				<-r.peer.progress // one comes when the count reaches target
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/frame")
			frames, writes := r.linkCounters()
			b.ReportMetric(float64(frames)/float64(max(writes, 1)), "frames/write")
		})
	}
}

// BenchmarkOneFrameAtATime: 64-byte frames from the TAP, each once the
// last has reached the peer, as on a quiet link (a ping). The loop's
// batch then holds one input, so whatever the loop spends per batch it
// spends per frame. allocs/op is 1 of 24 B, and not the daemon's: the
// benchmark peer's crypto/tls allocates a reader per socket read
// (readFromUntil). It was 2 and 2.3 KB while receive's batch escaped to
// the heap.
func BenchmarkOneFrameAtATime(b *testing.B) {
	r := startBenchRig(b)
	defer r.stop()
	r.tap.frame = benchFrame(r.pmac, r.dmac, 64)
	base := r.peer.recv.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range int64(b.N) {
		r.peer.target.Store(base + i + 1)
		r.tap.gate <- 1
		for r.peer.recv.Load()-base < i+1 {
			<-r.peer.progress // one comes when the count reaches target
		}
	}
}

// linkCounters returns the frames and writes of the daemon's links, read
// on the loop.
func (r *benchRig) linkCounters() (frames, writes uint64) {
	done := make(chan struct{})
	r.d.ctrl <- func() {
		for _, pl := range r.d.links {
			frames += pl.framesOut.Load()
			writes += pl.writes.Load()
		}
		close(done)
	}
	<-done
	return frames, writes
}

// BenchmarkOutsideToInside: frames arriving on the TLS link, written in
// batches of 32 messages (as a daemon's link writer does), reach the TAP.
func BenchmarkOutsideToInside(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			r := startBenchRig(b)
			defer r.stop()
			msg := (&wire.LimitedFrame{Hops: 8, Frame: benchFrame(r.dmac, r.pmac, size)}).Append(nil)
			batch := make([][]byte, 32)
			for i := range batch {
				batch[i] = msg
			}
			r.tap.written.Store(0)
			r.tap.want.Store(int64(b.N))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				k := min(len(batch), b.N-sent)
				r.peer.wmu.Lock()
				err := r.peer.link.WriteMessages(batch[:k])
				r.peer.wmu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				sent += k
			}
			select {
			case <-r.tap.done:
			case <-time.After(30 * time.Second):
				b.Fatalf("%d of %d frames reached the TAP", r.tap.written.Load(), b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/frame")
		})
	}
}

func netipAddrPort(host string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(host), port)
}
