package tapdev

import (
	"net/netip"

	"github.com/invpn/invpn/wire"
)

// DefaultName is the interface name pattern used when Config.Name is empty;
// the kernel replaces %d with the lowest free number.
const DefaultName = "invpn%d"

// DefaultMTU is the MTU used when Config.MTU is zero.
const DefaultMTU = 1500

// Config describes the TAP device Open creates.
type Config struct {
	// Name is the interface name or a pattern containing %d; at most 15
	// bytes. Empty means DefaultName.
	Name string

	// MAC is the device's hardware address: the node's identity. The zero
	// MAC leaves the address the kernel chose.
	MAC wire.MAC

	// MTU of the device; zero means DefaultMTU.
	MTU int

	// Addresses are assigned to the device, IPv4 and IPv6, each with its
	// prefix length (10.78.0.1/24, fd00:78::1/64). IPv6 addresses are
	// added without duplicate address detection, so they are usable at once.
	Addresses []netip.Prefix

	// Offload asks the kernel for TCP segmentation and checksum offload
	// (IFF_VNET_HDR, TUNSETOFFLOAD): the device then exchanges TCP
	// super-frames of up to MaxSuperFrame bytes (ReadOffload,
	// WriteOffload). A kernel that refuses it gets a plain device;
	// TAP.Offloads says which one Open made.
	Offload bool
}

// withDefaults returns c with empty fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	return c
}
