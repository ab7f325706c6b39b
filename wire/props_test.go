package wire

import (
	"time"

	"bytes"
	"net/netip"
	"reflect"
	"testing"

	"github.com/invpn/invpn/wire/gso"
	"pgregory.net/rapid"
)

func genMAC() *rapid.Generator[MAC] {
	return rapid.Custom(func(t *rapid.T) MAC {
		return MAC(rapid.SliceOfN(rapid.Byte(), 6, 6).Draw(t, "mac"))
	})
}

func genMACs(max int) *rapid.Generator[[]MAC] {
	return rapid.Custom(func(t *rapid.T) []MAC {
		macs := rapid.SliceOfN(genMAC(), 0, max).Draw(t, "macs")
		if len(macs) == 0 {
			return nil // decoders return nil for empty lists
		}
		return macs
	})
}

func genAddr() *rapid.Generator[netip.Addr] {
	return rapid.Custom(func(t *rapid.T) netip.Addr {
		switch rapid.IntRange(0, 2).Draw(t, "addr_type") {
		case 1:
			return netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "v4")))
		case 2:
			return netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "v6")))
		}
		return netip.Addr{}
	})
}

func genFrame(dstGroup bool) *rapid.Generator[[]byte] {
	return rapid.Custom(func(t *rapid.T) []byte {
		f := rapid.SliceOfN(rapid.Byte(), EthernetHeaderLen, 1514).Draw(t, "frame")
		if dstGroup {
			f[0] |= 1
		}
		return f
	})
}

// genMessage draws a random valid message of any known type.
func genMessage() *rapid.Generator[Message] {
	return rapid.OneOf(
		rapid.Custom(func(t *rapid.T) Message {
			return &InitialInfo{ID: rapid.Uint64().Draw(t, "id"), MAC: genMAC().Draw(t, "mac"), Port: rapid.Uint16().Draw(t, "port")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &Info{ID: rapid.Uint64().Draw(t, "id"), MAC: genMAC().Draw(t, "mac"), Port: rapid.Uint16().Draw(t, "port"), Addr: genAddr().Draw(t, "addr")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			known := rapid.Bool().Draw(t, "known")
			var path []MAC
			if known {
				path = genMACs(30).Draw(t, "path")
			}
			return &InfoPath{PathKnown: known, Path: path, Info: Info{ID: rapid.Uint64().Draw(t, "id"), MAC: genMAC().Draw(t, "mac"), Port: rapid.Uint16().Draw(t, "port"), Addr: genAddr().Draw(t, "addr")}}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &HealthRequest{ID: rapid.Uint64().Draw(t, "id"), Requester: genMAC().Draw(t, "mac"), Traceroute: genMACs(50).Draw(t, "trace")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			m := &HealthResponse{Dest: genMAC().Draw(t, "dest"), Origin: genMAC().Draw(t, "origin"), ID: rapid.Uint64().Draw(t, "id"),
				Links: genMACs(20).Draw(t, "links"), Traceroute: genMACs(20).Draw(t, "trace"), Reverse: genMACs(20).Draw(t, "reverse")}
			n := rapid.IntRange(0, 20).Draw(t, "nroutes")
			for range n {
				m.Routes = append(m.Routes, Route{Target: genMAC().Draw(t, "target"), NextHop: genMAC().Draw(t, "next")})
			}
			return m
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &AnnounceRequest{ID: rapid.Uint64().Draw(t, "id"), Requester: genMAC().Draw(t, "mac")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &Heartbeat{Seq: rapid.Uint32().Draw(t, "seq"), Echo: rapid.Uint32().Draw(t, "echo")}
		}),
		rapid.Just[Message](&LinkFull{}),
		rapid.Custom(func(t *rapid.T) Message { return &Features{Bits: rapid.Uint32().Draw(t, "bits")} }),
		rapid.Custom(func(t *rapid.T) Message {
			frame := rapid.SliceOfN(rapid.Byte(), 60, 3000).Draw(t, "frame")
			start := rapid.IntRange(EthernetHeaderLen, len(frame)-18).Draw(t, "csum_start")
			typ := rapid.SampledFrom([]gso.Type{gso.TypeTCPv4, gso.TypeTCPv6}).Draw(t, "type")
			return &GSOFrame{Hops: rapid.Uint8().Draw(t, "hops"), Frame: frame, Offload: gso.Meta{
				NeedsCsum: true, Type: typ, ECN: rapid.Bool().Draw(t, "ecn"),
				HdrLen: uint16(rapid.IntRange(0, len(frame)).Draw(t, "hdr_len")), Size: rapid.Uint16Min(1).Draw(t, "size"),
				CsumStart: uint16(start), CsumOffset: 16}}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			m := &Signatures{}
			for range rapid.IntRange(0, 10).Draw(t, "n") {
				m.Entries = append(m.Entries, Signature{MAC: genMAC().Draw(t, "mac"), ID: rapid.Uint64().Draw(t, "id"),
					Port: rapid.Uint16().Draw(t, "port"), Sig: rapid.SliceOfN(rapid.Byte(), 1, 300).Draw(t, "sig")})
			}
			return m
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &Certificate{DER: rapid.SliceOfN(rapid.Byte(), 1, 2000).Draw(t, "der")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &RevocationList{Number: rapid.Uint64().Draw(t, "number"), DER: rapid.SliceOfN(rapid.Byte(), 1, 2000).Draw(t, "der")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			m := &HealthLinks{Dest: genMAC().Draw(t, "dest"), Origin: genMAC().Draw(t, "origin"), ID: rapid.Uint64().Draw(t, "id")}
			for range rapid.IntRange(0, 20).Draw(t, "n") {
				m.Links = append(m.Links, LinkRTT{Peer: genMAC().Draw(t, "peer"), RTT: time.Duration(rapid.Uint32().Draw(t, "rtt")) * time.Microsecond})
			}
			return m
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &TargetedFrame{Frame: genFrame(false).Draw(t, "frame")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &BroadcastFrame{ID: rapid.Uint64().Draw(t, "id"), Src: genMAC().Draw(t, "src"), Payload: rapid.SliceOfN(rapid.Byte(), 2, 1500).Draw(t, "payload")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &GroupFrame{ID: rapid.Uint64().Draw(t, "id"), Frame: genFrame(true).Draw(t, "frame")}
		}),
		rapid.Custom(func(t *rapid.T) Message {
			return &LimitedFrame{Hops: rapid.Uint8().Draw(t, "hops"), Frame: genFrame(false).Draw(t, "frame")}
		}),
	)
}

// TestRoundTripProperty: every valid message encodes, decodes to an equal
// value and re-encodes to the same bytes.
func TestRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := genMessage().Draw(t, "msg")
		enc := m.Append(nil)
		got, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Append(%#v)): %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip\n got %#v\nwant %#v", got, m)
		}
		if again := got.Append(nil); !bytes.Equal(again, enc) {
			t.Fatalf("re-encoding differs: %x vs %x", again, enc)
		}
	})
}

// TestStreamProperty: any sequence of messages written by Writer is read
// back by Reader, message for message, then io.EOF.
func TestStreamProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		msgs := rapid.SliceOfN(genMessage(), 0, 8).Draw(t, "msgs")
		var stream bytes.Buffer
		w := NewWriter(&stream)
		var want [][]byte
		for _, m := range msgs {
			enc := m.Append(nil)
			want = append(want, enc)
			if err := w.WriteMessage(enc); err != nil {
				t.Fatal(err)
			}
		}
		r := NewReader(&stream)
		for i, enc := range want {
			got, err := r.Next()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if !bytes.Equal(got, enc) {
				t.Fatalf("message %d: got %x want %x", i, got, enc)
			}
		}
		if _, err := r.Next(); err == nil {
			t.Fatal("no EOF after last message")
		}
	})
}

// TestRandomBytesProperty: arbitrary bytes never panic a decoder; when one
// accepts them, re-encoding gives the same bytes back (decoding is exact).
func TestRandomBytesProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		msg := rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "msg")
		if len(msg) > 0 && rapid.Bool().Draw(t, "known type") {
			msg[0] = rapid.SampledFrom([]byte{0, 1, 2, 3, 0x80, 0x81, 0x82, 0x84, 0x85, 0x86}).Draw(t, "type")
		}
		m, err := Decode(msg)
		if err != nil {
			return
		}
		if enc := m.Append(nil); !bytes.Equal(enc, msg) {
			t.Fatalf("accepted %x but re-encodes as %x", msg, enc)
		}
	})
}
