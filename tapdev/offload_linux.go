//go:build linux

package tapdev

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/invpn/invpn/transport/rawfd"
	"github.com/invpn/invpn/wire/gso"
)

// The device with offloads is opened here with golang.org/x/sys/unix, not
// with songgao/water: water sets only IFF_TAP|IFF_NO_PI and has no way to
// add IFF_VNET_HDR or to issue TUNSETOFFLOAD on its descriptor before the
// kernel sizes its first frames.

// TUNSETOFFLOAD flags (linux/if_tun.h); golang.org/x/sys/unix has the
// ioctl but not these.
const (
	tunFCsum   = 0x01 // TUN_F_CSUM: frames may carry a partial checksum
	tunFTSO4   = 0x02 // TUN_F_TSO4
	tunFTSO6   = 0x04 // TUN_F_TSO6
	tunFTSOECN = 0x08 // TUN_F_TSO_ECN
)

// errOffloadRefused means the kernel would not open the device with
// offloads; Open then opens a plain one.
var errOffloadRefused = errors.New("offloads refused")

// openOffload creates the TAP device with a virtio-net header before every
// frame (IFF_VNET_HDR) and TCP segmentation and checksum offload. Its
// descriptor is non-blocking, so the Go runtime's poller serves reads and
// Close unblocks them. An error wrapping errOffloadRefused means the
// kernel refused the flags or the offloads (not the device itself).
func openOffload(cfg Config) (*TAP, error) {
	op := fmt.Sprintf("create TAP device %q with offloads", cfg.Name)
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, classify(op, true, err)
	}
	ifr, err := unix.NewIfreq(cfg.Name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tapdev: %s: %w", op, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("tapdev: %s: %w: %w", op, errOffloadRefused, err)
		}
		return nil, classify(op, true, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6|tunFTSOECN); err != nil {
		unix.Close(fd) // the device goes with its only descriptor
		return nil, fmt.Errorf("tapdev: %s: TUNSETOFFLOAD: %w: %w", op, errOffloadRefused, err)
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	// Reads and writes as raw calls (package rawfd says why); the file
	// still waits in the poller and closes the descriptor.
	raw, err := rawfd.Of(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tapdev: %s: %w", op, err)
	}
	return &TAP{
		file: f, raw: raw, name: ifr.Name(), mtu: cfg.MTU, offload: true,
		wbuf: make([]byte, gso.HeaderLen+MaxSuperFrame+EthernetHeaderLen),
	}, nil
}

// Offloads reports whether the device exchanges super-frames with their
// offload fields (Config.Offload, and the kernel agreed).
func (t *TAP) Offloads() bool { return t.offload }

// ReadOffload implements OffloadDevice.
func (t *TAP) ReadOffload(buf []byte) (int, gso.Meta, error) {
	if !t.offload {
		n, err := t.ReadFrame(buf[gso.HeaderLen:])
		return n, gso.Meta{}, err
	}
	n, err := t.read(buf)
	if err != nil {
		return 0, gso.Meta{}, t.ioError("read from", err)
	}
	if n < gso.HeaderLen {
		return 0, gso.Meta{}, fmt.Errorf("tapdev: read from %s: %d bytes, shorter than the virtio-net header: %w", t.name, n, ErrFrameLost)
	}
	m, err := gso.ParseHeader(buf[:gso.HeaderLen])
	if err == nil {
		err = m.Check(n - gso.HeaderLen)
	}
	if err != nil {
		return 0, gso.Meta{}, fmt.Errorf("tapdev: read from %s: %w: %w", t.name, ErrFrameLost, err)
	}
	return n - gso.HeaderLen, m, nil
}

// readFrameOffload is ReadFrame on a device with offloads.
func (t *TAP) readFrameOffload(buf []byte) (int, error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	if t.rbuf == nil {
		t.rbuf = make([]byte, gso.HeaderLen+MaxSuperFrame+EthernetHeaderLen)
	}
	n, m, err := t.ReadOffload(t.rbuf)
	if err != nil {
		return 0, err
	}
	frame := t.rbuf[gso.HeaderLen : gso.HeaderLen+n]
	switch {
	case m.IsGSO():
		return 0, fmt.Errorf("tapdev: read from %s: a %d-byte TCP super-frame (read it with ReadOffload): %w", t.name, n, io.ErrShortBuffer)
	case n > len(buf):
		return 0, fmt.Errorf("tapdev: read from %s: %d-byte frame, %d-byte buffer: %w", t.name, n, len(buf), io.ErrShortBuffer)
	case m.NeedsCsum:
		if err := gso.Complete(m, frame); err != nil {
			return 0, fmt.Errorf("tapdev: read from %s: %w: %w", t.name, ErrFrameLost, err)
		}
	}
	return copy(buf, frame), nil
}

// WriteOffload implements OffloadDevice: it puts the header into pkt's
// headroom and writes header and frame in one write(2). A device without
// offloads takes only ordinary frames with complete checksums: m must be
// zero.
func (t *TAP) WriteOffload(m gso.Meta, pkt []byte) error {
	if len(pkt) < gso.HeaderLen {
		return fmt.Errorf("tapdev: write to %s: %d bytes, no room for the %d-byte virtio-net header", t.name, len(pkt), gso.HeaderLen)
	}
	if !t.offload {
		if m != (gso.Meta{}) {
			return fmt.Errorf("tapdev: write to %s: offload fields on a device without offloads", t.name)
		}
		return t.WriteFrame(pkt[gso.HeaderLen:])
	}
	m.PutHeader(pkt)
	return t.writeOffload(pkt)
}

// writeFrameOffload is WriteFrame on a device with offloads: the frame
// goes after a zero header in the device's own buffer. The copy costs
// less than the syscall it rides with.
func (t *TAP) writeFrameOffload(frame []byte) error {
	if len(frame) > len(t.wbuf)-gso.HeaderLen {
		return fmt.Errorf("tapdev: write to %s: %d-byte frame, longer than %d: %w", t.name, len(frame), len(t.wbuf)-gso.HeaderLen, io.ErrShortWrite)
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	(gso.Meta{}).PutHeader(t.wbuf)
	n := copy(t.wbuf[gso.HeaderLen:], frame)
	return t.writeOffload(t.wbuf[:gso.HeaderLen+n])
}

// writeOffload writes a virtio-net header and its frame.
func (t *TAP) writeOffload(pkt []byte) error {
	w, err := t.write(pkt)
	if err != nil {
		return t.ioError("write to", err)
	}
	if w != len(pkt) {
		return fmt.Errorf("tapdev: write to %s: %d of %d bytes: %w", t.name, w, len(pkt), io.ErrShortWrite)
	}
	return nil
}
