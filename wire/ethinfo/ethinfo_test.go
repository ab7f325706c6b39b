package ethinfo

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(s))
	if err != nil {
		panic(err)
	}
	return b
}

// Frames written by hand from RFC 826 (ARP), RFC 791 (IPv4) and RFC 8200
// (IPv6) header layouts.
var (
	arpRequest = unhex("ffffffffffff 025056000001 0806 | 0001 0800 06 04 0001 | 025056000001 0a4e0001 | 000000000000 0a4e0002")
	ipv4UDP    = unhex("025056000002 025056000001 0800 | 45 00 001c 0000 4000 40 11 0000 0a4e0001 0a4e0002 | 1f90 1f90 0008 0000")
	ipv6NS     = unhex("3333ff000002 025056000001 86dd | 60000000 0008 3a ff fd000078000000000000000000000001 ff0200000000000000000001ff000002 | 87 00 0000 00000000")
)

func TestInspect(t *testing.T) {
	in := NewInspector()
	cases := []struct {
		name  string
		frame []byte
		want  Summary
	}{
		{"arp request", arpRequest, Summary{EtherType: layers.EthernetTypeARP, ARPOp: 1,
			SrcIP: netip.MustParseAddr("10.78.0.1"), DstIP: netip.MustParseAddr("10.78.0.2")}},
		{"ipv4 udp", ipv4UDP, Summary{EtherType: layers.EthernetTypeIPv4, Protocol: layers.IPProtocolUDP,
			SrcIP: netip.MustParseAddr("10.78.0.1"), DstIP: netip.MustParseAddr("10.78.0.2")}},
		{"ipv6 neighbour solicitation", ipv6NS, Summary{EtherType: layers.EthernetTypeIPv6, Protocol: layers.IPProtocolICMPv6,
			SrcIP: netip.MustParseAddr("fd00:78::1"), DstIP: netip.MustParseAddr("ff02::1:ff00:2")}},
	}
	for _, tc := range cases {
		got, err := in.Inspect(tc.frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		tc.want.Dst = [6]byte(tc.frame[0:6])
		tc.want.Src = [6]byte(tc.frame[6:12])
		if got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
		if s := got.String(); !strings.Contains(s, tc.want.SrcIP.String()) {
			t.Errorf("%s: String() %q lacks source address", tc.name, s)
		}
	}
}

func TestInspectTruncated(t *testing.T) {
	in := NewInspector()
	if _, err := in.Inspect(ipv4UDP[:13]); err != ErrTruncated {
		t.Fatalf("13-byte frame: %v, want ErrTruncated", err)
	}
	// A cut IP header keeps the Ethernet fields.
	s, err := in.Inspect(ipv4UDP[:20])
	if err != nil || s.EtherType != layers.EthernetTypeIPv4 || s.SrcIP.IsValid() {
		t.Fatalf("cut IPv4 header: %+v, %v", s, err)
	}
}

func TestInspectNoAlloc(t *testing.T) {
	in := NewInspector()
	for _, f := range [][]byte{arpRequest, ipv4UDP, ipv6NS} {
		if n := testing.AllocsPerRun(100, func() { _, _ = in.Inspect(f) }); n != 0 {
			t.Errorf("Inspect allocates %v times per frame", n)
		}
	}
}

func FuzzInspect(f *testing.F) {
	for _, fr := range [][]byte{arpRequest, ipv4UDP, ipv6NS} {
		f.Add(fr)
	}
	in := NewInspector()
	f.Fuzz(func(t *testing.T, frame []byte) {
		_, _ = in.Inspect(frame)
	})
}
