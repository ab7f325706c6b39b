// Package tapdev provides frame devices: the Device interface through which
// the daemon exchanges whole Ethernet frames with the host (the "inside" of
// a node), a Linux TAP implementation (Open), and, in the sibling package
// taptest, an in-memory fake for tests.
//
// A frame is an Ethernet frame without its FCS: destination MAC, source MAC,
// EtherType (possibly preceded by VLAN tags) and payload. That is exactly the
// body of a targeted frame (0x80) on the wire, so a frame read from a Device
// can be sent on a link without conversion.
package tapdev

import (
	"errors"

	"github.com/invpn/invpn/wire/gso"
)

// EthernetHeaderLen is the length of an untagged Ethernet header: destination
// MAC, source MAC and EtherType. A buffer of MTU()+EthernetHeaderLen bytes
// holds any untagged frame a Device reads; add 4 bytes per VLAN tag.
const EthernetHeaderLen = 14

// Device reads and writes whole Ethernet frames (no FCS).
//
// ReadFrame and WriteFrame may be called concurrently with each other and
// with Close; a Device is normally used by one reading goroutine (inside →
// outside) and one or more writing goroutines (outside → inside).
type Device interface {
	// ReadFrame blocks until one frame is available and copies it into buf,
	// returning its length. buf is owned by the caller and is not retained
	// after ReadFrame returns; it should hold MTU()+EthernetHeaderLen bytes
	// (more with VLAN tags), a shorter buf may lose the frame. After Close,
	// ReadFrame returns an error that satisfies errors.Is(err, ErrClosed).
	ReadFrame(buf []byte) (int, error)

	// WriteFrame delivers one frame to the host. The frame is not retained:
	// the caller may reuse it as soon as WriteFrame returns. After Close,
	// WriteFrame returns an error that satisfies errors.Is(err, ErrClosed).
	WriteFrame(frame []byte) error

	// Name is the interface name, e.g. "invpn0".
	Name() string

	// MTU is the largest payload (frame without its Ethernet header) the
	// device carries.
	MTU() int

	// Close releases the device and unblocks a pending ReadFrame. It is
	// safe to call more than once.
	Close() error
}

// MaxSuperFrame is the longest TCP super-frame (Ethernet header included)
// a device with offloads hands over: Open sets the device's gso_max_size
// to it, so that a super-frame fits one 0x90 message (64 KiB less its
// 12-byte header) with room to spare.
const MaxSuperFrame = 65000

// OffloadDevice is a Device that can exchange TCP super-frames with the
// host: frames of up to MaxSuperFrame bytes that the kernel segments (or
// that it did not segment), each with the offload fields of its
// virtio-net header (gso.Meta). A frame of any kind may carry a partial
// checksum (Meta.NeedsCsum) for the kernel, or the reader, to complete.
type OffloadDevice interface {
	Device
	// Offloads reports whether the kernel agreed to offloads. When it did
	// not, ReadOffload and WriteOffload carry only ordinary frames with
	// zero Meta.
	Offloads() bool
	// ReadOffload blocks until one frame is available and reads it into
	// buf: its virtio-net header into buf[:gso.HeaderLen], the frame
	// after it. It returns the frame's length and its parsed header.
	// buf is the caller's and is not retained; it should hold
	// gso.HeaderLen+MaxSuperFrame+EthernetHeaderLen bytes. A frame whose
	// header is not understood is lost with an error wrapping ErrFrameLost.
	ReadOffload(buf []byte) (int, gso.Meta, error)
	// WriteOffload delivers one frame with offload fields m (zero for an
	// ordinary frame with complete checksums). pkt is the frame after
	// gso.HeaderLen bytes of headroom, into which the device writes the
	// virtio-net header (the mirror of ReadOffload's buf), so that header
	// and frame go out together without a copy. pkt is not retained.
	WriteOffload(m gso.Meta, pkt []byte) error
}

// ErrFrameLost is wrapped by read errors that lost one frame and leave
// the device usable: the next read may succeed.
var ErrFrameLost = errors.New("frame lost")

// ErrClosed is returned (wrapped) by ReadFrame and WriteFrame of a closed Device.
var ErrClosed = errors.New("frame device closed")

// ErrNoTUN means the kernel's TUN/TAP driver is unavailable: /dev/net/tun is
// missing or has no driver behind it.
var ErrNoTUN = errors.New("no TUN/TAP driver: load the tun module (modprobe tun) or run in a container with /dev/net/tun")

// ErrPermission means the process may not create or configure the TAP device.
var ErrPermission = errors.New("permission denied: needs CAP_NET_ADMIN: run as root or grant the capability (setcap cap_net_admin+ep)")
