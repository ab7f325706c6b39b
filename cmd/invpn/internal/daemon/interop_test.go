package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev/taptest"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// This file links real daemons (over TLS on 127.0.0.1, with fake TAP
// devices) with a hand-written imitation of an original v0.4 node, and
// checks docs/protocol.md#interoperating-with-an-original-node,
// docs/protocol.md#malformed-input and
// docs/protocol.md#how-an-original-node-is-still-served.

// Fixed MACs of the interop tests.
var (
	ioD1   = wire.MAC{0x02, 0x50, 0x56, 0x00, 0x01, 0x01} // the daemon the original links to
	ioD2   = wire.MAC{0x02, 0x50, 0x56, 0x00, 0x01, 0x02} // a daemon behind it
	ioD3   = wire.MAC{0x02, 0x50, 0x56, 0x00, 0x01, 0x03} // a daemon that leaves, to trigger a 0x86
	ioOrig = wire.MAC{0x02, 0x50, 0x56, 0x00, 0x01, 0x0a} // the original node
	ioFar  = wire.MAC{0x02, 0x50, 0x56, 0x00, 0x01, 0x0b} // a node "behind" the original
)

// TestInteropOriginal runs the whole interop story twice: an original
// node dialing a daemon over TLS 1.3, and a daemon dialing an original
// node that allows TLS 1.2 only.
func TestInteropOriginal(t *testing.T) {
	t.Run("original dials, TLS 1.3", func(t *testing.T) { interopStory(t, true, tls.VersionTLS13) })
	t.Run("daemon dials, TLS 1.2", func(t *testing.T) { interopStory(t, false, tls.VersionTLS12) })
}

func interopStory(t *testing.T, origDials bool, tlsVersion uint16) {
	checkLeaks(t)
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	origCert, pool := originalIdentity(t, caDir, ioOrig)

	p1, p2, p3 := freePort(t), freePort(t), freePort(t)
	farPort := freePort(t) // closed: a dial to ioFar is refused on the loopback
	var origLn net.Listener
	var origPort uint16
	var d1Init []node.Peer
	if origDials {
		origPort = freePort(t) // announced only; nothing listens there
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		origLn = ln
		origPort = uint16(ln.Addr().(*net.TCPAddr).Port)
		d1Init = []node.Peer{{MAC: ioOrig, Addr: loopback(origPort)}}
	}
	d1 := startInteropDaemon(t, caDir, dir, ioD1, p1, d1Init...)
	d2 := startInteropDaemon(t, caDir, dir, ioD2, p2, node.Peer{MAC: ioD1, Addr: loopback(p1)})
	d3 := startInteropDaemon(t, caDir, dir, ioD3, p3, node.Peer{MAC: ioD1, Addr: loopback(p1)})
	waitFor(t, 5*time.Second, "routes between the daemons", func() bool {
		s1, s2 := d1.d.Status(), d2.d.Status()
		return hasRoute(s1, ioD2) && hasRoute(s1, ioD3) && hasRoute(s2, ioD1) && hasRoute(s2, ioD3)
	})

	// The original links to d1 (docs/protocol.md#interoperating-with-an-original-node: no ALPN,
	// its own RSA key, CN = MAC, TLS 1.2 or 1.3).
	var conn *tls.Conn
	if origDials {
		conn = dialOriginal(t, loopback(p1).String(), origCert, pool, tlsVersion, ioD1)
	} else {
		conn = acceptOriginal(t, origLn, origCert, pool, tlsVersion, ioD1)
	}
	cs := conn.ConnectionState()
	if cs.Version != tlsVersion || cs.NegotiatedProtocol != "" {
		t.Fatalf("TLS version %x, ALPN %q; want %x and none", cs.Version, cs.NegotiatedProtocol, tlsVersion)
	}
	o := newOriginal(t, conn, ioOrig, origPort)
	o.announce()
	waitFor(t, 5*time.Second, "routes to the original", func() bool {
		r1, ok1 := routeTo(d1.d.Status(), ioOrig)
		r2, ok2 := routeTo(d2.d.Status(), ioOrig)
		return ok1 && r1.NextHop == ioOrig && ok2 && r2.NextHop == ioD1
	})
	for _, l := range d1.d.Status().Links {
		if l.Peer == ioOrig && l.Extended {
			t.Fatalf("d1's link to the original is extended: %+v", l)
		}
	}
	origLink := linkTo(t, d1, ioOrig)

	// Its announcements reach it as seed types: d1's own as 0x00, d2's as a
	// 0x01 with the address d1 sees
	// (docs/protocol.md#how-an-original-node-is-still-served).
	o.wait(t, "0x00 from d1", func(m []byte) bool {
		ii, err := wire.DecodeInitialInfo(m)
		return err == nil && ii.MAC == ioD1 && ii.Port == p1
	})
	o.wait(t, "0x01 about d2", func(m []byte) bool {
		in, err := wire.DecodeInfo(m)
		return err == nil && in.MAC == ioD2 && in.Port == p2 && in.Addr == netip.MustParseAddr("127.0.0.1")
	})
	// The original's 0x00 reached d2 as an info with its address.
	waitFor(t, 5*time.Second, "the original in d2's cache", func() bool {
		return cacheHas(d2.d.Status(), ioOrig, loopback(origPort))
	})

	// Routable: 0x80 from the original to d1 and, relayed, to d2.
	toD1 := frame(ioD1, ioOrig, 0x0800, "original to d1")
	toD2 := frame(ioD2, ioOrig, 0x0800, "original to d2 through d1")
	o.send(t, (&wire.TargetedFrame{Frame: toD1}).Append(nil))
	o.send(t, (&wire.TargetedFrame{Frame: toD2}).Append(nil))
	d1.tap.wait(t, "0x80 from the original", func(f []byte) bool { return bytes.Equal(f, toD1) })
	d2.tap.wait(t, "0x80 from the original via d1", func(f []byte) bool { return bytes.Equal(f, toD2) })
	// ... and frames from the daemons' TAPs to its MAC reach it as 0x80.
	fromD1 := frame(ioOrig, ioD1, 0x0800, "d1 to original")
	fromD2 := frame(ioOrig, ioD2, 0x0800, "d2 to original through d1")
	d1.inject(t, fromD1)
	d2.inject(t, fromD2)
	for _, f := range [][]byte{fromD1, fromD2} {
		o.wait(t, "0x80 "+string(f[14:]), func(m []byte) bool {
			return bytes.Equal(m, (&wire.TargetedFrame{Frame: f}).Append(nil))
		})
	}
	// A broadcast from the original reaches both daemons' TAPs.
	bcast := wire.BroadcastFrame{ID: o.nextID(), Src: ioOrig, Payload: []byte("\x08\x06 original broadcast")}
	o.send(t, bcast.Append(nil))
	want := bcast.AppendEthernet(nil)
	d1.tap.wait(t, "the original's broadcast", func(f []byte) bool { return bytes.Equal(f, want) })
	d2.tap.wait(t, "the original's broadcast", func(f []byte) bool { return bytes.Equal(f, want) })

	// Echoes: the original sends everything back (defect 1). A broadcast
	// from d1 must not come back to d1's TAP; one from d2 must reach d1's
	// TAP once although the original echoes it to d1 again; a multicast
	// reaches the original as a 0x81 (never 0x82).
	o.setEcho(true)
	bD1 := frame(wire.Broadcast, ioD1, 0x0806, "arp from d1")
	bD2 := frame(wire.Broadcast, ioD2, 0x0806, "arp from d2")
	mD2 := frame(wire.MAC{0x33, 0x33, 0, 0, 0, 1}, ioD2, 0x86dd, "ipv6 all-nodes from d2")
	dup0 := d1.d.Status().Stats.Duplicates
	d1.inject(t, bD1)
	d2.inject(t, bD2)
	d2.inject(t, mD2)
	o.wait(t, "0x81 for d2's multicast", func(m []byte) bool {
		b, err := wire.DecodeBroadcastFrame(m)
		return err == nil && b.Src == ioD2 && bytes.Equal(b.Payload, mD2[12:])
	})
	d2.tap.wait(t, "d1's broadcast", func(f []byte) bool { return bytes.Equal(f, bD1) })
	d1.tap.wait(t, "d2's broadcast", func(f []byte) bool { return bytes.Equal(f, bD2) })
	d1.tap.wait(t, "d2's multicast", func(f []byte) bool { return bytes.Equal(f, mD2) })
	waitFor(t, 2*time.Second, "the echoes counted as duplicates at d1", func() bool {
		return d1.d.Status().Stats.Duplicates >= dup0+2
	})
	// Let echoes of announcements arrive: d1's own 0x00 comes back as a
	// 0x01, its 0x01 about d2 as it was. A frame the original sends after
	// them reaches d1's TAP only once d1 has handled them (one link, read
	// in order).
	o.waitEcho(t, "d1's own announcement", func(m []byte) bool {
		in, err := wire.DecodeInfo(m)
		return err == nil && in.MAC == ioD1
	})
	o.waitEcho(t, "d1's announcement of d2", func(m []byte) bool {
		in, err := wire.DecodeInfo(m)
		return err == nil && in.MAC == ioD2
	})
	afterEchoes := frame(ioD1, ioOrig, 0x0800, "sent after the echoes")
	o.send(t, (&wire.TargetedFrame{Frame: afterEchoes}).Append(nil))
	d1.tap.wait(t, "a frame sent after the echoes", func(f []byte) bool { return bytes.Equal(f, afterEchoes) })
	if n := d1.tap.count(func(f []byte) bool { return bytes.Equal(f, bD2) }); n != 1 {
		t.Errorf("d2's broadcast written %d times to d1's TAP, want 1", n)
	}
	if n := d1.tap.count(func(f []byte) bool { return wire.MAC(f[6:12]) == ioD1 }); n != 0 {
		t.Errorf("d1 wrote %d of its own frames (echoed) to its TAP", n)
	}
	if n := d2.tap.count(func(f []byte) bool { return wire.MAC(f[6:12]) == ioD2 }); n != 0 {
		t.Errorf("d2 wrote %d of its own frames (echoed) to its TAP", n)
	}
	s1 := d1.d.Status()
	if _, ok := routeTo(s1, ioD1); ok {
		t.Errorf("d1 has a route to itself from an echo: %+v", s1.Routes)
	}
	if r, _ := routeTo(s1, ioD2); r.NextHop != ioD2 {
		t.Errorf("d1 routes to d2 via %s after echoes, want d2 directly", r.NextHop)
	}
	if o.echoed() == 0 {
		t.Errorf("the original echoed nothing")
	}
	o.setEcho(false)

	// An IPv4-mapped type-2 address in a 0x01 is accepted as the IPv4
	// address (docs/protocol.md#interoperating-with-an-original-node).
	far := wire.Info{ID: o.nextID(), MAC: ioFar, Port: farPort, Addr: netip.MustParseAddr("::ffff:127.0.0.1")}
	if msg := far.Append(nil); msg[18] != wire.AddrIPv6 || len(msg) != 19+16 {
		t.Fatalf("test bug: the info is not type 2: % x", msg)
	}
	o.send(t, far.Append(nil))
	waitFor(t, 5*time.Second, "the mapped address in the caches", func() bool {
		return cacheHas(d1.d.Status(), ioFar, loopback(farPort)) && cacheHas(d2.d.Status(), ioFar, loopback(farPort))
	})
	if r, ok := routeTo(d1.d.Status(), ioFar); !ok || r.NextHop != ioOrig {
		t.Errorf("d1's route to the far node = %+v, %v; want via the original", r, ok)
	}

	// Malformed messages from a seed-protocol peer are dropped and counted;
	// the link stays up and nothing is forwarded
	// (docs/protocol.md#malformed-input and docs/protocol.md#defect-11).
	before1, before2 := d1.d.Status().Stats, d2.d.Status().Stats
	bad := malformedMessages(o)
	for _, m := range bad {
		o.send(t, m)
	}
	o.send(t, []byte{0x42, 1, 2, 3}) // an unknown type: counted and skipped
	waitFor(t, 5*time.Second, "malformed messages counted", func() bool {
		s := d1.d.Status().Stats
		return s.Drops[node.DropMalformed] >= before1.Drops[node.DropMalformed]+uint64(len(bad)) &&
			s.Drops[node.DropUnknownType] >= before1.Drops[node.DropUnknownType]+1
	})
	after1, after2 := d1.d.Status().Stats, d2.d.Status().Stats
	if got := after1.Drops[node.DropMalformed] - before1.Drops[node.DropMalformed]; got != uint64(len(bad)) {
		t.Errorf("d1 counted %d malformed messages, sent %d", got, len(bad))
	}
	if after1.Violations != before1.Violations || after2.Violations != before2.Violations ||
		after2.Drops[node.DropMalformed] != before2.Drops[node.DropMalformed] {
		t.Errorf("malformed input was forwarded or treated as a violation: d1 %+v, d2 %+v", after1, after2)
	}
	if l := linkTo(t, d1, ioOrig); l.ID != origLink.ID {
		t.Errorf("the original's link changed from %d to %d", origLink.ID, l.ID)
	}
	again := frame(ioD2, ioOrig, 0x0800, "still routed after garbage")
	o.send(t, (&wire.TargetedFrame{Frame: again}).Append(nil))
	d2.tap.wait(t, "0x80 after the malformed messages", func(f []byte) bool { return bytes.Equal(f, again) })

	// Health requests and announce requests never reach the original
	// (docs/protocol.md#interoperating-with-an-original-node). d2 starts a
	// health request that d1 floods on; d3 leaves, so d1 floods a 0x86.
	h, err := d2.d.Handler().Health(context.Background(), 500*time.Millisecond)
	if err != nil {
		t.Fatalf("health from d2: %v", err)
	}
	if !slices.ContainsFunc(h.Answers, func(r node.HealthResult) bool { return r.Response.Origin == ioD1 }) {
		t.Errorf("d2's health request got no answer from d1: %+v", h.Answers)
	}
	d3.stop()
	waitFor(t, 5*time.Second, "d1 to notice d3 left", func() bool { _, ok := routeTo(d1.d.Status(), ioD3); return !ok })
	// Whatever d1 sent the original until now (a 0x86 would have gone out
	// when d3 left) arrives before a frame d1 sends it now: one queue, one
	// link, in order.
	afterLeave := frame(ioOrig, ioD1, 0x0800, "d1 to original after d3 left")
	d1.inject(t, afterLeave)
	o.wait(t, "a frame sent after d3 left", func(m []byte) bool {
		return bytes.Equal(m, (&wire.TargetedFrame{Frame: afterLeave}).Append(nil))
	})

	// A 0x00 that claims another member's MAC closes the link in every
	// case (defect 4), and hijacks nothing.
	spoof := wire.InitialInfo{ID: o.nextID() + 1e9, MAC: ioD2, Port: origPort}
	o.send(t, spoof.Append(nil))
	select {
	case <-o.done:
	case <-time.After(5 * time.Second):
		t.Fatal("d1 did not close the link of an original that announced d2's MAC")
	}
	waitFor(t, 2*time.Second, "the violation counted", func() bool { return d1.d.Status().Stats.Violations == after1.Violations+1 })
	s1 = d1.d.Status()
	if r, ok := routeTo(s1, ioD2); !ok || r.NextHop != ioD2 {
		t.Errorf("d1's route to d2 after the spoof = %+v, %v; want via d2", r, ok)
	}
	if !cacheHas(s1, ioD2, loopback(p2)) {
		t.Errorf("d1's cache entry for d2 was poisoned: %+v", s1.Cache)
	}
	if !cacheHas(d2.d.Status(), ioD1, loopback(p1)) {
		t.Errorf("d2's cache entry for d1 changed: %+v", d2.d.Status().Cache)
	}

	// Everything the original received was a well-formed seed message.
	o.checkSeedOnly(t)
}

// malformedMessages returns messages that an original node would relay
// unchecked and that must be dropped (docs/protocol.md#defect-11).
func malformedMessages(o *original) [][]byte {
	ii := (&wire.InitialInfo{ID: o.nextID(), MAC: o.mac, Port: o.port}).Append(nil)
	v2 := slices.Clone(ii)
	v2[1] = 2 // version 2
	info := (&wire.Info{ID: o.nextID(), MAC: ioFar, Port: 1, Addr: netip.MustParseAddr("127.0.0.1")}).Append(nil)
	badType := slices.Clone(info)
	badType[18] = 7 // addr_type 7
	return [][]byte{
		append(slices.Clone(ii), 0xff),    // 0x00 with a trailing byte
		v2,                                // 0x00 of version 2
		info[:10],                         // 0x01 cut in its id
		badType,                           // 0x01 with addr_type 7
		append(slices.Clone(info), 1, 2),  // 0x01 longer than its addr_type says
		append([]byte{0x80}, ioD2[:]...),  // 0x80 with a 6-byte body
		{0x81, 0, 0, 0, 0, 0, 0, 0, 1, 2}, // 0x81 cut in its source
	}
}

// interopDaemon is a daemon on TLS over the loopback with a fake TAP.
type interopDaemon struct {
	mac    wire.MAC
	d      *Daemon
	tap    *tapLog
	raw    *taptest.Device
	logs   *syncBuffer
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
	t      *testing.T
}

func loopback(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
}

// startInteropDaemon issues a certificate for mac and runs a daemon as
// `invpn run` builds it, listening on 127.0.0.1:port, with min_links 1 so
// that it dials only its seeds. It refreshes its routes every 200 ms
// ([timers] announce = 100ms, refresh = 200ms; an original neighbour gets
// each refresh round as an announcement): the test runs in real time and
// waits for echoes of announcements.
func startInteropDaemon(t *testing.T, caDir, dir string, mac wire.MAC, port uint16, seeds ...node.Peer) *interopDaemon {
	t.Helper()
	return startNetDaemon(t, caDir, dir, mac, port, []string{TransportTLS}, seeds...)
}

// startNetDaemon is startInteropDaemon over the transports names
// ([network] transports).
func startNetDaemon(t *testing.T, caDir, dir string, mac wire.MAC, port uint16, names []string, seeds ...node.Peer) *interopDaemon {
	t.Helper()
	nd := filepath.Join(dir, mac.String())
	tc := issueIdentity(t, caDir, nd, mac)
	nc := node.DefaultConfig()
	nc.MAC, nc.Port, nc.Seeds, nc.MinLinks = mac, port, seeds, 1
	nc.AnnounceInterval = 100 * time.Millisecond
	nc.RefreshInterval = 200 * time.Millisecond
	nc.TriggerGap = nc.AnnounceInterval / 10 // as `invpn run` derives it
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr, err := NetTransport(tc, []string{loopback(port).String()}, names, log)
	if err != nil {
		t.Fatal(err)
	}
	raw := taptest.New(taptest.Config{Name: "tap-" + mac.String()[15:]})
	d, err := New(Options{Node: nc, CacheFile: filepath.Join(nd, "cache.json"), Transport: tr, TAP: raw, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &interopDaemon{mac: mac, d: d, raw: raw, tap: newTapLog(raw), logs: logs, cancel: cancel, errc: make(chan error, 1), t: t}
	go func() { n.errc <- d.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop stops the daemon and its TAP collector and waits for both.
func (n *interopDaemon) stop() {
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.errc:
			if err != nil {
				n.t.Errorf("daemon %s: Run: %v", n.mac, err)
			}
		case <-time.After(10 * time.Second):
			n.t.Errorf("daemon %s: Run did not return within 10 s", n.mac)
		}
		n.tap.stop()
		if n.t.Failed() {
			n.t.Logf("log of %s (last 6000 bytes):\n%s", n.mac, tailString(n.logs.String(), 6000))
		}
	})
}

func (n *interopDaemon) inject(t *testing.T, f []byte) {
	t.Helper()
	if err := n.raw.Inject(f); err != nil {
		t.Fatal(err)
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func routeTo(s Snapshot, mac wire.MAC) (node.RouteInfo, bool) {
	for _, r := range s.Routes {
		if r.Target == mac {
			return r, true
		}
	}
	return node.RouteInfo{}, false
}

func cacheHas(s Snapshot, mac wire.MAC, addr netip.AddrPort) bool {
	for _, p := range s.Cache {
		if p.MAC == mac {
			return p.Addr == addr
		}
	}
	return false
}

func linkTo(t *testing.T, n *interopDaemon, peer wire.MAC) LinkStatus {
	t.Helper()
	for _, l := range n.d.Status().Links {
		if l.Peer == peer {
			return l
		}
	}
	t.Fatalf("%s has no link to %s", n.mac, peer)
	return LinkStatus{}
}

// tapLog collects every frame a daemon writes to its fake TAP.
type tapLog struct {
	mu      sync.Mutex
	frames  [][]byte
	changed changes // signalled at each frame
	quit    chan struct{}
	done    chan struct{}
}

func newTapLog(d *taptest.Device) *tapLog {
	l := &tapLog{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case f := <-d.Written():
				l.mu.Lock()
				l.frames = append(l.frames, f)
				l.mu.Unlock()
				l.changed.signal()
			case <-l.quit:
				return
			}
		}
	}()
	return l
}

func (l *tapLog) stop() { close(l.quit); <-l.done }

func (l *tapLog) count(pred func([]byte) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, f := range l.frames {
		if pred(f) {
			n++
		}
	}
	return n
}

func (l *tapLog) wait(t *testing.T, what string, pred func([]byte) bool) {
	t.Helper()
	await(t, 5*time.Second, what+" on a TAP", &l.changed, func() bool { return l.count(pred) > 0 })
}

// original imitates an original v0.4 node on one link: it reads and
// records every message, and, while echo is on, sends announcements and
// broadcasts back as the original does (defect 1), turning a 0x00 into a
// 0x01 with the address it sees.
type original struct {
	mac  wire.MAC
	port uint16
	conn *tls.Conn
	peer netip.Addr // the address of the other end, as the original sees it

	wmu sync.Mutex // guards w and id
	w   *wire.Writer
	id  uint64

	mu      sync.Mutex
	msgs    [][]byte
	echo    bool
	echoes  [][]byte // the messages echoed back
	err     error
	changed changes       // signalled at each message received or echoed
	done    chan struct{} // closed when the reader stops
}

func newOriginal(t *testing.T, c *tls.Conn, mac wire.MAC, port uint16) *original {
	o := &original{mac: mac, port: port, conn: c, w: wire.NewWriter(c), done: make(chan struct{}),
		peer: c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()}
	go o.read()
	t.Cleanup(func() {
		c.Close()
		<-o.done
		if t.Failed() {
			o.mu.Lock()
			t.Logf("the original received %d messages, reader stopped with %v", len(o.msgs), o.err)
			o.mu.Unlock()
		}
	})
	return o
}

func (o *original) read() {
	defer close(o.done)
	r := wire.NewReader(o.conn)
	for {
		m, err := r.Next()
		if err != nil {
			o.mu.Lock()
			o.err = err
			o.mu.Unlock()
			return
		}
		m = slices.Clone(m)
		o.mu.Lock()
		o.msgs = append(o.msgs, m)
		echo := o.echo
		o.mu.Unlock()
		o.changed.signal()
		if !echo || len(m) == 0 {
			continue
		}
		var back []byte
		switch wire.Type(m[0]) {
		case wire.TypeInitialInfo:
			if ii, err := wire.DecodeInitialInfo(m); err == nil {
				back = (&wire.Info{ID: ii.ID, MAC: ii.MAC, Port: ii.Port, Addr: o.peer}).Append(nil)
			}
		case wire.TypeInfo, wire.TypeBroadcastFrame:
			back = m
		}
		if back != nil {
			if o.write(back) != nil {
				continue
			}
			o.mu.Lock()
			o.echoes = append(o.echoes, back)
			o.mu.Unlock()
			o.changed.signal()
		}
	}
}

func (o *original) write(m []byte) error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	return o.w.WriteMessage(m)
}

func (o *original) send(t *testing.T, m []byte) {
	t.Helper()
	if err := o.write(m); err != nil {
		t.Fatalf("the original: write % x: %v", m[:min(len(m), 16)], err)
	}
}

// nextID returns an id as the original makes them: its clock in ms, bumped
// to stay increasing.
func (o *original) nextID() uint64 {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	o.id = max(uint64(time.Now().UnixMilli()), o.id+1)
	return o.id
}

func (o *original) announce() {
	m := (&wire.InitialInfo{ID: o.nextID(), MAC: o.mac, Port: o.port}).Append(nil)
	o.write(m)
}

func (o *original) setEcho(on bool) {
	o.mu.Lock()
	o.echo = on
	o.mu.Unlock()
}

func (o *original) echoed() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.echoes)
}

// wait waits up to 5 s for a received message matching pred.
func (o *original) wait(t *testing.T, what string, pred func([]byte) bool) {
	t.Helper()
	await(t, 5*time.Second, "the original to receive "+what, &o.changed, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return slices.ContainsFunc(o.msgs, pred)
	})
}

// waitEcho waits up to 5 s until the original has echoed a message
// matching pred: the echo has been written to its link.
func (o *original) waitEcho(t *testing.T, what string, pred func([]byte) bool) {
	t.Helper()
	await(t, 5*time.Second, "the original to echo "+what, &o.changed, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return slices.ContainsFunc(o.echoes, pred)
	})
}

// changes wakes the goroutines waiting for a value to change: a test
// helper that records something signals it after each record.
type changes struct {
	mu sync.Mutex
	ch chan struct{} // closed at the next signal; nil when nobody waits
}

func (c *changes) signal() {
	c.mu.Lock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
	c.mu.Unlock()
}

// next returns a channel closed at the next signal.
func (c *changes) next() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// await waits up to d until cond holds, checking it at every signal of c.
func await(t *testing.T, d time.Duration, what string, c *changes, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		next := c.next() // before the check: a change after it still wakes us
		if cond() {
			return
		}
		select {
		case <-next:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// checkSeedOnly checks that every message the original received is one of
// the seed types it can handle, well formed: never 0x02 (its handler loops
// or crashes) and never an extension (0x82, 0x84, 0x85, 0x86).
func (o *original) checkSeedOnly(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	counts := map[wire.Type]int{}
	for _, m := range o.msgs {
		if len(m) == 0 {
			t.Errorf("the original received an empty message")
			continue
		}
		typ := wire.Type(m[0])
		counts[typ]++
		switch typ {
		case wire.TypeInitialInfo, wire.TypeInfo, wire.TypeTargetedFrame, wire.TypeBroadcastFrame:
			if _, err := wire.Decode(m); err != nil {
				t.Errorf("the original received a malformed %v: %v", typ, err)
			}
		default:
			t.Errorf("the original received %v: % x", typ, m[:min(len(m), 32)])
		}
		if typ == wire.TypeInitialInfo {
			if ii, _ := wire.DecodeInitialInfo(m); ii.MAC != ioD1 {
				t.Errorf("the original received a 0x00 for %s from d1", ii.MAC)
			}
		}
	}
	t.Logf("the original received %d messages: %v", len(o.msgs), counts)
	if counts[wire.TypeInitialInfo] == 0 || counts[wire.TypeInfo] == 0 || counts[wire.TypeTargetedFrame] == 0 || counts[wire.TypeBroadcastFrame] == 0 {
		t.Errorf("the original missed a seed type: %v", counts)
	}
}

// originalIdentity makes the original's identity as its openssl recipe
// does: an RSA key and a certificate with CN = MAC and no extended key
// usage, signed by the CA in caDir. It returns the certificate and the CA
// pool.
func originalIdentity(t *testing.T, caDir string, mac wire.MAC) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	caCert, err := pki.LoadKeyPair(filepath.Join(caDir, pki.CACertFile), filepath.Join(caDir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: mac.String()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert.Leaf, &key.PublicKey, caCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	// The PEM round trip checks the certificate parses like a file would.
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCertPool(filepath.Join(caDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert, pool
}

// originalTLS is an original node's TLS configuration
// (docs/protocol.md#interoperating-with-an-original-node):
// no ALPN, TLS 1.2 up to maxVersion, a client
// certificate requested without naming a CA, the chain checked against the
// CA and, as a client, the peer's CN compared with the MAC expected.
func originalTLS(cert tls.Certificate, pool *x509.CertPool, maxVersion uint16, want wire.MAC) *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         maxVersion,
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true, // checked below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no peer certificate")
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			if want != (wire.MAC{}) {
				if got, err := tlstransport.MACFromCert(leaf); err != nil || got != want {
					return fmt.Errorf("peer %q is not %s", leaf.Subject.CommonName, want)
				}
			}
			return nil
		},
	}
}

func dialOriginal(t *testing.T, addr string, cert tls.Certificate, pool *x509.CertPool, maxVersion uint16, want wire.MAC) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, originalTLS(cert, pool, maxVersion, want))
	if err != nil {
		t.Fatalf("the original: dial %s: %v", addr, err)
	}
	return c
}

// acceptOriginal accepts one connection on ln as the original's server and
// closes ln, so later dials to the original are refused.
func acceptOriginal(t *testing.T, ln net.Listener, cert tls.Certificate, pool *x509.CertPool, maxVersion uint16, want wire.MAC) *tls.Conn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	ln.Close()
	if err != nil {
		t.Fatalf("the original: accept: %v", err)
	}
	tc := tls.Server(c, originalTLS(cert, pool, maxVersion, wire.MAC{}))
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.Close()
		t.Fatalf("the original: handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	if got, _ := tlstransport.MACFromCert(tc.ConnectionState().PeerCertificates[0]); got != want {
		t.Fatalf("the original accepted %s, want %s", got, want)
	}
	return tc
}
