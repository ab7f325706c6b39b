package gso

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"pgregory.net/rapid"
)

// TestHeaderByHand: a virtio-net header written by hand from the layout
// (flags, gso_type, then little-endian hdr_len, gso_size, csum_start,
// csum_offset) parses to its fields and is written back the same.
func TestHeaderByHand(t *testing.T) {
	b := []byte{0x01, 0x01, 0x36, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00}
	m, err := ParseHeader(b)
	want := Meta{NeedsCsum: true, Type: TypeTCPv4, HdrLen: 54, Size: 1448, CsumStart: 34, CsumOffset: 16}
	if err != nil || m != want {
		t.Fatalf("ParseHeader(%x) = %+v, %v; want %+v", b, m, err, want)
	}
	out := make([]byte, HeaderLen)
	m.PutHeader(out)
	if !bytes.Equal(out, b) {
		t.Errorf("PutHeader = %x, want %x", out, b)
	}
	for _, bad := range [][]byte{
		{0x04, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}, // unknown flag
		{0x01, 0x05, 0, 0, 0, 0, 0, 0, 0, 0}, // UDP L4 segmentation
		{0x01, 0x03, 0, 0, 0, 0, 0, 0, 0, 0}, // UFO
		{0x01, 0x01, 0, 0},                   // short
	} {
		if _, err := ParseHeader(bad); err == nil {
			t.Errorf("ParseHeader(%x) accepted", bad)
		}
	}
}

// buildSuper serializes a TCP super-frame with gopacket and replaces its
// TCP checksum with the pseudo-header sum, as a TAP device with offloads
// hands it over.
func buildSuper(t *rapid.T) (Meta, []byte, []gopacket.SerializableLayer) {
	v6 := rapid.Bool().Draw(t, "v6")
	payload := rapid.SliceOfN(rapid.Byte(), 0, 20000).Draw(t, "payload")
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: rapid.Uint32().Draw(t, "seq"), Ack: 7, Window: 500,
		ACK: true, PSH: rapid.Bool().Draw(t, "psh"), FIN: rapid.Bool().Draw(t, "fin"), CWR: rapid.Bool().Draw(t, "cwr")}
	if rapid.Bool().Draw(t, "options") {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
			{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop}}
	}
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}}
	var ip gopacket.SerializableLayer
	m := Meta{NeedsCsum: true, Size: uint16(rapid.IntRange(1, 9000).Draw(t, "mss")), CsumOffset: 16}
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64,
			SrcIP: []byte{0xfd, 15: 1}, DstIP: []byte{0xfd, 15: 2}}
		tcp.SetNetworkLayerForChecksum(ip6)
		ip, m.Type, m.CsumStart = ip6, TypeTCPv6, 14+40
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: rapid.Uint16().Draw(t, "id"), Flags: layers.IPv4DontFragment,
			Protocol: layers.IPProtocolTCP, SrcIP: []byte{10, 0, 0, 1}, DstIP: []byte{10, 0, 0, 2}}
		tcp.SetNetworkLayerForChecksum(ip4)
		ip, m.Type, m.CsumStart = ip4, TypeTCPv4, 14+20
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	frame := bytes.Clone(buf.Bytes())
	binary.BigEndian.PutUint16(frame[int(m.CsumStart)+16:], uint16(rapid.Uint16().Draw(t, "garbage checksum")))
	return m, frame, []gopacket.SerializableLayer{eth, ip, tcp}
}

// TestSegmentMatchesGopacket: every piece Segment makes equals the frame
// gopacket builds from the same headers with the piece's sequence number,
// id and flags, lengths and checksums computed by gopacket; the pieces
// hold the payload in order.
func TestSegmentMatchesGopacket(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m, frame, ls := buildSuper(t)
		eth, tcp := ls[0].(*layers.Ethernet), ls[2].(*layers.TCP)
		hdr := int(m.CsumStart) + int(tcp.DataOffset)*4
		if tcp.DataOffset == 0 { // gopacket fills it in on Serialize
			hdr = int(m.CsumStart) + int(frame[int(m.CsumStart)+12]>>4)*4
		}
		end := 14 + 40 + int(binary.BigEndian.Uint16(frame[18:])) // IPv6 payload length
		if m.Type == TypeTCPv4 {
			end = 14 + int(binary.BigEndian.Uint16(frame[16:])) // IPv4 total length
		}
		payload := frame[hdr:end] // not the Ethernet padding of a short frame
		var got [][]byte
		scratch := make([]byte, 1<<16)
		if err := Segment(m, frame, scratch, func(seg []byte) { got = append(got, bytes.Clone(seg)) }); err != nil {
			t.Fatalf("Segment: %v", err)
		}
		size := int(m.Size)
		want := max(1, (len(payload)+size-1)/size)
		if len(got) != want {
			t.Fatalf("%d pieces of a %d-byte payload at MSS %d, want %d", len(got), len(payload), size, want)
		}
		for i, seg := range got {
			off := i * size
			piece := payload[off:min(off+size, len(payload))]
			last := i == len(got)-1
			tc := *tcp
			tc.Seq = tcp.Seq + uint32(off)
			tc.FIN, tc.PSH, tc.CWR = tcp.FIN && last, tcp.PSH && last, tcp.CWR && i == 0
			var ip gopacket.SerializableLayer
			switch l := ls[1].(type) {
			case *layers.IPv4:
				c := *l
				c.Id = l.Id + uint16(i)
				ip = &c
				tc.SetNetworkLayerForChecksum(&c)
			case *layers.IPv6:
				c := *l
				ip = &c
				tc.SetNetworkLayerForChecksum(&c)
			}
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
				eth, ip, &tc, gopacket.Payload(piece)); err != nil {
				t.Fatal(err)
			}
			ref := buf.Bytes()
			if len(seg) < 60 && len(ref) == 60 && !bytes.ContainsFunc(ref[len(seg):], func(r rune) bool { return r != 0 }) {
				ref = ref[:len(seg)] // gopacket pads a short frame; Segment does not
			}
			if !bytes.Equal(seg, ref) {
				t.Fatalf("piece %d of %d:\n got %x\nwant %x", i, len(got), seg, ref)
			}
		}
	})
}

// TestCompleteMatchesGopacket: a frame whose TCP checksum holds only the
// pseudo-header sum gets the checksum gopacket computes.
func TestCompleteMatchesGopacket(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m, frame, _ := buildSuper(t)
		ip := 14
		var pseudo uint64
		n := len(frame) - int(m.CsumStart)
		if m.Type == TypeTCPv6 {
			pseudo = checksum(frame[ip+8:ip+40], 0)
		} else {
			pseudo = checksum(frame[ip+12:ip+20], 0)
		}
		at := int(m.CsumStart) + 16
		wantSum := binary.BigEndian.Uint16(frame[at:]) // garbage; recompute the real one below
		_ = wantSum
		binary.BigEndian.PutUint16(frame[at:], 0)
		real := ^fold(checksum(frame[m.CsumStart:], pseudo+protoTCP+uint64(n)))
		binary.BigEndian.PutUint16(frame[at:], fold(pseudo+protoTCP+uint64(n)))
		m.Type, m.Size = TypeNone, 0
		if err := Complete(m, frame); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint16(frame[at:]); got != real {
			t.Fatalf("completed checksum %#04x, want %#04x", got, real)
		}
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		if pkt.ErrorLayer() != nil {
			t.Fatalf("gopacket cannot decode the completed frame: %v", pkt.ErrorLayer().Error())
		}
	})
}

// TestSegmentRejects: headers that cannot be cut are refused, not cut.
func TestSegmentRejects(t *testing.T) {
	m := Meta{NeedsCsum: true, Type: TypeTCPv4, Size: 100, CsumStart: 34, CsumOffset: 16}
	frame := make([]byte, 200)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	binary.BigEndian.PutUint16(frame[16:], 186)
	frame[14], frame[23] = 0x45, 6
	frame[34+12] = 5 << 4
	scratch := make([]byte, 1<<16)
	emit := func([]byte) {}
	if err := Segment(m, frame, scratch, emit); err != nil {
		t.Fatalf("a well-formed frame: %v", err)
	}
	for name, edit := range map[string]func(m *Meta, f []byte){
		"not GSO":                  func(m *Meta, f []byte) { m.Type = TypeNone },
		"size 0":                   func(m *Meta, f []byte) { m.Size = 0 },
		"IPv6 type":                func(m *Meta, f []byte) { m.Type = TypeTCPv6 },
		"UDP":                      func(m *Meta, f []byte) { f[23] = 17 },
		"fragment":                 func(m *Meta, f []byte) { f[20] = 0x20 },
		"data offset 4":            func(m *Meta, f []byte) { f[34+12] = 4 << 4 },
		"TCP past the end":         func(m *Meta, f []byte) { m.CsumStart = 190 },
		"IHL mismatch":             func(m *Meta, f []byte) { f[14] = 0x46 },
		"IP length past the frame": func(m *Meta, f []byte) { binary.BigEndian.PutUint16(f[16:], 187) },
		"not TCP offset":           func(m *Meta, f []byte) { m.CsumOffset = 6 },
	} {
		mm, ff := m, bytes.Clone(frame)
		edit(&mm, ff)
		if err := Segment(mm, ff, scratch, emit); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := Segment(m, frame, scratch[:50], emit); err == nil {
		t.Errorf("a short scratch: accepted")
	}
}

func BenchmarkSegment64K(b *testing.B) {
	m := Meta{NeedsCsum: true, Type: TypeTCPv4, Size: 1448, CsumStart: 34, CsumOffset: 16}
	frame := make([]byte, 65000)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	binary.BigEndian.PutUint16(frame[16:], 65000-14)
	frame[14], frame[23] = 0x45, 6
	frame[34+12] = 5 << 4
	scratch := make([]byte, 1<<16)
	var n int
	emit := func(seg []byte) { n += len(seg) }
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := Segment(m, frame, scratch, emit); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseHeader: any 10 bytes parse or are refused; what parses is
// written back the same.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x01, 0x01, 0x36, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00})
	f.Add([]byte{0x01, 0x84, 0x4a, 0x00, 0x10, 0x00, 0x36, 0x00, 0x10, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseHeader(b)
		if err != nil {
			return
		}
		out := make([]byte, HeaderLen)
		m.PutHeader(out)
		if b[0]&flagDataValid == 0 && !bytes.Equal(out, b[:HeaderLen]) {
			t.Fatalf("%x parses to %+v, written back as %x", b[:HeaderLen], m, out)
		}
	})
}

// FuzzSegment: any header and frame are cut or refused without a panic;
// the pieces fit the scratch, carry at most Size bytes of payload each,
// and the payload in all.
func FuzzSegment(f *testing.F) {
	frame := make([]byte, 200)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	binary.BigEndian.PutUint16(frame[16:], 186)
	frame[14], frame[23], frame[34+12] = 0x45, 6, 5<<4
	f.Add([]byte{0x01, 0x01, 0x36, 0x00, 0x40, 0x00, 0x22, 0x00, 0x10, 0x00}, frame)
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		m, err := ParseHeader(hdr)
		if err != nil || !m.IsGSO() {
			return
		}
		scratch := make([]byte, 1<<16)
		total, pieces := 0, 0
		l, perr := parse(m, frame)
		err = Segment(m, frame, scratch, func(seg []byte) {
			pieces++
			if len(seg) > len(scratch) || len(seg)-l.hdr > int(m.Size) {
				t.Fatalf("piece of %d bytes, header %d, size %d", len(seg), l.hdr, m.Size)
			}
			total += len(seg) - l.hdr
		})
		if (err == nil) != (perr == nil) {
			t.Fatalf("Segment %v but parse %v", err, perr)
		}
		if err == nil && total != l.payload {
			t.Fatalf("pieces carry %d bytes of a %d-byte payload", total, l.payload)
		}
	})
}
