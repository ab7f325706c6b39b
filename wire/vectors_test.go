package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/wire/gso"
)

// unhex decodes a hex string written by hand; spaces and '|' separate
// fields for the reader and are ignored.
func unhex(t testing.TB, s string) []byte {
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("bad test vector " + s + ": " + err.Error())
	}
	return b
}

var (
	macA = MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x01}
	macB = MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x02}
	macC = MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x03}
)

// knownAnswers are written from the packet table (docs/protocol.md#packet-types),
// field by field, not produced by the encoder under test.
var knownAnswers = []struct {
	name string
	hex  string
	want Message
}{
	{"0x00 initial info", "00 | 01 | 0000018bcfe56800 | 025056000001 | a310",
		&InitialInfo{ID: 0x18bcfe56800, MAC: macA, Port: 41744}},
	{"0x01 info ipv4", "01 | 01 | 0000018bcfe56801 | 025056000002 | a310 | 01 | c0000201",
		&Info{ID: 0x18bcfe56801, MAC: macB, Port: 41744, Addr: netip.MustParseAddr("192.0.2.1")}},
	{"0x01 info ipv6", "01 | 01 | 0000000000000007 | 025056000003 | 0050 | 02 | 20010db8000000000000000000000001",
		&Info{ID: 7, MAC: macC, Port: 80, Addr: netip.MustParseAddr("2001:db8::1")}},
	{"0x01 info ipv4-mapped as type 2", "01 | 01 | 0000000000000008 | 025056000003 | 0050 | 02 | 00000000000000000000ffffc0000201",
		&Info{ID: 8, MAC: macC, Port: 80, Addr: netip.MustParseAddr("::ffff:192.0.2.1")}},
	{"0x01 info no address", "01 | 01 | 0000000000000009 | 025056000001 | 0000 | 00",
		&Info{ID: 9, MAC: macA}},
	{"0x02 health request", "02 | 01 | 00000000000000ff | 025056000001 | 025056000001 025056000002",
		&HealthRequest{ID: 255, Requester: macA, Traceroute: []MAC{macA, macB}}},
	{"0x02 health request empty trace", "02 | 01 | 0000000000000001 | 025056000001",
		&HealthRequest{ID: 1, Requester: macA}},
	{"0x03 health response",
		"03 | 01 | 025056000001 | 025056000003 | 00000000000000ff" +
			"| 0002 | 025056000002 025056000001" +
			"| 0001 | 025056000001 025056000002" +
			"| 0003 | 025056000001 025056000002 025056000003" +
			"| 025056000003 025056000002",
		&HealthResponse{Dest: macA, Origin: macC, ID: 255,
			Links:      []MAC{macB, macA},
			Routes:     []Route{{Target: macA, NextHop: macB}},
			Traceroute: []MAC{macA, macB, macC},
			Reverse:    []MAC{macC, macB}}},
	{"0x03 health response empty lists",
		"03 | 01 | 025056000001 | 025056000001 | 0000000000000002 | 0000 | 0000 | 0000",
		&HealthResponse{Dest: macA, Origin: macA, ID: 2}},
	{"0x80 targeted frame", "80 | 025056000002 | 025056000001 | 0800 | 4500",
		&TargetedFrame{Frame: unhex(nil, "025056000002 025056000001 0800 4500")}},
	{"0x81 broadcast frame", "81 | 0000018bcfe56802 | 025056000001 | 0806 | 0001",
		&BroadcastFrame{ID: 0x18bcfe56802, Src: macA, Payload: unhex(nil, "0806 0001")}},
	{"0x82 group frame (extension)", "82 | 0000000000000003 | 333300000001 025056000001 86dd 60",
		&GroupFrame{ID: 3, Frame: unhex(nil, "333300000001 025056000001 86dd 60")}},
	{"0x84 limited frame (extension)", "84 | 40 | 025056000002 025056000001 0800",
		&LimitedFrame{Hops: 64, Frame: unhex(nil, "025056000002 025056000001 0800")}},
	{"0x85 info with path (extension)", "85 | 02 | 025056000002 025056000003 | 01 | 0000000000000009 | 025056000001 | a310 | 01 | c0000201",
		&InfoPath{PathKnown: true, Path: []MAC{macB, macC}, Info: Info{ID: 9, MAC: macA, Port: 41744, Addr: netip.MustParseAddr("192.0.2.1")}}},
	{"0x86 announce request (extension)", "86 | 0000000000000010 | 025056000003",
		&AnnounceRequest{ID: 16, Requester: macC}},
	{"0x87 heartbeat probe (extension)", "87 | 0000002a | 00000000", &Heartbeat{Seq: 42}},
	{"0x87 heartbeat answer that probes (extension)", "87 | 00000007 | ffffffff", &Heartbeat{Seq: 7, Echo: 0xffffffff}},
	{"0x8a link full (extension)", "8a", &LinkFull{}},
	{"0x8b health links: two links, one not measured (extension)",
		"8b | 025056000001 | 025056000002 | 0000000000000007 | 0002 | 025056000001 | 000004d2 | 025056000003 | 00000000",
		&HealthLinks{Dest: macA, Origin: macB, ID: 7, Links: []LinkRTT{{Peer: macA, RTT: 1234 * time.Microsecond}, {Peer: macC}}}},
	{"0x8d signatures: two (extension)",
		"8d | 0002 | 025056000001 | 0000000000000009 | a310 | 0002 | abcd | 025056000002 | 000000000000000a | 0000 | 0001 | ee",
		&Signatures{Entries: []Signature{{MAC: macA, ID: 9, Port: 41744, Sig: unhex(nil, "abcd")}, {MAC: macB, ID: 10, Sig: unhex(nil, "ee")}}}},
	{"0x8d signatures: none (extension)", "8d | 0000", &Signatures{}},
	{"0x8e certificate (extension)", "8e | 3003020101", &Certificate{DER: unhex(nil, "3003020101")}},
	{"0x8f features: GSO frames (extension)", "8f | 00000001", &Features{Bits: FeatureGSO}},
	{"0x8f features: unknown bits kept (extension)", "8f | 80000003", &Features{Bits: 0x80000003}},
	{"0x90 gso frame: TCPv4, MSS 1448 (extension)", "90 | 40 | 01 | 01 | 0036 | 05a8 | 0022 | 0010 | 025056000002 025056000001 0800 | 00000000000000000000000000000000000000000000000000000000000000000000000000000000",
		&GSOFrame{Hops: 64, Offload: gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, HdrLen: 54, Size: 1448, CsumStart: 34, CsumOffset: 16},
			Frame: unhex(nil, "025056000002 025056000001 0800 00000000000000000000000000000000000000000000000000000000000000000000000000000000")}},
	{"0x90 gso frame: TCPv6 with ECN (extension)", "90 | ff | 01 | 84 | 004a | 0010 | 0036 | 0010 | 025056000002 025056000001 86dd | 00000000000000000000000000000000000000000000000000000000000000000000000000000000 00000000000000000000000000000000000000000000000000000000000000000000000000000000",
		&GSOFrame{Hops: 255, Offload: gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv6, ECN: true, HdrLen: 74, Size: 16, CsumStart: 54, CsumOffset: 16},
			Frame: unhex(nil, "025056000002 025056000001 86dd 00000000000000000000000000000000000000000000000000000000000000000000000000000000 00000000000000000000000000000000000000000000000000000000000000000000000000000000")}},
	{"0x8c revocation list (extension)", "8c | 0000000000000003 | 3003020101",
		&RevocationList{Number: 3, DER: unhex(nil, "3003020101")}},
	{"0x8b health links: none (extension)", "8b | 025056000001 | 025056000002 | 0000000000000008 | 0000",
		&HealthLinks{Dest: macA, Origin: macB, ID: 8}},
	{"0x85 info with empty path (extension)", "85 | 00 | 01 | 000000000000000a | 025056000001 | 0000 | 00",
		&InfoPath{PathKnown: true, Info: Info{ID: 10, MAC: macA}}},
	{"0x85 info with unknown path (extension)", "85 | ff | 01 | 000000000000000b | 025056000001 | 0000 | 00",
		&InfoPath{Info: Info{ID: 11, MAC: macA}}},
	{"0x88 info batch: a change with a path and a refresh without address (extension)",
		"88 | 0002" +
			"| 00 | 00000000 | 01 | 025056000002 | 01 | 000000000000000c | 025056000001 | a310 | 01 | c0000201" +
			"| 01 | 0003d090 | 00 | 01 | 000000000000000d | 025056000003 | 0000 | 00",
		&InfoBatch{Entries: []BatchEntry{
			{InfoPath: InfoPath{PathKnown: true, Path: []MAC{macB}, Info: Info{ID: 12, MAC: macA, Port: 41744, Addr: netip.MustParseAddr("192.0.2.1")}}},
			{Refresh: true, Held: 250 * time.Millisecond, InfoPath: InfoPath{PathKnown: true, Info: Info{ID: 13, MAC: macC}}},
		}}},
	{"0x88 info batch: unknown path, ipv6 (extension)",
		"88 | 0001 | 00 | 000003e8 | ff | 01 | 000000000000000e | 025056000002 | 0050 | 02 | 20010db8000000000000000000000001",
		&InfoBatch{Entries: []BatchEntry{
			{Held: time.Millisecond, InfoPath: InfoPath{Info: Info{ID: 14, MAC: macB, Port: 80, Addr: netip.MustParseAddr("2001:db8::1")}}},
		}}},
	{"0x88 empty info batch (extension)", "88 | 0000", &InfoBatch{Entries: []BatchEntry{}}},
	{"0x88 the sender's own refresh (extension)", "88 | 0001 | 03 | 00000000 | 00 | 01 | 000000000000000f | 025056000002 | a310 | 00",
		&InfoBatch{Entries: []BatchEntry{{Refresh: true, Self: true, InfoPath: InfoPath{PathKnown: true, Info: Info{ID: 15, MAC: macB, Port: 41744}}}}}},
	{"0x89 announce request for two targets (extension)", "89 | 0000000000000011 | 025056000001 | 0002 | 025056000002 025056000003",
		&AnnounceRequestFor{ID: 17, Requester: macA, Targets: []MAC{macB, macC}}},
	{"0x89 announce request for no target (extension)", "89 | 0000000000000012 | 025056000001 | 0000",
		&AnnounceRequestFor{ID: 18, Requester: macA}},
}

func TestKnownAnswers(t *testing.T) {
	for _, tc := range knownAnswers {
		t.Run(tc.name, func(t *testing.T) {
			msg := unhex(t, tc.hex)
			got, err := Decode(msg)
			if err != nil {
				t.Fatalf("Decode(%x): %v", msg, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decode(%x)\n got %#v\nwant %#v", msg, got, tc.want)
			}
			if got.Type() != Type(msg[0]) {
				t.Errorf("Type() = %v, want 0x%02x", got.Type(), msg[0])
			}
			if enc := tc.want.Append(nil); !bytes.Equal(enc, msg) {
				t.Fatalf("Append\n got %x\nwant %x", enc, msg)
			}
			// Appending after existing bytes keeps them.
			if enc := tc.want.Append([]byte{0xee}); enc[0] != 0xee || !bytes.Equal(enc[1:], msg) {
				t.Fatalf("Append to non-empty buffer: %x", enc)
			}
		})
	}
}

func TestHealthResponseEncodedLen(t *testing.T) {
	for _, tc := range knownAnswers {
		if r, ok := tc.want.(*HealthResponse); ok {
			if got, want := r.EncodedLen(), len(unhex(t, tc.hex)); got != want {
				t.Errorf("%s: EncodedLen = %d, want %d", tc.name, got, want)
			}
		}
	}
}

// TestRejects checks that each malformed message of docs/protocol.md#defect-11
// and docs/protocol.md#malformed-input is refused with the right sentinel and a
// field name.
func TestRejects(t *testing.T) {
	cases := []struct {
		name, hex string
		err       error
		field     string
	}{
		{"empty", "", ErrZeroLength, ""},
		{"unknown type", "7f 00", ErrUnknownType, ""},
		{"0x00 short", "00 01 0000", ErrShort, "id"},
		{"0x00 no version", "00", ErrShort, "version"},
		{"0x00 version 2", "00 02 0000000000000001 025056000001 a310", ErrVersion, "version"},
		{"0x00 trailing", "00 01 0000000000000001 025056000001 a310 01", ErrTrailing, "port"},
		{"0x01 short", "01 01 0000000000000001 025056000001 a3", ErrShort, "port"},
		{"0x01 bad addr_type", "01 01 0000000000000001 025056000001 a310 07", ErrAddrType, "addr_type"},
		{"0x01 short ipv4", "01 01 0000000000000001 025056000001 a310 01 c00002", ErrShort, "addr"},
		{"0x01 long ipv4", "01 01 0000000000000001 025056000001 a310 01 c000020101", ErrTrailing, "addr"},
		{"0x01 addr with type 0", "01 01 0000000000000001 025056000001 a310 00 c0000201", ErrTrailing, "addr"},
		{"0x01 version 0", "01 00 0000000000000001 025056000001 a310 00", ErrVersion, "version"},
		{"0x02 ragged trace", "02 01 0000000000000001 025056000001 0250", ErrCount, "traceroute"},
		{"0x02 short", "02 01 00000000", ErrShort, "id"},
		{"0x03 nconn too big", "03 01 025056000001 025056000003 0000000000000001 0005 025056000002", ErrCount, "conns"},
		{"0x03 nroutes too big", "03 01 025056000001 025056000003 0000000000000001 0000 ffff", ErrCount, "routes"},
		{"0x03 no trace_len", "03 01 025056000001 025056000003 0000000000000001 0000 0000", ErrShort, "trace_len"},
		{"0x03 ragged reverse", "03 01 025056000001 025056000003 0000000000000001 0000 0000 0000 02", ErrCount, "reverse traceroute"},
		{"0x03 short", "03 01 0250", ErrShort, "dest mac"},
		{"0x80 six-byte body", "80 025056000002", ErrShort, "src mac"},
		{"0x80 no ethertype", "80 025056000002 025056000001", ErrShort, "ethertype"},
		{"0x81 short", "81 0000000000000001 025056000001", ErrShort, "ethertype"},
		{"0x82 unicast dst", "82 0000000000000001 025056000002 025056000001 86dd", ErrHeader, "dst mac"},
		{"0x84 short", "84 40 025056000002", ErrShort, "src mac"},
		{"0x85 bad inner version", "85 00 02 0000000000000001 025056000001 a310 00", ErrVersion, "version"},
		{"0x86 short", "86 0000000000000010 0250", ErrShort, "mac"},
		{"0x86 trailing", "86 0000000000000010 025056000003 00", ErrTrailing, "mac"},
		{"0x87 no seq", "87 0000", ErrShort, "seq"},
		{"0x87 short echo", "87 0000002a 0000", ErrShort, "echo"},
		{"0x87 trailing", "87 0000002a 00000001 00", ErrTrailing, "echo"},
		{"0x88 no count", "88 00", ErrShort, "count"},
		{"0x88 count past the end", "88 0002 00 00000000 00 01 000000000000000c 025056000001 a310 00", ErrCount, "count"},
		{"0x88 reserved flag", "88 0001 04 00000000 00 01 000000000000000c 025056000001 a310 00", ErrCount, "entries[0].flags"},
		{"0x88 path past the end", "88 0001 00 00000000 05 01 000000000000000c 025056000001 a310 00", ErrCount, "entries[0].path"},
		{"0x88 short address", "88 0001 00 00000000 00 01 000000000000000c 025056000001 a310 01 c00002", ErrShort, "entries[0].addr"},
		{"0x88 bad addr_type", "88 0001 00 00000000 00 01 000000000000000c 025056000001 a310 07", ErrAddrType, "entries[0].addr_type"},
		{"0x88 bad version in entry 1", "88 0002 00 00000000 00 01 000000000000000c 025056000001 a310 00 00 00000000 00 02 000000000000000c 025056000001 a310 00",
			ErrVersion, "entries[1].version"},
		{"0x88 trailing", "88 0001 00 00000000 00 01 000000000000000c 025056000001 a310 00 ee", ErrTrailing, "entries"},
		{"0x89 short", "89 0000000000000011 0250560000", ErrShort, "mac"},
		{"0x89 no count", "89 0000000000000011 025056000001", ErrShort, "count"},
		{"0x89 count past the end", "89 0000000000000011 025056000001 0002 025056000002", ErrCount, "targets"},
		{"0x89 trailing", "89 0000000000000011 025056000001 0001 025056000002 00", ErrCount, "targets"},
		{"0x8d no count", "8d 00", ErrShort, "count"},
		{"0x8d count past the end", "8d 0002 025056000001 0000000000000009 a310 0002 abcd", ErrCount, "count"},
		{"0x8d empty signature", "8d 0001 025056000001 0000000000000009 a310 0000 00", ErrCount, "entries[0].len"},
		{"0x8d signature past the end", "8d 0001 025056000001 0000000000000009 a310 0003 abcd", ErrShort, "entries[0].sig"},
		{"0x8d trailing", "8d 0001 025056000001 0000000000000009 a310 0001 ab 00", ErrTrailing, "entries"},
		{"0x8e no certificate", "8e", ErrShort, "certificate"},
		{"0x8f short", "8f 000001", ErrShort, "bits"},
		{"0x8f trailing", "8f 00000001 00", ErrTrailing, "bits"},
		{"0x90 short", "90 40 01 01 0036", ErrShort, "gso_size"},
		{"0x90 full checksum", "90 40 00 01 0036 05a8 0022 0010 025056000002 025056000001 0800 00000000000000000000000000000000000000000000000000000000000000000000000000000000", ErrOffload, "flags"},
		{"0x90 UDP segmentation", "90 40 01 05 0036 05a8 0022 0006 025056000002 025056000001 0800 00000000000000000000000000000000000000000000000000000000000000000000000000000000", ErrOffload, "gso_type"},
		{"0x90 no segmentation", "90 40 01 00 0036 05a8 0022 0010 025056000002 025056000001 0800 00000000000000000000000000000000000000000000000000000000000000000000000000000000", ErrOffload, "gso_type"},
		{"0x90 no frame", "90 40 01 01 0036 05a8 0022 0010 025056000002", ErrShort, "src mac"},
		{"0x90 headers past the frame", "90 40 01 01 0037 05a8 0022 0010 025056000002 025056000001 0800 00000000000000000000000000000000000000000000000000000000000000000000000000000000", ErrOffload, "hdr_len"},
		{"0x90 zero segment size", "90 40 01 01 0036 0000 0022 0010 025056000002 025056000001 0800 00000000000000000000000000000000000000000000000000000000000000000000000000000000", ErrOffload, "gso_size"},
		{"0x90 checksum in the Ethernet header", "90 40 01 01 0036 05a8 000d 0010 025056000002 025056000001 0800 00000000000000000000000000000000000000000000000000000000000000000000000000000000", ErrOffload, "csum_start"},
		{"0x90 checksum past the frame", "90 40 01 01 0036 05a8 0022 0013 025056000002 025056000001 0800 00000000000000000000000000000000000000000000000000000000000000000000000000000000", ErrOffload, "csum_offset"},
		{"0x8c short number", "8c 00000000000000", ErrShort, "number"},
		{"0x8c no list", "8c 0000000000000003", ErrShort, "list"},
		{"0x85 path longer than message", "85 05 025056000002 01 0000000000000001 025056000001 a310 00", ErrCount, "path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := unhex(t, tc.hex)
			m, err := Decode(msg)
			if err == nil {
				t.Fatalf("Decode(%x) = %#v, want error %v", msg, m, tc.err)
			}
			if m != nil {
				t.Errorf("Decode returned a message with its error: %#v", m)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Decode(%x) error %v, want %v", msg, err, tc.err)
			}
			if tc.field == "" {
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if de.Field != tc.field || de.Type != Type(msg[0]) {
				t.Errorf("error names type %v field %q, want %v field %q (%v)", de.Type, de.Field, Type(msg[0]), tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q does not name field %q", err, tc.field)
			}
		})
	}
}

func TestTypeOfUnknown(t *testing.T) {
	typ, err := TypeOf([]byte{0x91, 1, 2})
	if !errors.Is(err, ErrUnknownType) || typ != 0x91 {
		t.Fatalf("TypeOf(0x91) = %v, %v; want 0x91 and ErrUnknownType", typ, err)
	}
	if _, err := TypeOf([]byte{0x81}); err != nil {
		t.Fatalf("TypeOf(0x81): %v", err)
	}
}

func TestDecoderWrongType(t *testing.T) {
	if _, err := DecodeTargetedFrame(unhex(t, "81 0000000000000001 025056000001 0806")); !errors.Is(err, ErrWrongType) {
		t.Fatalf("DecodeTargetedFrame(0x81) error %v, want ErrWrongType", err)
	}
}

func TestBroadcastAppendEthernet(t *testing.T) {
	// docs/protocol.md#packet-types: a 0x81 is written to the TAP with
	// destination ff:ff:ff:ff:ff:ff and the carried source and payload.
	b := BroadcastFrame{ID: 1, Src: macA, Payload: unhex(t, "0806 0001")}
	want := unhex(t, "ffffffffffff 025056000001 0806 0001")
	if got := b.AppendEthernet(nil); !bytes.Equal(got, want) {
		t.Fatalf("AppendEthernet = %x, want %x", got, want)
	}
	g := GroupFrame{ID: 5, Frame: unhex(t, "333300000001 025056000001 86dd 60")}
	if got, want := g.AppendBroadcast(nil), unhex(t, "81 0000000000000005 025056000001 86dd 60"); !bytes.Equal(got, want) {
		t.Fatalf("AppendBroadcast = %x, want %x", got, want)
	}
}

func TestMAC(t *testing.T) {
	for _, s := range []string{"02:50:56:00:00:01", "02-50-56-00-00-01", "02:50:56:00:00:01"} {
		m, err := ParseMAC(s)
		if err != nil || m != macA {
			t.Errorf("ParseMAC(%q) = %v, %v", s, m, err)
		}
	}
	if m, err := ParseMAC("AA:BB:CC:DD:EE:FF"); err != nil || m.String() != "aa:bb:cc:dd:ee:ff" {
		t.Errorf("ParseMAC upper case = %v, %v", m, err)
	}
	for _, s := range []string{"", "02:50:56:00:00", "02:50:56:00:00:0g", "02:50-56:00:00:01", "0250.5600.0001x"} {
		if _, err := ParseMAC(s); err == nil {
			t.Errorf("ParseMAC(%q) accepted", s)
		}
	}
	if !Broadcast.IsGroup() || !Broadcast.IsBroadcast() || macA.IsGroup() {
		t.Error("group bit checks wrong")
	}
	if !(MAC{0x33, 0x33, 0, 0, 0, 1}).IsGroup() || !(MAC{0x01, 0x00, 0x5e, 0, 0, 1}).IsGroup() {
		t.Error("multicast not a group address")
	}
}

func TestMACText(t *testing.T) {
	b, err := macA.MarshalText()
	if err != nil || string(b) != "02:50:56:00:00:01" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	var m MAC
	if err := m.UnmarshalText([]byte("02:50:56:00:00:02")); err != nil || m != macB {
		t.Fatalf("UnmarshalText = %v, %v", m, err)
	}
	if err := m.UnmarshalText([]byte("nonsense")); err == nil {
		t.Fatal("UnmarshalText accepted nonsense")
	}
}
