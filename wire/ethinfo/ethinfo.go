// Package ethinfo summarises the Ethernet frame carried by a 0x80, 0x81,
// 0x82 or 0x84 message (ethertype, ARP operation and addresses, IP source
// and destination) for logs and filters. It uses gopacket's
// DecodingLayerParser, which decodes into preallocated layers and does not
// allocate per frame.
package ethinfo

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/invpn/invpn/wire"
)

// Summary is what Inspect found in a frame. Fields that do not apply to the
// frame are zero.
type Summary struct {
	Dst, Src  wire.MAC
	EtherType layers.EthernetType
	// ARPOp is 1 for a request and 2 for a reply; ARP frames set Src/DstIP
	// to the sender and target protocol addresses.
	ARPOp    uint16
	SrcIP    netip.Addr
	DstIP    netip.Addr
	Protocol layers.IPProtocol // IPv4 protocol or IPv6 next header
}

// String formats the summary for a log line.
func (s Summary) String() string {
	switch {
	case s.ARPOp != 0:
		return fmt.Sprintf("%s > %s arp op %d %s > %s", s.Src, s.Dst, s.ARPOp, s.SrcIP, s.DstIP)
	case s.SrcIP.IsValid():
		return fmt.Sprintf("%s > %s %s %s > %s %s", s.Src, s.Dst, s.EtherType, s.SrcIP, s.DstIP, s.Protocol)
	}
	return fmt.Sprintf("%s > %s %s", s.Src, s.Dst, s.EtherType)
}

// ErrTruncated means the frame is shorter than its Ethernet header.
var ErrTruncated = errors.New("ethinfo: frame shorter than 14-byte ethernet header")

// Inspector decodes frames into preallocated layers. It is not safe for
// concurrent use; give each goroutine its own.
type Inspector struct {
	eth     layers.Ethernet
	arp     layers.ARP
	ip4     layers.IPv4
	ip6     layers.IPv6
	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

// NewInspector returns an Inspector for Ethernet frames.
func NewInspector() *Inspector {
	in := &Inspector{decoded: make([]gopacket.LayerType, 0, 4)}
	in.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &in.eth, &in.arp, &in.ip4, &in.ip6)
	// Payloads past the network layer (TCP, UDP, ICMP) are not decoded:
	// the parser stops there instead of failing.
	in.parser.IgnoreUnsupported = true
	return in
}

// Inspect summarises an Ethernet frame (dst, src, ethertype, payload). It
// never keeps frame. Layers that fail to decode leave their fields zero;
// only a frame too short for its header is an error.
func (in *Inspector) Inspect(frame []byte) (Summary, error) {
	var s Summary
	if len(frame) < wire.EthernetHeaderLen {
		return s, ErrTruncated
	}
	s.Dst = wire.MAC(frame[0:6])
	s.Src = wire.MAC(frame[6:12])
	s.EtherType = layers.EthernetType(uint16(frame[12])<<8 | uint16(frame[13]))
	// A decode error past the Ethernet header (a truncated IP header, say)
	// is not the caller's problem: the summary keeps what was decoded.
	_ = in.parser.DecodeLayers(frame, &in.decoded)
	for _, t := range in.decoded {
		switch t {
		case layers.LayerTypeARP:
			s.ARPOp = in.arp.Operation
			s.SrcIP = addrFrom(in.arp.SourceProtAddress)
			s.DstIP = addrFrom(in.arp.DstProtAddress)
		case layers.LayerTypeIPv4:
			s.SrcIP = addrFrom(in.ip4.SrcIP)
			s.DstIP = addrFrom(in.ip4.DstIP)
			s.Protocol = in.ip4.Protocol
		case layers.LayerTypeIPv6:
			s.SrcIP = addrFrom(in.ip6.SrcIP)
			s.DstIP = addrFrom(in.ip6.DstIP)
			s.Protocol = in.ip6.NextHeader
		}
	}
	return s, nil
}

// addrFrom converts a 4- or 16-byte address without allocating; any other
// length gives the zero Addr.
func addrFrom(b []byte) netip.Addr {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b))
	case 16:
		return netip.AddrFrom16([16]byte(b))
	}
	return netip.Addr{}
}
