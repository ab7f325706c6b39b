//go:build linux

package tapdev

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/invpn/invpn/transport/rawfd"
)

// TAP is a Linux TAP device opened by Open. It implements Device.
// Its methods may be called from any goroutine.
type TAP struct {
	// file is the /dev/net/tun descriptor: IFF_TAP|IFF_NO_PI, opened by
	// water, or with IFF_VNET_HDR too when offload is set (offload_linux.go).
	file      io.ReadWriteCloser
	raw       *rawfd.FD // file's reads and writes as raw calls; nil: file's own
	name      string
	mtu       int
	offload   bool
	wmu       sync.Mutex // guards wbuf
	wbuf      []byte     // offload: a frame written, after its virtio-net header
	rmu       sync.Mutex // guards rbuf
	rbuf      []byte     // offload: ReadFrame's header and frame
	closeOnce sync.Once
	closeErr  error
	// closed is set by Close before the descriptor goes: a read or write
	// that fails after it failed because of it (the raw calls get the
	// poller's own "closed" error, which os.ErrClosed does not match).
	closed atomic.Bool
}

var _ Device = (*TAP)(nil)

// Open creates a TAP device as described by cfg, sets its MAC address and
// MTU, adds its addresses and brings it up. The device lives in the network
// namespace of the calling OS thread and disappears when it is closed.
//
// Errors wrap ErrNoTUN when the TUN/TAP driver is unavailable and
// ErrPermission when the process lacks CAP_NET_ADMIN, along with the
// underlying system error.
func Open(cfg Config) (*TAP, error) {
	cfg = cfg.withDefaults()
	if err := validate(cfg); err != nil {
		return nil, err
	}
	var t *TAP
	if cfg.Offload {
		var err error
		if t, err = openOffload(cfg); err != nil && !errors.Is(err, errOffloadRefused) {
			return nil, err
		}
	}
	if t == nil {
		ifce, err := water.New(water.Config{
			DeviceType:             water.TAP,
			PlatformSpecificParams: water.PlatformSpecificParams{Name: cfg.Name},
		})
		if err != nil {
			return nil, classify(fmt.Sprintf("create TAP device %q", cfg.Name), true, err)
		}
		t = &TAP{file: ifce, name: ifce.Name(), mtu: cfg.MTU}
		// water opens the device non-blocking as an *os.File, so the
		// same raw reads and writes apply (package rawfd says why).
		if f, ok := ifce.ReadWriteCloser.(*os.File); ok {
			t.raw, _ = rawfd.Of(f) // nil on an error: the file's own I/O
		}
	}
	if err := t.configure(cfg); err != nil {
		_ = t.file.Close() // a non-persistent TAP is removed with its last descriptor
		return nil, err
	}
	return t, nil
}

// configure applies the MAC, MTU and addresses of cfg to t's interface and
// brings it up.
func (t *TAP) configure(cfg Config) error {
	link, err := netlink.LinkByName(t.name)
	if err != nil {
		return classify(fmt.Sprintf("look up interface %s", t.name), false, err)
	}
	if !cfg.MAC.IsZero() {
		if err := netlink.LinkSetHardwareAddr(link, net.HardwareAddr(cfg.MAC[:])); err != nil {
			return classify(fmt.Sprintf("set MAC %s on %s", cfg.MAC, t.name), false, err)
		}
	}
	if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
		return classify(fmt.Sprintf("set MTU %d on %s", cfg.MTU, t.name), false, err)
	}
	if t.offload {
		// A super-frame must fit one message with its 0x90 header.
		if err := netlink.LinkSetGSOMaxSize(link, MaxSuperFrame); err != nil {
			return classify(fmt.Sprintf("set gso_max_size %d on %s", MaxSuperFrame, t.name), false, err)
		}
	}
	for _, p := range cfg.Addresses {
		addr := &netlink.Addr{IPNet: &net.IPNet{
			IP:   net.IP(p.Addr().AsSlice()),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}}
		if p.Addr().Is6() {
			// Without DAD the address is usable at once instead of staying
			// tentative for a second or more.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return classify(fmt.Sprintf("add address %s to %s", p, t.name), false, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return classify(fmt.Sprintf("bring %s up", t.name), false, err)
	}
	return nil
}

// validate rejects a Config the kernel would refuse, with a clearer message.
func validate(cfg Config) error {
	if len(cfg.Name) > unix.IFNAMSIZ-1 {
		return fmt.Errorf("tapdev: interface name %q is %d bytes long (want at most %d)", cfg.Name, len(cfg.Name), unix.IFNAMSIZ-1)
	}
	if cfg.Name == "." || cfg.Name == ".." || strings.ContainsAny(cfg.Name, "/: \t\n") {
		return fmt.Errorf("tapdev: interface name %q is not valid (no '/', ':' or spaces)", cfg.Name)
	}
	if cfg.MTU < 68 || cfg.MTU > 65535 {
		return fmt.Errorf("tapdev: MTU %d is out of range (want 68-65535)", cfg.MTU)
	}
	if cfg.MAC.IsGroup() {
		return fmt.Errorf("tapdev: MAC %s is a group address (want a unicast MAC: the first octet must be even)", cfg.MAC)
	}
	for _, p := range cfg.Addresses {
		if !p.IsValid() || p.Addr().Is4In6() {
			return fmt.Errorf("tapdev: address %s is not a valid IPv4 or IPv6 prefix", p)
		}
	}
	return nil
}

// classify wraps err, which happened during op, with context and with
// ErrNoTUN or ErrPermission when err has one of those causes. tunDevice says
// err comes from opening /dev/net/tun or its ioctls, where a missing file or
// device means the driver is missing (elsewhere, ENOENT just means a missing
// interface or address).
func classify(op string, tunDevice bool, err error) error {
	switch {
	case tunDevice && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO)):
		return fmt.Errorf("tapdev: %s: %w: %w", op, ErrNoTUN, err)
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		return fmt.Errorf("tapdev: %s: %w: %w", op, ErrPermission, err)
	case tunDevice && errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("tapdev: %s: the interface is in use by another process or is not a TAP device: %w", op, err)
	}
	return fmt.Errorf("tapdev: %s: %w", op, err)
}

// ReadFrame implements Device. On a device with offloads it reads through
// ReadOffload and completes a partial checksum; a super-frame is lost
// (an error wrapping io.ErrShortBuffer): read those with ReadOffload.
func (t *TAP) ReadFrame(buf []byte) (int, error) {
	if t.offload {
		return t.readFrameOffload(buf)
	}
	n, err := t.read(buf)
	if err != nil {
		return n, t.ioError("read from", err)
	}
	return n, nil
}

// WriteFrame implements Device.
func (t *TAP) WriteFrame(frame []byte) error {
	if t.offload {
		return t.writeFrameOffload(frame)
	}
	n, err := t.write(frame)
	if err != nil {
		return t.ioError("write to", err)
	}
	if n != len(frame) {
		return fmt.Errorf("tapdev: write to %s: %d of %d bytes: %w", t.name, n, len(frame), io.ErrShortWrite)
	}
	return nil
}

// read reads one frame from the descriptor: with raw calls where it
// has them (t.raw), else through the file.
func (t *TAP) read(buf []byte) (int, error) {
	if t.raw != nil {
		return t.raw.Read(buf)
	}
	return t.file.Read(buf)
}

// write writes one frame to the descriptor, as read.
func (t *TAP) write(b []byte) (int, error) {
	if t.raw != nil {
		return t.raw.Write(b)
	}
	return t.file.Write(b)
}

// ioError wraps an error of a read or write with the device name, and
// with ErrClosed when the device has been closed.
func (t *TAP) ioError(op string, err error) error {
	if errors.Is(err, os.ErrClosed) || t.closed.Load() {
		return fmt.Errorf("tapdev: %s %s: %w", op, t.name, ErrClosed)
	}
	return fmt.Errorf("tapdev: %s %s: %w", op, t.name, err)
}

// Name implements Device.
func (t *TAP) Name() string { return t.name }

// MTU implements Device.
func (t *TAP) MTU() int { return t.mtu }

// Close implements Device. Closing the descriptor removes the interface.
func (t *TAP) Close() error {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		if err := t.file.Close(); err != nil {
			t.closeErr = fmt.Errorf("tapdev: close %s: %w", t.name, err)
		}
	})
	return t.closeErr
}
