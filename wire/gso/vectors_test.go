package gso_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/invpn/invpn/wire/gso"
)

// TestParseHeaderVectors: headers written by hand from the layout
// (flags, gso_type, then little-endian hdr_len, gso_size, csum_start,
// csum_offset) parse to their fields, and PutHeader writes them back.
func TestParseHeaderVectors(t *testing.T) {
	for _, tc := range []struct {
		name, hex string
		want      gso.Meta
		put       string // what PutHeader writes, when not hex
	}{
		{"tcp4 MSS 1448", "01 01 3600 a805 2200 1000",
			gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, HdrLen: 54, Size: 1448, CsumStart: 34, CsumOffset: 16}, ""},
		{"tcp6 ECN MSS 16", "01 84 4a00 1000 3600 1000",
			gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv6, ECN: true, HdrLen: 74, Size: 16, CsumStart: 54, CsumOffset: 16}, ""},
		{"tcp6 MSS 65535 hdr_len 0x1234", "01 04 3412 ffff 5600 1000",
			gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv6, HdrLen: 0x1234, Size: 65535, CsumStart: 86, CsumOffset: 16}, ""},
		{"partial UDP checksum only", "01 00 0000 0000 2200 0600",
			gso.Meta{NeedsCsum: true, CsumStart: 34, CsumOffset: 6}, ""},
		{"nothing to do", "00 00 0000 0000 0000 0000", gso.Meta{}, ""},
		{"DATA_VALID is dropped", "03 01 3600 a805 2200 1000",
			gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, HdrLen: 54, Size: 1448, CsumStart: 34, CsumOffset: 16}, "01 01 3600 a805 2200 1000"},
		{"DATA_VALID alone", "02 00 0000 0000 0000 0000", gso.Meta{}, "00 00 0000 0000 0000 0000"},
		{"bytes past the header are ignored", "01 01 3600 a805 2200 1000 ffff",
			gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, HdrLen: 54, Size: 1448, CsumStart: 34, CsumOffset: 16}, "01 01 3600 a805 2200 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := unhex(t, tc.hex)
			m, err := gso.ParseHeader(b)
			if err != nil || m != tc.want {
				t.Fatalf("ParseHeader(%x) = %+v, %v; want %+v", b, m, err, tc.want)
			}
			want := b[:gso.HeaderLen]
			if tc.put != "" {
				want = unhex(t, tc.put)
			}
			out := bytes.Repeat([]byte{0xee}, gso.HeaderLen+2)
			m.PutHeader(out)
			if !bytes.Equal(out[:gso.HeaderLen], want) || !bytes.Equal(out[gso.HeaderLen:], []byte{0xee, 0xee}) {
				t.Errorf("PutHeader = %x, want %x then the untouched eeee", out, want)
			}
		})
	}
}

// TestParseHeaderRejects: each header ParseHeader refuses, with the
// field it names.
func TestParseHeaderRejects(t *testing.T) {
	for _, tc := range []struct {
		name, hex, field string
		err              error
	}{
		{"empty", "", "header", gso.ErrMalformed},
		{"9 bytes", "01 01 3600 a805 2200 10", "header", gso.ErrMalformed},
		{"flag RSC_INFO", "04 01 3600 a805 2200 1000", "flags", gso.ErrUnsupported},
		{"flag 0x80", "81 01 3600 a805 2200 1000", "flags", gso.ErrUnsupported},
		{"UDP fragmentation", "01 03 2a00 a805 2200 0600", "gso_type", gso.ErrUnsupported},
		{"UDP segmentation", "01 05 2a00 a805 2200 0600", "gso_type", gso.ErrUnsupported},
		{"UDP segmentation with ECN", "01 85 2a00 a805 2200 0600", "gso_type", gso.ErrUnsupported},
		{"type 2", "01 02 3600 a805 2200 1000", "gso_type", gso.ErrUnsupported},
		{"type 0x7f", "01 7f 3600 a805 2200 1000", "gso_type", gso.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := gso.ParseHeader(unhex(t, tc.hex))
			if err == nil {
				t.Fatalf("accepted as %+v", m)
			}
			if fieldOf(err) != tc.field || !errors.Is(err, tc.err) {
				t.Errorf("error %q: want field %q and %v", err, tc.field, tc.err)
			}
		})
	}
	// PutHeader into a short buffer writes nothing.
	short := []byte{1, 2, 3}
	ipv4Meta.PutHeader(short)
	if !bytes.Equal(short, []byte{1, 2, 3}) {
		t.Errorf("PutHeader wrote %x into a 3-byte buffer", short)
	}
}

// TestCheck: what Meta.Check accepts and refuses against a frame length.
func TestCheck(t *testing.T) {
	tcp4 := gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, Size: 1448, CsumStart: 34, CsumOffset: 16}
	for _, tc := range []struct {
		name     string
		m        gso.Meta
		frameLen int
		field    string // "" when accepted
		err      error
	}{
		{"tcp4", tcp4, 54, "", nil},
		{"ordinary", gso.Meta{}, 0, "", nil},
		{"partial UDP", gso.Meta{NeedsCsum: true, CsumStart: 34, CsumOffset: 6}, 42, "", nil},
		{"checksum field's last byte past the frame", tcp4, 51, "csum_offset", gso.ErrMalformed},
		{"partial checksum past the frame", gso.Meta{NeedsCsum: true, CsumStart: 65535, CsumOffset: 65535}, 65535, "csum_offset", gso.ErrMalformed},
		{"csum_start in the Ethernet header", gso.Meta{NeedsCsum: true, CsumStart: 13, CsumOffset: 6}, 100, "csum_start", gso.ErrMalformed},
		{"GSO without NEEDS_CSUM", gso.Meta{Type: gso.TypeTCPv4, Size: 1448, CsumStart: 34, CsumOffset: 16}, 100, "flags", gso.ErrMalformed},
		{"GSO with gso_size 0", gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv6, CsumStart: 54, CsumOffset: 16}, 100, "gso_size", gso.ErrMalformed},
		{"GSO with UDP's csum_offset", gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, Size: 1, CsumStart: 34, CsumOffset: 6}, 100, "csum_offset", gso.ErrMalformed},
		{"ECN without GSO", gso.Meta{NeedsCsum: true, ECN: true, CsumStart: 34, CsumOffset: 16}, 100, "gso_type", gso.ErrMalformed},
		{"a type ParseHeader refuses", gso.Meta{NeedsCsum: true, Type: 5, Size: 1, CsumStart: 34, CsumOffset: 6}, 100, "gso_type", gso.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Check(tc.frameLen)
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && err == nil:
				t.Fatal("accepted")
			case tc.field != "" && (fieldOf(err) != tc.field || !errors.Is(err, tc.err)):
				t.Errorf("error %q: want field %q and %v", err, tc.field, tc.err)
			}
		})
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[gso.Type]string{gso.TypeNone: "none", gso.TypeTCPv4: "tcp4", gso.TypeTCPv6: "tcp6", 5: "type-5"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

// TestSegmentIPv4ByHand cuts the hand-written ipv4Super at MSS 8 into
// the segments written out below (their checksums computed apart from
// this package), and checks them with gopacket too.
func TestSegmentIPv4ByHand(t *testing.T) {
	frame := unhex(t, ipv4Super)
	orig := bytes.Clone(frame)
	want := []string{
		// total length 48, id 0x1234, seq 0xfffffff8, ACK|CWR (FIN and PSH go to the last).
		`020000000002 020000000001 0800
		 45 00 0030 1234 4000 40 06 1492 0a000001 0a000002
		 3039 0050 fffffff8 00000001 50 90 ffff d931 0000
		 6162636465666768`,
		// total length 48, id 0x1235, seq 0 (wrapped), ACK only (CWR stays with the first).
		`020000000002 020000000001 0800
		 45 00 0030 1235 4000 40 06 1491 0a000001 0a000002
		 3039 0050 00000000 00000001 50 10 ffff b98a 0000
		 696a6b6c6d6e6f70`,
		// total length 44, id 0x1236, seq 8, ACK|PSH|FIN.
		`020000000002 020000000001 0800
		 45 00 002c 1236 4000 40 06 1494 0a000001 0a000002
		 3039 0050 00000008 00000001 50 19 ffff 864c 0000
		 71727374`,
	}
	fields := []struct {
		totalLen, id uint16
		seq          uint32
		flags        byte
	}{{48, 0x1234, 0xfffffff8, 0x90}, {48, 0x1235, 0, 0x10}, {44, 0x1236, 8, 0x19}}

	if n, err := gso.Segments(ipv4Meta, frame); n != 3 || err != nil {
		t.Errorf("Segments = %d, %v; want 3", n, err)
	}
	if n, err := gso.MaxSegmentLen(ipv4Meta, frame); n != 62 || err != nil {
		t.Errorf("MaxSegmentLen = %d, %v; want 62", n, err)
	}
	segs, err := collect(ipv4Meta, frame, make([]byte, 62))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != len(want) {
		t.Fatalf("%d segments, want %d", len(segs), len(want))
	}
	for i, seg := range segs {
		if w := unhex(t, want[i]); !bytes.Equal(seg, w) {
			t.Errorf("segment %d:\n got %x\nwant %x", i, seg, w)
		}
		f := fields[i]
		if got := binary.BigEndian.Uint16(seg[16:]); got != f.totalLen {
			t.Errorf("segment %d: total length %d, want %d", i, got, f.totalLen)
		}
		if got := binary.BigEndian.Uint16(seg[18:]); got != f.id {
			t.Errorf("segment %d: id %#04x, want %#04x", i, got, f.id)
		}
		if got := binary.BigEndian.Uint32(seg[38:]); got != f.seq {
			t.Errorf("segment %d: seq %#08x, want %#08x", i, got, f.seq)
		}
		if got := seg[47]; got != f.flags {
			t.Errorf("segment %d: flags %#02x, want %#02x", i, got, f.flags)
		}
		checkWithGopacket(t, seg)
	}
	if !bytes.Equal(frame, orig) {
		t.Errorf("Segment changed the super-frame")
	}
}

// TestSegmentIPv6ExtensionHeaders: a tagged IPv6 super-frame with
// hop-by-hop and destination options before TCP is cut with the
// extension headers in every segment, counted in the payload length.
func TestSegmentIPv6ExtensionHeaders(t *testing.T) {
	frame := unhex(t, `
		020000000002 020000000001 8100 0064 86dd
		60000000 0038 00 40 fd000000000000000000000000000001 fd000000000000000000000000000002
		3c 00 0104 00000000
		06 00 0104 00000000
		3039 0050 fffffff8 00000001 50 99 ffff dead 0000
		6162636465666768 696a6b6c6d6e6f70 71727374`)
	m := gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv6, Size: 8, CsumStart: 18 + 40 + 16, CsumOffset: 16}
	segs, err := collect(m, frame, make([]byte, 1<<16))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	var payload []byte
	for i, seg := range segs {
		tcp := checkWithGopacket(t, seg)
		if !bytes.Equal(seg[58:74], frame[58:74]) {
			t.Errorf("segment %d: extension headers %x, want %x", i, seg[58:74], frame[58:74])
		}
		if got, want := binary.BigEndian.Uint16(seg[22:]), 16+20+len(tcp.Payload); int(got) != want {
			t.Errorf("segment %d: payload length %d, want %d", i, got, want)
		}
		if want := 0xfffffff8 + uint32(8*i); tcp.Seq != want {
			t.Errorf("segment %d: seq %#x, want %#x", i, tcp.Seq, want)
		}
		payload = append(payload, tcp.Payload...)
	}
	if string(payload) != "abcdefghijklmnopqrst" {
		t.Errorf("payload %q", payload)
	}
}

// TestSegmentOptions: IPv4 options and TCP options are copied into every
// segment; the header length grows with them.
func TestSegmentOptions(t *testing.T) {
	frame := unhex(t, `
		020000000002 020000000001 0800
		46 00 004c 1234 0000 40 06 0000 0a000001 0a000002 94040000
		3039 0050 00000001 00000001 80 10 ffff 0000 0000 0101080a0000000100000002
		6162636465666768 696a6b6c6d6e6f70 71727374`)
	m := gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, Size: 10, CsumStart: 38, CsumOffset: 16}
	if n, err := gso.MaxSegmentLen(m, frame); n != 14+24+32+10 || err != nil {
		t.Errorf("MaxSegmentLen = %d, %v; want %d", n, err, 14+24+32+10)
	}
	segs, err := collect(m, frame, make([]byte, 14+24+32+10))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 {
		t.Fatalf("%d segments, want 2", len(segs))
	}
	for i, seg := range segs {
		checkWithGopacket(t, seg)
		if !bytes.Equal(seg[34:38], frame[34:38]) || !bytes.Equal(seg[58:70], frame[58:70]) {
			t.Errorf("segment %d lost its options: %x", i, seg)
		}
	}
}

// TestSegmentDropsEthernetPadding: bytes after the IP packet (the
// padding of a short frame) are not payload.
func TestSegmentDropsEthernetPadding(t *testing.T) {
	frame := unhex(t, `
		020000000002 020000000001 0800
		45 00 0029 1234 4000 40 06 0000 0a000001 0a000002
		3039 0050 00000001 00000001 50 18 ffff 0000 0000
		61 0000000000`)
	m := gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, Size: 1448, CsumStart: 34, CsumOffset: 16}
	segs, err := collect(m, frame, make([]byte, 55))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || len(segs[0]) != 55 {
		t.Fatalf("segments %x, want one of 55 bytes", segs)
	}
	checkWithGopacket(t, segs[0])
}

// TestSegmentEmptyPayload: a super-frame of headers only is one segment.
func TestSegmentEmptyPayload(t *testing.T) {
	frame := unhex(t, ipv4Super)[:54]
	binary.BigEndian.PutUint16(frame[16:], 40)
	if n, err := gso.Segments(ipv4Meta, frame); n != 1 || err != nil {
		t.Errorf("Segments = %d, %v; want 1", n, err)
	}
	segs, err := collect(ipv4Meta, frame, make([]byte, 54))
	if err != nil || len(segs) != 1 || len(segs[0]) != 54 {
		t.Fatalf("segments %x, %v; want one of 54 bytes", segs, err)
	}
	if tcp := checkWithGopacket(t, segs[0]); !tcp.FIN || !tcp.PSH || !tcp.CWR {
		t.Errorf("the only segment lost FIN, PSH or CWR: %x", segs[0])
	}
}

// TestSegmentEmitMayScribble: a caller that changes a segment in emit
// does not change the next ones.
func TestSegmentEmitMayScribble(t *testing.T) {
	for _, tc := range []struct {
		frame string
		m     gso.Meta
	}{{ipv4Super, ipv4Meta}, {ipv6Super, ipv6Meta}} {
		frame := unhex(t, tc.frame)
		want, err := collect(tc.m, frame, make([]byte, 100))
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		err = gso.Segment(tc.m, frame, make([]byte, 100), func(seg []byte) {
			if !bytes.Equal(seg, want[i]) {
				t.Errorf("segment %d after scribbling:\n got %x\nwant %x", i, seg, want[i])
			}
			for j := range seg {
				seg[j] = 0xa5
			}
			i++
		})
		if err != nil || i != len(want) {
			t.Fatalf("%d segments, %v", i, err)
		}
	}
}

// TestSegmentRejects: super-frames Segment refuses, each with the field
// its error names, and without emitting anything.
func TestSegmentRejects(t *testing.T) {
	type edit func(m *gso.Meta, f []byte) []byte
	for _, tc := range []struct {
		name  string
		v6    bool
		edit  edit
		field string
		err   error
	}{
		{"not a super-frame", false, func(m *gso.Meta, f []byte) []byte { m.Type = gso.TypeNone; return f }, "gso_type", gso.ErrMalformed},
		{"no partial checksum", false, func(m *gso.Meta, f []byte) []byte { m.NeedsCsum = false; return f }, "flags", gso.ErrMalformed},
		{"gso_size 0", false, func(m *gso.Meta, f []byte) []byte { m.Size = 0; return f }, "gso_size", gso.ErrMalformed},
		{"UDP's csum_offset", false, func(m *gso.Meta, f []byte) []byte { m.CsumOffset = 6; return f }, "csum_offset", gso.ErrMalformed},
		{"csum_start in the Ethernet header", false, func(m *gso.Meta, f []byte) []byte { m.CsumStart = 12; return f }, "csum_start", gso.ErrMalformed},
		{"checksum past the frame", false, func(m *gso.Meta, f []byte) []byte { return f[:51] }, "csum_offset", gso.ErrMalformed},
		{"frame ends inside the TCP header", false, func(m *gso.Meta, f []byte) []byte {
			binary.BigEndian.PutUint16(f[16:], 38)
			return f[:52]
		}, "csum_start", gso.ErrMalformed},
		{"frame ends inside the VLAN tags", false, func(m *gso.Meta, f []byte) []byte {
			m.CsumStart = 14
			return append(f[:12:12], 0x81, 0x00, 0, 1, 0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 1, 0x81, 0x00, 0, 1, 0x81, 0x00, 0, 1, 0x81, 0x00)
		}, "ethertype", gso.ErrMalformed},
		{"tcp6 on IPv4", false, func(m *gso.Meta, f []byte) []byte { m.Type = gso.TypeTCPv6; return f }, "ethertype", gso.ErrMalformed},
		{"ARP", false, func(m *gso.Meta, f []byte) []byte { f[12], f[13] = 0x08, 0x06; return f }, "ethertype", gso.ErrMalformed},
		{"IPv4 version 6", false, func(m *gso.Meta, f []byte) []byte { f[14] = 0x65; return f }, "ipv4 version", gso.ErrMalformed},
		{"IPv4 IHL 4", false, func(m *gso.Meta, f []byte) []byte { f[14] = 0x44; return f }, "ipv4 ihl", gso.ErrMalformed},
		{"IPv4 IHL 6 but TCP at 34", false, func(m *gso.Meta, f []byte) []byte { f[14] = 0x46; return f }, "csum_start", gso.ErrMalformed},
		{"TCP after the IPv4 header", false, func(m *gso.Meta, f []byte) []byte { m.CsumStart = 36; return f }, "csum_start", gso.ErrMalformed},
		{"IPv4 protocol UDP", false, func(m *gso.Meta, f []byte) []byte { f[23] = 17; return f }, "ipv4 protocol", gso.ErrMalformed},
		{"IPv4 more fragments", false, func(m *gso.Meta, f []byte) []byte { f[20] = 0x20; return f }, "ipv4 fragment", gso.ErrMalformed},
		{"IPv4 fragment offset", false, func(m *gso.Meta, f []byte) []byte { f[21] = 0x01; return f }, "ipv4 fragment", gso.ErrMalformed},
		{"IPv4 total length past the frame", false, func(m *gso.Meta, f []byte) []byte { f[17]++; return f }, "ipv4 total length", gso.ErrMalformed},
		{"IPv4 total length inside the TCP header", false, func(m *gso.Meta, f []byte) []byte { f[17] = 30; return f }, "csum_start", gso.ErrMalformed},
		{"TCP data offset 4", false, func(m *gso.Meta, f []byte) []byte { f[46] = 0x40; return f }, "tcp data offset", gso.ErrMalformed},
		{"TCP data offset past the packet", false, func(m *gso.Meta, f []byte) []byte { f[46] = 0xf0; return f }, "tcp data offset", gso.ErrMalformed},
		{"tcp4 on IPv6", true, func(m *gso.Meta, f []byte) []byte { m.Type = gso.TypeTCPv4; return f }, "ethertype", gso.ErrMalformed},
		{"IPv6 version 4", true, func(m *gso.Meta, f []byte) []byte { f[14] = 0x40; return f }, "ipv6 version", gso.ErrMalformed},
		{"IPv6 header cut short", true, func(m *gso.Meta, f []byte) []byte { m.CsumStart = 14; return f[:40] }, "ipv6 header", gso.ErrMalformed},
		{"IPv6 payload length past the frame", true, func(m *gso.Meta, f []byte) []byte { f[19]++; return f }, "ipv6 payload length", gso.ErrMalformed},
		{"IPv6 jumbogram", true, func(m *gso.Meta, f []byte) []byte { f[18], f[19] = 0, 0; return f }, "ipv6 payload length", gso.ErrUnsupported},
		{"TCP inside the IPv6 header", true, func(m *gso.Meta, f []byte) []byte { m.CsumStart = 34; return f }, "csum_start", gso.ErrMalformed},
		{"IPv6 next header UDP", true, func(m *gso.Meta, f []byte) []byte { f[20] = 17; return f }, "ipv6 next header", gso.ErrMalformed},
		{"IPv6 fragment header", true, func(m *gso.Meta, f []byte) []byte { return withExt(m, f, 44, 0x06, 0, 0, 0, 0, 0, 0, 0) }, "ipv6 next header", gso.ErrUnsupported},
		{"IPv6 routing header with a segment left", true, func(m *gso.Meta, f []byte) []byte { return withExt(m, f, 43, 0x06, 0, 4, 1, 0, 0, 0, 0) }, "ipv6 routing header", gso.ErrUnsupported},
		{"IPv6 extension header that is not one", true, func(m *gso.Meta, f []byte) []byte { return withExt(m, f, 17, 0x06, 0, 1, 4, 0, 0, 0, 0) }, "ipv6 next header", gso.ErrMalformed},
		{"IPv6 options then not TCP", true, func(m *gso.Meta, f []byte) []byte { return withExt(m, f, 60, 17, 0, 1, 4, 0, 0, 0, 0) }, "ipv6 next header", gso.ErrMalformed},
		{"IPv6 options longer than csum_start says", true, func(m *gso.Meta, f []byte) []byte { return withExt(m, f, 60, 0x06, 1, 1, 4, 0, 0, 0, 0) }, "csum_start", gso.ErrMalformed},
		{"csum_start inside an IPv6 extension header", true, func(m *gso.Meta, f []byte) []byte {
			f = withExt(m, f, 60, 0x06, 0, 1, 4, 0, 0, 0, 0)
			m.CsumStart -= 4
			return f
		}, "csum_start", gso.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame, m := unhex(t, ipv4Super), ipv4Meta
			if tc.v6 {
				frame, m = unhex(t, ipv6Super), ipv6Meta
			}
			frame = tc.edit(&m, frame)
			emitted := 0
			err := gso.Segment(m, frame, make([]byte, 1<<16), func([]byte) { emitted++ })
			if err == nil {
				t.Fatalf("cut into %d segments", emitted)
			}
			if emitted != 0 {
				t.Errorf("emitted %d segments before the error", emitted)
			}
			if fieldOf(err) != tc.field || !errors.Is(err, tc.err) {
				t.Errorf("error %q: want field %q and %v", err, tc.field, tc.err)
			}
			if _, serr := gso.Segments(m, frame); serr == nil || serr.Error() != err.Error() {
				t.Errorf("Segments: %v, want %v", serr, err)
			}
			if _, merr := gso.MaxSegmentLen(m, frame); merr == nil || merr.Error() != err.Error() {
				t.Errorf("MaxSegmentLen: %v, want %v", merr, err)
			}
		})
	}
	t.Run("scratch one byte short", func(t *testing.T) {
		err := gso.Segment(ipv4Meta, unhex(t, ipv4Super), make([]byte, 61), func([]byte) { t.Error("emitted") })
		if fieldOf(err) != "scratch" || !errors.Is(err, io.ErrShortBuffer) {
			t.Errorf("error %v: want field scratch and io.ErrShortBuffer", err)
		}
	})
	t.Run("nil emit", func(t *testing.T) {
		if err := gso.Segment(ipv4Meta, unhex(t, ipv4Super), make([]byte, 100), nil); fieldOf(err) != "emit" {
			t.Errorf("error %v: want field emit", err)
		}
	})
	t.Run("extension headers are fine", func(t *testing.T) {
		m := ipv6Meta
		f := withExt(&m, unhex(t, ipv6Super), 60, 0x06, 0, 1, 4, 0, 0, 0, 0)
		if err := gso.Segment(m, f, make([]byte, 100), func([]byte) {}); err != nil {
			t.Error(err)
		}
	})
}

// withExt inserts an 8-byte IPv6 extension header ext after the IPv6
// header of the hand-written ipv6Super, as next header typ.
func withExt(m *gso.Meta, f []byte, typ byte, ext ...byte) []byte {
	out := append(bytes.Clone(f[:54]), ext...)
	out = append(out, f[54:]...)
	out[20] = typ
	binary.BigEndian.PutUint16(out[18:], binary.BigEndian.Uint16(out[18:])+8)
	m.CsumStart += 8
	return out
}

// TestComplete finishes a hand-written UDP checksum (computed apart from
// this package) and refuses what it cannot finish.
func TestComplete(t *testing.T) {
	frame := unhex(t, `
		020000000002 020000000001 0800
		45 00 0021 0001 4000 40 11 26c9 0a000001 0a000002
		14e9 0035 000d 1421
		68656c6c6f`) // the UDP checksum holds the pseudo-header sum 0x1421
	m := gso.Meta{NeedsCsum: true, CsumStart: 34, CsumOffset: 6}
	if err := gso.Complete(m, frame); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(frame[40:]); got != 0x92e1 {
		t.Errorf("UDP checksum %#04x, want 0x92e1", got)
	}

	// A sum of 0 is written as 0xffff (CSUM_MANGLED_0).
	zero := append(make([]byte, 14), 0xff, 0xff, 0x00, 0x00)
	if err := gso.Complete(gso.Meta{NeedsCsum: true, CsumStart: 14, CsumOffset: 2}, zero); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(zero[16:]); got != 0xffff {
		t.Errorf("checksum %#04x, want 0xffff", got)
	}

	// Nothing to finish: the frame is left alone.
	plain := unhex(t, ipv4Super)
	if err := gso.Complete(gso.Meta{}, plain); err != nil || !bytes.Equal(plain, unhex(t, ipv4Super)) {
		t.Errorf("Complete without NEEDS_CSUM: %v, frame changed: %v", err, !bytes.Equal(plain, unhex(t, ipv4Super)))
	}

	for _, tc := range []struct {
		name  string
		m     gso.Meta
		field string
	}{
		{"a super-frame", ipv4Meta, "gso_type"},
		{"checksum past the frame", gso.Meta{NeedsCsum: true, CsumStart: 34, CsumOffset: 40}, "csum_offset"},
		{"csum_start past the frame", gso.Meta{NeedsCsum: true, CsumStart: 65535}, "csum_offset"},
		{"csum_start in the Ethernet header", gso.Meta{NeedsCsum: true, CsumStart: 4, CsumOffset: 6}, "csum_start"},
	} {
		f := unhex(t, ipv4Super)
		if err := gso.Complete(tc.m, f); fieldOf(err) != tc.field || !errors.Is(err, gso.ErrMalformed) {
			t.Errorf("%s: error %v, want field %q", tc.name, err, tc.field)
		}
		if !bytes.Equal(f, unhex(t, ipv4Super)) {
			t.Errorf("%s: the frame changed", tc.name)
		}
	}
}

// bigIPv4 returns a 64 KB TCP/IPv4 super-frame (45 segments at MSS 1448)
// and its header.
func bigIPv4(t testing.TB) (gso.Meta, []byte) {
	const payload = 45 * 1448
	frame := unhex(t, ipv4Super)[:54]
	binary.BigEndian.PutUint16(frame[16:], 40+payload)
	for i := range payload {
		frame = append(frame, byte(i*7))
	}
	m := ipv4Meta
	m.Size = 1448
	return m, frame
}

// TestSegmentAllocs: Segment allocates nothing.
func TestSegmentAllocs(t *testing.T) {
	m, frame := bigIPv4(t)
	scratch := make([]byte, 1<<16)
	n := 0
	emit := func(seg []byte) { n += len(seg) }
	allocs := testing.AllocsPerRun(50, func() {
		if err := gso.Segment(m, frame, scratch, emit); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Segment, want 0", allocs)
	}
	if want := 51 * (len(frame) + 44*54); n != want {
		t.Errorf("emitted %d bytes, want %d", n, want)
	}
}

func BenchmarkSegment(b *testing.B) {
	m, frame := bigIPv4(b)
	scratch := make([]byte, 1<<16)
	n := 0
	emit := func(seg []byte) { n += len(seg) }
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := gso.Segment(m, frame, scratch, emit); err != nil {
			b.Fatal(err)
		}
	}
}
