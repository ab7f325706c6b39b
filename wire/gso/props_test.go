package gso_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"pgregory.net/rapid"

	"github.com/invpn/invpn/wire/gso"
)

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

// genLink draws an Ethernet header and zero to two VLAN tags (802.1Q or
// 802.1ad) ending in etherType.
func genLink(t *rapid.T, etherType layers.EthernetType) []gopacket.SerializableLayer {
	eth := &layers.Ethernet{
		SrcMAC: rapid.SliceOfN(rapid.Byte(), 6, 6).Draw(t, "src mac"),
		DstMAC: rapid.SliceOfN(rapid.Byte(), 6, 6).Draw(t, "dst mac"),
	}
	ls := []gopacket.SerializableLayer{eth}
	next := &eth.EthernetType
	for range rapid.IntRange(0, 2).Draw(t, "vlan tags") {
		*next = rapid.SampledFrom([]layers.EthernetType{layers.EthernetTypeDot1Q, layers.EthernetTypeQinQ}).Draw(t, "tpid")
		q := &layers.Dot1Q{
			Priority:       rapid.Uint8Range(0, 7).Draw(t, "pcp"),
			DropEligible:   rapid.Bool().Draw(t, "dei"),
			VLANIdentifier: rapid.Uint16Range(0, 4095).Draw(t, "vid"),
		}
		ls = append(ls, q)
		next = &q.Type
	}
	*next = etherType
	return ls
}

// genIP draws an IPv4 header (options sometimes: NOPs and router alerts,
// 0 to 40 bytes) or an IPv6 header for protocol proto, and returns it
// with its length.
func genIP(t *rapid.T, v6 bool, proto layers.IPProtocol) (gopacket.NetworkLayer, int) {
	if v6 {
		return &layers.IPv6{
			Version:      6,
			TrafficClass: rapid.Uint8().Draw(t, "traffic class"),
			FlowLabel:    rapid.Uint32Range(0, 1<<20-1).Draw(t, "flow label"),
			NextHeader:   proto,
			HopLimit:     rapid.Uint8().Draw(t, "hop limit"),
			SrcIP:        rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "src ip"),
			DstIP:        rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "dst ip"),
		}, 40
	}
	var opts []layers.IPv4Option
	words := rapid.IntRange(0, 10).Draw(t, "ipv4 option words")
	for range words {
		if rapid.Bool().Draw(t, "router alert") {
			opts = append(opts, layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}})
			continue
		}
		for range 4 {
			opts = append(opts, layers.IPv4Option{OptionType: 1, OptionLength: 1})
		}
	}
	return &layers.IPv4{
		Version:  4,
		TOS:      rapid.Uint8().Draw(t, "tos"),
		Id:       rapid.Uint16().Draw(t, "id"),
		Flags:    rapid.SampledFrom([]layers.IPv4Flag{0, layers.IPv4DontFragment}).Draw(t, "ipv4 flags"),
		TTL:      rapid.Uint8().Draw(t, "ttl"),
		Protocol: proto,
		SrcIP:    rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "src ip"),
		DstIP:    rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "dst ip"),
		Options:  opts,
	}, 20 + 4*words
}

// genTCPOptions draws TCP options of 0 to 40 bytes in multiples of 4:
// timestamps, MSS, SACK-permitted, window scale and NOPs.
func genTCPOptions(t *rapid.T) []layers.TCPOption {
	nop := layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1}
	var opts []layers.TCPOption
	for left := 4 * rapid.IntRange(0, 10).Draw(t, "tcp option words"); left > 0; {
		switch k := rapid.IntRange(0, 3).Draw(t, "tcp option"); {
		case k == 0 && left >= 12:
			ts := rapid.SliceOfN(rapid.Byte(), 8, 8).Draw(t, "timestamps")
			opts = append(opts, nop, nop, layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts})
			left -= 12
		case k == 1:
			mss := rapid.SliceOfN(rapid.Byte(), 2, 2).Draw(t, "mss option")
			opts = append(opts, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: mss})
			left -= 4
		case k == 2:
			opts = append(opts, nop, layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}})
			left -= 4
		default:
			opts = append(opts, nop, nop, layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2})
			left -= 4
		}
	}
	return opts
}

// genPayload draws n bytes of payload: random, all ones or all zeros
// (the ones'-complement sums' corner cases). Random bytes come from a
// drawn seed, so a failure replays.
func genPayload(t *rapid.T, minLen, maxLen int) []byte {
	n := rapid.IntRange(minLen, maxLen).Draw(t, "payload length")
	p := make([]byte, n)
	switch rapid.IntRange(0, 3).Draw(t, "payload kind") {
	case 0:
		for i := range p {
			p[i] = 0xff
		}
	case 1:
	default:
		r := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "payload seed"), uint64(n)))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
	}
	return p
}

// ipPacketLen returns the length of a serialized IPv4 or IPv6 packet.
func ipPacketLen(ip gopacket.NetworkLayer) int {
	if ip4, ok := ip.(*layers.IPv4); ok {
		return int(ip4.Length)
	}
	return 40 + int(ip.(*layers.IPv6).Length)
}

// superFrame is a drawn TCP super-frame.
type superFrame struct {
	m       gso.Meta
	frame   []byte
	payload []byte // its TCP payload
}

// genSuperFrame draws a TCP super-frame and serializes it with gopacket:
// random addresses, ports, sequence numbers and flags (FIN, PSH, CWR,
// ECE and the rest), TCP options, IPv4 options sometimes, VLAN tags
// sometimes, 1 to 65000 bytes of payload, a segment size of 1 to 9000.
// Its TCP checksum is garbage, the pseudo-header sum (as the kernel hands
// it over) or complete.
func genSuperFrame(t *rapid.T) superFrame {
	v6 := rapid.Bool().Draw(t, "v6")
	etherType := layers.EthernetTypeIPv4
	if v6 {
		etherType = layers.EthernetTypeIPv6
	}
	ls := genLink(t, etherType)
	ip, ipLen := genIP(t, v6, layers.IPProtocolTCP)
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(rapid.Uint16().Draw(t, "src port")),
		DstPort: layers.TCPPort(rapid.Uint16().Draw(t, "dst port")),
		Seq:     rapid.Uint32().Draw(t, "seq"),
		Ack:     rapid.Uint32().Draw(t, "ack"),
		FIN:     rapid.Bool().Draw(t, "fin"),
		SYN:     rapid.Bool().Draw(t, "syn"),
		RST:     rapid.Bool().Draw(t, "rst"),
		PSH:     rapid.Bool().Draw(t, "psh"),
		ACK:     rapid.Bool().Draw(t, "ack flag"),
		URG:     rapid.Bool().Draw(t, "urg"),
		ECE:     rapid.Bool().Draw(t, "ece"),
		CWR:     rapid.Bool().Draw(t, "cwr"),
		NS:      rapid.Bool().Draw(t, "ns"),
		Window:  rapid.Uint16().Draw(t, "window"),
		Urgent:  rapid.Uint16().Draw(t, "urgent"),
		Options: genTCPOptions(t),
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	payload := genPayload(t, 1, 65000)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serializeOpts, append(ls, ip.(gopacket.SerializableLayer), tcp, gopacket.Payload(payload))...); err != nil {
		t.Fatal(err)
	}
	frame := bytes.Clone(buf.Bytes()) // with Ethernet padding when short

	ipOff := 14 + 4*(len(ls)-1)
	tcpOff := ipOff + ipLen
	tcpLen := int(tcp.DataOffset)*4 + len(payload)
	switch rapid.IntRange(0, 2).Draw(t, "checksum field") {
	case 0:
		binary.BigEndian.PutUint16(frame[tcpOff+16:], rapid.Uint16().Draw(t, "garbage"))
	case 1:
		src, dst := frame[ipOff+12:ipOff+16], frame[ipOff+16:ipOff+20]
		if v6 {
			src, dst = frame[ipOff+8:ipOff+24], frame[ipOff+24:ipOff+40]
		}
		binary.BigEndian.PutUint16(frame[tcpOff+16:], pseudoSum(src, dst, 6, tcpLen))
	}
	m := gso.Meta{
		NeedsCsum:  true,
		Type:       gso.TypeTCPv4,
		ECN:        rapid.Bool().Draw(t, "ecn"),
		HdrLen:     uint16(tcpOff + int(tcp.DataOffset)*4),
		Size:       rapid.Uint16Range(1, 9000).Draw(t, "size"),
		CsumStart:  uint16(tcpOff),
		CsumOffset: 16,
	}
	if v6 {
		m.Type = gso.TypeTCPv6
	}
	if rapid.Bool().Draw(t, "wrong hdr_len") { // a hint only
		m.HdrLen = rapid.Uint16().Draw(t, "hdr_len")
	}
	return superFrame{m: m, frame: frame, payload: payload}
}

// reference cuts a super-frame the straightforward way with gopacket:
// decode it, then for each piece of payload serialize the same layers
// with the piece's sequence number, IPv4 id and flags, gopacket fixing
// the lengths and computing the checksums.
func reference(t *rapid.T, m gso.Meta, frame []byte) [][]byte {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if e := p.ErrorLayer(); e != nil {
		t.Fatalf("gopacket cannot decode the super-frame: %v", e.Error())
	}
	var (
		link []gopacket.SerializableLayer
		ip4  *layers.IPv4
		ip6  *layers.IPv6
		tcp  *layers.TCP
	)
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.Ethernet:
			link = append(link, l)
		case *layers.Dot1Q:
			link = append(link, l)
		case *layers.IPv4:
			ip4 = l
		case *layers.IPv6:
			ip6 = l
		case *layers.TCP:
			tcp = l
		}
	}
	if tcp == nil || (ip4 == nil) == (ip6 == nil) {
		t.Fatalf("gopacket finds layers %v", p.Layers())
	}
	size, payload := int(m.Size), tcp.Payload
	var segs [][]byte
	for i, off := 0, 0; ; i++ {
		n := min(size, len(payload)-off)
		first, last := i == 0, off+n == len(payload)
		tc := *tcp
		tc.Seq = tcp.Seq + uint32(off)
		tc.FIN, tc.PSH, tc.CWR = tcp.FIN && last, tcp.PSH && last, tcp.CWR && first
		var ip gopacket.NetworkLayer
		if ip4 != nil {
			c := *ip4
			c.Id = ip4.Id + uint16(i)
			ip = &c
		} else {
			c := *ip6
			ip = &c
		}
		_ = tc.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		ls := append(append([]gopacket.SerializableLayer(nil), link...), ip.(gopacket.SerializableLayer), &tc, gopacket.Payload(payload[off:off+n]))
		if err := gopacket.SerializeLayers(buf, serializeOpts, ls...); err != nil {
			t.Fatal(err)
		}
		seg := bytes.Clone(buf.Bytes())
		// gopacket pads a frame shorter than 60 bytes; Segment does not.
		end := 14 + 4*(len(link)-1) + ipPacketLen(ip)
		if bytes.ContainsFunc(seg[end:], func(r rune) bool { return r != 0 }) {
			t.Fatalf("gopacket's segment %x has more than padding after byte %d", seg, end)
		}
		segs = append(segs, seg[:end])
		off += n
		if last {
			return segs
		}
	}
}

// TestSegmentMatchesGopacket: Segment emits, byte for byte, the segments
// the gopacket reference builds, as many as Segments says, none longer
// than MaxSegmentLen; it leaves the super-frame alone.
func TestSegmentMatchesGopacket(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genSuperFrame(t)
		want := reference(t, s.m, s.frame)
		if tcp := gopacket.NewPacket(s.frame, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeTCP); !bytes.Equal(tcp.LayerPayload(), s.payload) {
			t.Fatalf("the reference decodes %d bytes of payload, %d were serialized", len(tcp.LayerPayload()), len(s.payload))
		}
		orig := bytes.Clone(s.frame)
		maxLen, err := gso.MaxSegmentLen(s.m, s.frame)
		if err != nil {
			t.Fatalf("MaxSegmentLen: %v", err)
		}
		got, err := collect(s.m, s.frame, make([]byte, maxLen))
		if err != nil {
			t.Fatalf("Segment: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d segments, the reference has %d", len(got), len(want))
		}
		if n, err := gso.Segments(s.m, s.frame); n != len(want) || err != nil {
			t.Fatalf("Segments = %d, %v; want %d", n, err, len(want))
		}
		longest := 0
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("segment %d of %d:\n got %x\nwant %x", i, len(got), got[i], want[i])
			}
			longest = max(longest, len(got[i]))
		}
		if longest != maxLen {
			t.Fatalf("the longest segment has %d bytes, MaxSegmentLen says %d", longest, maxLen)
		}
		if !bytes.Equal(s.frame, orig) {
			t.Fatalf("Segment changed the super-frame")
		}
	})
}

// TestCompleteMatchesGopacket: a TCP or UDP frame serialized by gopacket
// with its checksum, whose checksum is then replaced by the pseudo-header
// sum (folded, not complemented, as the kernel leaves it), is restored
// by Complete — except that a checksum of 0 comes back as 0xffff, as
// the kernel writes it.
func TestCompleteMatchesGopacket(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v6, udp := rapid.Bool().Draw(t, "v6"), rapid.Bool().Draw(t, "udp")
		etherType, proto := layers.EthernetTypeIPv4, layers.IPProtocolTCP
		if v6 {
			etherType = layers.EthernetTypeIPv6
		}
		if udp {
			proto = layers.IPProtocolUDP
		}
		ls := genLink(t, etherType)
		ip, ipLen := genIP(t, v6, proto)
		var l4 gopacket.SerializableLayer
		csumOffset := 16
		if udp {
			u := &layers.UDP{SrcPort: layers.UDPPort(rapid.Uint16().Draw(t, "src port")), DstPort: layers.UDPPort(rapid.Uint16().Draw(t, "dst port"))}
			_ = u.SetNetworkLayerForChecksum(ip)
			l4, csumOffset = u, 6
		} else {
			tc := &layers.TCP{
				SrcPort: layers.TCPPort(rapid.Uint16().Draw(t, "src port")), DstPort: layers.TCPPort(rapid.Uint16().Draw(t, "dst port")),
				Seq: rapid.Uint32().Draw(t, "seq"), Ack: rapid.Uint32().Draw(t, "ack"), ACK: true, PSH: rapid.Bool().Draw(t, "psh"),
				Window: rapid.Uint16().Draw(t, "window"), Options: genTCPOptions(t),
			}
			_ = tc.SetNetworkLayerForChecksum(ip)
			l4 = tc
		}
		payload := genPayload(t, 0, 3000)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, serializeOpts, append(ls, ip.(gopacket.SerializableLayer), l4, gopacket.Payload(payload))...); err != nil {
			t.Fatal(err)
		}
		ipOff := 14 + 4*(len(ls)-1)
		l4Off := ipOff + ipLen
		// Without gopacket's Ethernet padding: the kernel's frame ends
		// with the IP packet, and Complete sums to the end.
		frame := bytes.Clone(buf.Bytes()[:ipOff+ipPacketLen(ip)])
		l4Len := len(frame) - l4Off
		want := bytes.Clone(frame)
		at := l4Off + csumOffset
		if binary.BigEndian.Uint16(want[at:]) == 0 {
			binary.BigEndian.PutUint16(want[at:], 0xffff)
		}

		src, dst := frame[ipOff+12:ipOff+16], frame[ipOff+16:ipOff+20]
		if v6 {
			src, dst = frame[ipOff+8:ipOff+24], frame[ipOff+24:ipOff+40]
		}
		binary.BigEndian.PutUint16(frame[at:], pseudoSum(src, dst, uint8(proto), l4Len))
		m := gso.Meta{NeedsCsum: true, CsumStart: uint16(l4Off), CsumOffset: uint16(csumOffset)}
		if err := gso.Complete(m, frame); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(frame, want) {
			t.Fatalf("completed checksum %#04x, want %#04x", binary.BigEndian.Uint16(frame[at:]), binary.BigEndian.Uint16(want[at:]))
		}
	})
}
