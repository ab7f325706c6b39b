//go:build linux

package tapdev

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// needE2E skips t (or fails it when INVPN_REQUIRE_E2E=1) with reason.
func needE2E(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("INVPN_REQUIRE_E2E") == "1" {
		t.Fatalf("INVPN_REQUIRE_E2E=1 but %s", msg)
	}
	t.Skip(msg)
}

// requireTAP skips unless the test can create TAP devices and network
// namespaces: root with /dev/net/tun.
func requireTAP(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		needE2E(t, "TAP tests need root (CAP_NET_ADMIN) to create network namespaces and TAP devices")
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		needE2E(t, "TAP tests need /dev/net/tun: %v", err)
	}
	f.Close()
}

// verifyNoLeaks registers a check for leaked goroutines that runs after all
// other cleanups of t (call it first).
func verifyNoLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// onLockedThread runs fn on a fresh OS thread switched to ns (or, when
// ns is nil, fn switches it) and returns fn's error. The thread is put back
// in its original namespace; when that fails it is left locked so that Go
// discards it instead of reusing a thread in the wrong namespace.
func onLockedThread(ns *netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return // thread stays locked and is discarded
		}
		defer orig.Close()
		if ns != nil {
			if err := netns.Set(*ns); err != nil {
				errc <- fmt.Errorf("enter netns: %w", err)
				return
			}
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newNetns creates an anonymous network namespace that lives as long as the
// returned handle (and any device in it) is open; the handle is closed by
// t.Cleanup. It returns the handle and a netlink handle inside it.
func newNetns(t *testing.T) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	var ns netns.NsHandle
	err := onLockedThread(nil, func() error {
		var err error
		ns, err = netns.New() // unshares this thread only
		return err
	})
	if err != nil {
		needE2E(t, "cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in test netns: %v", err)
	}
	t.Cleanup(h.Close)
	return ns, h
}

// openIn opens a TAP device with cfg inside ns and closes it in t.Cleanup.
func openIn(t *testing.T, ns netns.NsHandle, cfg Config) *TAP {
	t.Helper()
	var tap *TAP
	err := onLockedThread(&ns, func() error {
		var err error
		tap, err = Open(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { tap.Close() })
	return tap
}

// testName is a unique interface name for a test device: "ivt" + digits.
func testName() string { return fmt.Sprintf("ivt%06d", rand.IntN(1_000_000)) }

func TestOpenConfiguresDevice(t *testing.T) {
	verifyNoLeaks(t)
	requireTAP(t)
	ns, h := newNetns(t)

	mac := wire.MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x01}
	name := testName()
	v4 := netip.MustParsePrefix("10.78.0.1/24")
	v6 := netip.MustParsePrefix("fd00:78::1/64")
	tap := openIn(t, ns, Config{Name: name, MAC: mac, MTU: 1400, Addresses: []netip.Prefix{v4, v6}})

	if tap.Name() != name {
		t.Errorf("Name() = %q, want %q", tap.Name(), name)
	}
	if tap.MTU() != 1400 {
		t.Errorf("MTU() = %d, want 1400", tap.MTU())
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Fatalf("device %s is visible outside the test namespace", name)
	}

	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("LinkByName(%s) in test netns: %v", name, err)
	}
	attrs := link.Attrs()
	if link.Type() != "tuntap" {
		t.Errorf("link type = %q, want tuntap", link.Type())
	}
	if tt, ok := link.(*netlink.Tuntap); ok && tt.Mode != netlink.TUNTAP_MODE_TAP {
		t.Errorf("tuntap mode = %v, want TAP", tt.Mode)
	}
	if !bytes.Equal(attrs.HardwareAddr, mac[:]) {
		t.Errorf("MAC = %s, want %s", attrs.HardwareAddr, mac)
	}
	if attrs.MTU != 1400 {
		t.Errorf("MTU = %d, want 1400", attrs.MTU)
	}
	if attrs.Flags&net.FlagUp == 0 {
		t.Errorf("flags = %v, want up", attrs.Flags)
	}

	addrs := listAddrs(t, h, link)
	a4, ok := addrs[v4]
	if !ok {
		t.Errorf("address %s missing; have %v", v4, keys(addrs))
	} else if want := net.IPv4(10, 78, 0, 255).To4(); !a4.Broadcast.Equal(want) {
		t.Errorf("broadcast of %s = %v, want %v", v4, a4.Broadcast, want)
	}
	a6, ok := addrs[v6]
	if !ok {
		t.Errorf("address %s missing; have %v", v6, keys(addrs))
	} else {
		if a6.Flags&unix.IFA_F_NODAD == 0 {
			t.Errorf("flags of %s = %#x, want IFA_F_NODAD", v6, a6.Flags)
		}
		if a6.Flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("%s is tentative (flags %#x): DAD was not skipped", v6, a6.Flags)
		}
	}

	if err := tap.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tap.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := h.LinkByName(name); err == nil {
		t.Errorf("device %s still exists after Close", name)
	}
}

// listAddrs returns link's addresses keyed by prefix, retrying a dump that
// the kernel interrupted.
func listAddrs(t *testing.T, h *netlink.Handle, link netlink.Link) map[netip.Prefix]netlink.Addr {
	t.Helper()
	var list []netlink.Addr
	var err error
	for range 5 {
		list, err = h.AddrList(link, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		t.Fatalf("AddrList: %v", err)
	}
	m := make(map[netip.Prefix]netlink.Addr)
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP)
		bits, _ := a.Mask.Size()
		m[netip.PrefixFrom(ip.Unmap(), bits)] = a
	}
	return m
}

func keys(m map[netip.Prefix]netlink.Addr) []netip.Prefix {
	var ks []netip.Prefix
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return ks
}

// TestFrameExchange writes an ARP request into the TAP (as if it came from
// the mesh) and reads the kernel's ARP reply back: frames cross the device
// whole, without FCS, in both directions. All traffic stays inside the test
// namespace.
func TestFrameExchange(t *testing.T) {
	// Both kinds of device: the plain one (water) and the one with
	// offloads; both read and write with raw calls (rawfd), whose
	// "closed" error must still come out as ErrClosed.
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) { testFrameExchange(t, offload) })
	}
}

func testFrameExchange(t *testing.T, offload bool) {
	verifyNoLeaks(t)
	requireTAP(t)
	ns, _ := newNetns(t)

	tapMAC := wire.MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x01}
	peerMAC := wire.MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x02}
	tap := openIn(t, ns, Config{
		Name:      testName(),
		MAC:       tapMAC,
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")},
		Offload:   offload,
	})
	if got := tap.Offloads(); got != offload {
		t.Fatalf("Offloads() = %v, want %v", got, offload)
	}

	frames := make(chan []byte, 64)
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, tap.MTU()+EthernetHeaderLen)
		for {
			n, err := tap.ReadFrame(buf)
			if err != nil {
				readErr <- err
				close(frames)
				return
			}
			select {
			case frames <- bytes.Clone(buf[:n]):
			default: // the test only wants the ARP reply; drop other chatter
			}
		}
	}()

	req := arpFrame(wire.Broadcast, peerMAC, 1, peerMAC, [4]byte{10, 78, 0, 2}, wire.MAC{}, [4]byte{10, 78, 0, 1})
	if err := tap.WriteFrame(req); err != nil {
		t.Fatalf("WriteFrame(ARP request): %v", err)
	}
	want := arpFrame(peerMAC, tapMAC, 2, tapMAC, [4]byte{10, 78, 0, 1}, peerMAC, [4]byte{10, 78, 0, 2})

	timeout := time.After(10 * time.Second) // only bounds a failing test
	var seen int
wait:
	for {
		select {
		case f := <-frames:
			seen++
			// The kernel may pad the reply; compare the header and ARP body.
			if len(f) >= len(want) && bytes.Equal(f[:len(want)], want) {
				break wait
			}
		case <-timeout:
			t.Fatalf("no ARP reply read from %s within 10s (%d other frames read)", tap.Name(), seen)
		}
	}

	if err := tap.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-readErr; !errors.Is(err, ErrClosed) {
		t.Errorf("ReadFrame after Close = %v, want ErrClosed", err)
	}
	if err := tap.WriteFrame(req); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteFrame after Close = %v, want ErrClosed", err)
	}
}

// arpFrame builds an Ethernet frame carrying an ARP packet for IPv4.
func arpFrame(dst, src wire.MAC, op uint16, sha wire.MAC, spa [4]byte, tha wire.MAC, tpa [4]byte) []byte {
	f := make([]byte, 0, 42)
	f = append(f, dst[:]...)
	f = append(f, src[:]...)
	f = append(f, 0x08, 0x06)                   // EtherType ARP
	f = append(f, 0x00, 0x01, 0x08, 0x00, 6, 4) // Ethernet, IPv4, hlen, plen
	f = append(f, byte(op>>8), byte(op))
	f = append(f, sha[:]...)
	f = append(f, spa[:]...)
	f = append(f, tha[:]...)
	f = append(f, tpa[:]...)
	return f
}

func TestOpenNameInUse(t *testing.T) {
	verifyNoLeaks(t)
	requireTAP(t)
	ns, _ := newNetns(t)
	first := openIn(t, ns, Config{Name: testName()})
	err := onLockedThread(&ns, func() error {
		tap, err := Open(Config{Name: first.Name()})
		if err == nil {
			tap.Close()
			return errors.New("second Open of the same name succeeded")
		}
		if !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("second Open = %v, want EBUSY", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	// Validation happens before any device is created, so these run anywhere.
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"long name", Config{Name: "ivt0123456789abc"}, "at most 15"},
		{"slash in name", Config{Name: "ivt/0"}, "not valid"},
		{"dot name", Config{Name: ".."}, "not valid"},
		{"small MTU", Config{Name: "ivt0", MTU: 67}, "out of range"},
		{"huge MTU", Config{Name: "ivt0", MTU: 65536}, "out of range"},
		{"negative MTU", Config{Name: "ivt0", MTU: -1}, "out of range"},
		{"group MAC", Config{Name: "ivt0", MAC: wire.MAC{0x01, 0, 0x5e, 0, 0, 1}}, "group address"},
		{"invalid prefix", Config{Name: "ivt0", Addresses: []netip.Prefix{{}}}, "not a valid"},
		{"4in6 prefix", Config{Name: "ivt0", Addresses: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.1/120")}}, "not a valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tap, err := Open(tt.cfg)
			if err == nil {
				tap.Close()
				t.Fatalf("Open(%+v) succeeded, want error containing %q", tt.cfg, tt.want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Errorf("Open(%+v) = %q, want it to contain %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	if got.Name != "invpn%d" || got.MTU != 1500 {
		t.Errorf("defaults = %+v, want Name invpn%%d, MTU 1500", got)
	}
	got = Config{Name: "ivt1", MTU: 9000}.withDefaults()
	if got.Name != "ivt1" || got.MTU != 9000 {
		t.Errorf("withDefaults changed set fields: %+v", got)
	}
}

func TestClassify(t *testing.T) {
	ioctlErr := func(e syscall.Errno) error { return os.NewSyscallError("ioctl", e) }
	tests := []struct {
		name      string
		tunDevice bool
		err       error
		noTUN     bool
		perm      bool
		contains  string
	}{
		{"missing /dev/net/tun", true, syscall.ENOENT, true, false, "modprobe tun"},
		{"no driver behind the node", true, syscall.ENODEV, true, false, "/dev/net/tun"},
		{"no device", true, syscall.ENXIO, true, false, "modprobe tun"},
		{"open denied", true, syscall.EACCES, false, true, "CAP_NET_ADMIN"},
		{"TUNSETIFF denied", true, ioctlErr(syscall.EPERM), false, true, "setcap cap_net_admin+ep"},
		{"netlink denied", false, syscall.EPERM, false, true, "run as root"},
		{"missing link is not a missing driver", false, syscall.ENOENT, false, false, "no such file"},
		{"busy", true, ioctlErr(syscall.EBUSY), false, false, "in use"},
		{"other", true, syscall.EINVAL, false, false, "invalid argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("create TAP device", tt.tunDevice, tt.err)
			if got := errors.Is(err, ErrNoTUN); got != tt.noTUN {
				t.Errorf("errors.Is(%q, ErrNoTUN) = %v, want %v", err, got, tt.noTUN)
			}
			if got := errors.Is(err, ErrPermission); got != tt.perm {
				t.Errorf("errors.Is(%q, ErrPermission) = %v, want %v", err, got, tt.perm)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("%q does not wrap the cause %v", err, tt.err)
			}
			msg := err.Error()
			if !bytes.Contains([]byte(msg), []byte("create TAP device")) || !bytes.Contains([]byte(msg), []byte(tt.contains)) {
				t.Errorf("message %q lacks the operation or %q", msg, tt.contains)
			}
		})
	}
}

// TestOffloadCarriesSuperFrames joins two namespaces by a wire made of
// this test: every frame one TAP device reads is written to the other.
// A TCP transfer between them must arrive intact, and the sending device
// must hand over TCP super-frames. "whole" writes them whole to a device
// with offloads; "cut" cuts them (gso.Segment) for a device without, as
// the daemon does, so that the receiving kernel checks every segment's
// checksums.
func TestOffloadCarriesSuperFrames(t *testing.T) {
	for _, tc := range []struct {
		name         string
		receiverOffl bool
	}{{"whole", true}, {"cut", false}} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			requireTAP(t)
			ns1, _ := newNetns(t)
			ns2, _ := newNetns(t)
			macA := wire.MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x01}
			macB := wire.MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x02}
			a := openIn(t, ns1, Config{Name: testName(), MAC: macA, Offload: true,
				Addresses: []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")}})
			b := openIn(t, ns2, Config{Name: testName(), MAC: macB, Offload: tc.receiverOffl,
				Addresses: []netip.Prefix{netip.MustParsePrefix("10.78.0.2/24")}})
			if !a.Offloads() || b.Offloads() != tc.receiverOffl {
				t.Fatalf("Offloads() = %v, %v; want true, %v", a.Offloads(), b.Offloads(), tc.receiverOffl)
			}
			var superFrames atomic.Int64
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); forward(t, a, b, &superFrames, done) }()
			go func() { defer wg.Done(); forward(t, b, a, nil, done) }()
			t.Cleanup(func() { close(done); a.Close(); b.Close(); wg.Wait() })

			var ln net.Listener
			if err := onLockedThread(&ns2, func() (err error) {
				ln, err = net.Listen("tcp4", "10.78.0.2:0")
				return err
			}); err != nil {
				t.Fatalf("listen in the second namespace: %v", err)
			}
			defer ln.Close()
			const size = 8 << 20
			sent := make([]byte, size)
			for i := range sent {
				sent[i] = byte(i * 7 / 3)
			}
			got := make(chan []byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, size)
				n, _ := io.ReadFull(c, buf)
				got <- buf[:n]
			}()
			var c net.Conn
			if err := onLockedThread(&ns1, func() (err error) {
				c, err = net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second)
				return err
			}); err != nil {
				t.Fatalf("dial from the first namespace: %v", err)
			}
			c.SetDeadline(time.Now().Add(30 * time.Second)) // bounds a failing test
			if _, err := c.Write(sent); err != nil {
				t.Fatalf("write %d bytes: %v", size, err)
			}
			r := <-got
			c.Close()
			if !bytes.Equal(r, sent) {
				t.Fatalf("received %d of %d bytes, or different ones", len(r), size)
			}
			if superFrames.Load() == 0 {
				t.Errorf("the sending device handed over no TCP super-frame for %d bytes", size)
			}
			t.Logf("%d super-frames", superFrames.Load())
		})
	}
}

// forward copies frames from one device to the other until done: whole
// to a device with offloads, cut or completed for one without. It counts
// the super-frames it read in supers, when not nil.
func forward(t *testing.T, from, to *TAP, supers *atomic.Int64, done chan struct{}) {
	buf := make([]byte, gso.HeaderLen+MaxSuperFrame+EthernetHeaderLen)
	scratch := make([]byte, 1<<16)
	for {
		n, m, err := from.ReadOffload(buf)
		if err != nil {
			if errors.Is(err, ErrFrameLost) {
				t.Errorf("lost a frame: %v", err)
				continue
			}
			return // closed
		}
		frame := buf[gso.HeaderLen : gso.HeaderLen+n]
		if m.IsGSO() && supers != nil {
			supers.Add(1)
		}
		switch {
		case to.Offloads():
			err = to.WriteOffload(m, buf[:gso.HeaderLen+n]) // the header read is the headroom
		case m.IsGSO():
			err = gso.Segment(m, frame, scratch, func(seg []byte) {
				if werr := to.WriteFrame(seg); werr != nil && err == nil {
					err = werr
				}
			})
		default:
			if m.NeedsCsum {
				if err = gso.Complete(m, frame); err != nil {
					break
				}
			}
			err = to.WriteFrame(frame)
		}
		select {
		case <-done:
			return
		default:
		}
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("forward a %d-byte frame (%+v): %v", n, m, err)
		}
	}
}
