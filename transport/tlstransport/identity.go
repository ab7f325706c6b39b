package tlstransport

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// MACFromCert returns the MAC in cert's Subject Common Name, written as six
// hex pairs separated by colons in either case (02:50:56:00:00:01). Any
// other Common Name, and a group or all-zero MAC (which cannot name a TAP
// device), fails with an error wrapping transport.ErrNoMAC.
func MACFromCert(cert *x509.Certificate) (wire.MAC, error) {
	cn := cert.Subject.CommonName
	if len(cn) != 17 || cn[2] != ':' {
		return wire.MAC{}, fmt.Errorf("tlstransport: common name %q: %w", cn, transport.ErrNoMAC)
	}
	m, err := wire.ParseMAC(cn)
	if err != nil {
		return wire.MAC{}, fmt.Errorf("tlstransport: common name %q: %w: %w", cn, transport.ErrNoMAC, err)
	}
	if m.IsGroup() || m.IsZero() {
		return wire.MAC{}, fmt.Errorf("tlstransport: common name %q is not a unicast MAC: %w", cn, transport.ErrNoMAC)
	}
	return m, nil
}

// addrPort returns a's address and port with an IPv4-mapped IPv6 address
// unmapped, or the zero AddrPort when a is not a TCP address.
func addrPort(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	return unmap(ta.AddrPort())
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
