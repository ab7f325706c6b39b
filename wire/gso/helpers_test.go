package gso_test

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/invpn/invpn/wire/gso"
)

// unhex decodes hex written with spaces and line breaks for reading.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ipv4Super is a hand-written TCP/IPv4 super-frame: 20 bytes of payload
// that cut at MSS 8 into 3 segments. Its IPv4 and TCP checksums are
// garbage (0xbeef, 0xdead): Segment computes both.
const ipv4Super = `
	020000000002 020000000001 0800
	45 00 003c 1234 4000 40 06 beef 0a000001 0a000002
	3039 0050 fffffff8 00000001 50 99 ffff dead 0000
	6162636465666768 696a6b6c6d6e6f70 71727374`

// ipv4Meta describes ipv4Super at MSS 8.
var ipv4Meta = gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, HdrLen: 54, Size: 8, CsumStart: 34, CsumOffset: 16}

// ipv6Super is ipv4Super over IPv6 (fd00::1 to fd00::2), TCP at 54.
const ipv6Super = `
	020000000002 020000000001 86dd
	60000000 0028 06 40 fd000000000000000000000000000001 fd000000000000000000000000000002
	3039 0050 fffffff8 00000001 50 99 ffff dead 0000
	6162636465666768 696a6b6c6d6e6f70 71727374`

var ipv6Meta = gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv6, HdrLen: 74, Size: 8, CsumStart: 54, CsumOffset: 16}

// fieldOf returns the field a *gso.FieldError names, or "" for another
// error.
func fieldOf(err error) string {
	var fe *gso.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// onesSum is the ones'-complement sum of b as big-endian 16-bit words,
// written the plain way (RFC 1071) to check the package's faster one.
func onesSum(b []byte, acc uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
		acc = acc>>16 + acc&0xffff
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc>>16 + acc&0xffff)
}

// pseudoSum is the folded (not complemented) sum of the TCP or UDP
// pseudo-header: what the kernel leaves in a partial checksum.
func pseudoSum(src, dst []byte, proto uint8, l4Len int) uint16 {
	var lens [4]byte
	lens[1] = proto
	binary.BigEndian.PutUint16(lens[2:], uint16(l4Len))
	return onesSum(lens[:], uint32(onesSum(dst, uint32(onesSum(src, 0)))))
}

// collect runs Segment and returns copies of the segments it emits.
func collect(m gso.Meta, frame, scratch []byte) ([][]byte, error) {
	var segs [][]byte
	err := gso.Segment(m, frame, scratch, func(seg []byte) { segs = append(segs, append([]byte(nil), seg...)) })
	return segs, err
}

// checkWithGopacket decodes seg with gopacket and checks that its IPv4
// header checksum and its TCP checksum are the ones gopacket computes
// for the same headers, and that the IP length covers the frame. It
// returns the decoded TCP layer.
func checkWithGopacket(t testing.TB, seg []byte) *layers.TCP {
	t.Helper()
	p := gopacket.NewPacket(seg, layers.LayerTypeEthernet, gopacket.Default)
	if e := p.ErrorLayer(); e != nil {
		t.Fatalf("gopacket cannot decode %x: %v", seg, e.Error())
	}
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		t.Fatalf("gopacket finds no TCP in %x", seg)
	}
	opts := gopacket.SerializeOptions{ComputeChecksums: true}
	recompute := *tcp // serialized again to compute its checksum
	ipOff := 14 + 4*len(vlanTags(p))
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		c := *ip
		if err := gopacket.SerializeLayers(gopacket.NewSerializeBuffer(), opts, &c); err != nil {
			t.Fatal(err)
		}
		if c.Checksum != ip.Checksum {
			t.Errorf("IPv4 header checksum %#04x, gopacket computes %#04x", ip.Checksum, c.Checksum)
		}
		if ipOff+int(ip.Length) != len(seg) {
			t.Errorf("IPv4 total length %d does not cover the %d-byte frame", ip.Length, len(seg))
		}
		_ = recompute.SetNetworkLayerForChecksum(ip)
	case *layers.IPv6:
		if ipOff+40+int(ip.Length) != len(seg) {
			t.Errorf("IPv6 payload length %d does not cover the %d-byte frame", ip.Length, len(seg))
		}
		_ = recompute.SetNetworkLayerForChecksum(ip)
	default:
		t.Fatalf("no IP in %x", seg)
	}
	if err := gopacket.SerializeLayers(gopacket.NewSerializeBuffer(), opts, &recompute, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	if recompute.Checksum != tcp.Checksum {
		t.Errorf("TCP checksum %#04x, gopacket computes %#04x", tcp.Checksum, recompute.Checksum)
	}
	return tcp
}

func vlanTags(p gopacket.Packet) []*layers.Dot1Q {
	var tags []*layers.Dot1Q
	for _, l := range p.Layers() {
		if q, ok := l.(*layers.Dot1Q); ok {
			tags = append(tags, q)
		}
	}
	return tags
}
