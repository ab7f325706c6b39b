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

import "errors"

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

// ErrClosed is returned (wrapped) by ReadFrame and WriteFrame of a closed Device.
var ErrClosed = errors.New("frame device closed")

// ErrNoTUN means the kernel's TUN/TAP driver is unavailable: /dev/net/tun is
// missing or has no driver behind it.
var ErrNoTUN = errors.New("no TUN/TAP driver: load the tun module (modprobe tun) or run in a container with /dev/net/tun")

// ErrPermission means the process may not create or configure the TAP device.
var ErrPermission = errors.New("permission denied: needs CAP_NET_ADMIN: run as root or grant the capability (setcap cap_net_admin+ep)")
