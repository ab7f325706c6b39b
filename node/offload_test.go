package node

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// superFrame builds a TCP super-frame from src to dst over IPv4 with
// payload bytes of data, to be cut into segments of mss, as a TAP device
// with offloads hands it over: the TCP checksum holds only a partial sum.
func superFrame(dst, src wire.MAC, payload, mss int) (gso.Meta, []byte) {
	f := append(append(append([]byte{}, dst[:]...), src[:]...), 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payload))
	binary.BigEndian.PutUint16(ip[4:], 0x1234)
	copy(ip[12:], []byte{10, 78, 0, 1, 10, 78, 0, 3})
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12], tcp[13] = 5<<4, 0x18 // ACK|PSH
	f = append(append(f, ip...), tcp...)
	for i := range payload {
		f = append(f, byte(i))
	}
	return gso.Meta{NeedsCsum: true, Type: gso.TypeTCPv4, HdrLen: 54, Size: uint16(mss), CsumStart: 34, CsumOffset: 16}, f
}

// typesSent returns the type bytes of what name sent to peer.
func typesSent(tn *tnet, name, peer string) []wire.Type {
	var out []wire.Type
	for _, m := range tn.sentOn(name, peer) {
		out = append(out, wire.Type(m[0]))
	}
	return out
}

func count(ts []wire.Type, t wire.Type) int {
	k := 0
	for _, x := range ts {
		if x == t {
			k++
		}
	}
	return k
}

// TestFeaturesOpenExtendedLinks: every extended link starts with a 0x8F
// that says the sender takes 0x90; a seed-protocol link never sees one.
func TestFeaturesOpenExtendedLinks(t *testing.T) {
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c", true)
	tn.run()
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}} {
		sent := tn.sentOn(p[0], p[1])
		if len(sent) == 0 || !bytes.Equal(sent[0], []byte{0x8f, 0, 0, 0, 1}) {
			t.Errorf("%s's first message to %s = %x, want 8f00000001", p[0], p[1], sent[0])
		}
	}
	if k := count(typesSent(tn, "b", "c"), wire.TypeFeatures); k != 0 {
		t.Errorf("b sent %d 0x8F to the seed-protocol peer c", k)
	}
}

// TestGSOFramesCrossWhole: a super-frame from a's TAP crosses the relay b
// as one 0x90 per link and reaches c's TAP whole, with its offload fields.
func TestGSOFramesCrossWhole(t *testing.T) {
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	tn.reset()
	m, f := superFrame(macOf("c"), macOf("a"), 3000, 1000)
	tn.nodes["a"].OffloadFromTAP(tn.now, m, f, 0)
	tn.collect("a")
	tn.run()
	if got := typesSent(tn, "a", "b"); len(got) != 1 || got[0] != wire.TypeGSOFrame {
		t.Fatalf("a sent %v to b, want one 0x90", got)
	}
	if got := typesSent(tn, "b", "c"); len(got) != 1 || got[0] != wire.TypeGSOFrame {
		t.Fatalf("b sent %v to c, want one 0x90", got)
	}
	if len(tn.tap["c"]) != 1 || !bytes.Equal(tn.tap["c"][0], f) || tn.offloads["c"][0] != m {
		t.Fatalf("c's TAP got %d frames (offloads %+v), want the super-frame whole with %+v", len(tn.tap["c"]), tn.offloads["c"], m)
	}
	if s := tn.nodes["b"].Stats(); s.GSOIn != 1 || s.GSOOut != 1 || s.Segmented != 0 {
		t.Errorf("b's stats: in %d out %d cut %d, want 1 1 0", s.GSOIn, s.GSOOut, s.Segmented)
	}
}

// TestGSOFrameBuiltInPlace: with room before the frame, the 0x90 is built
// there, around the frame, not copied; the relay passes the message it
// received on with one hop less; c's TAP gets the super-frame whole.
func TestGSOFrameBuiltInPlace(t *testing.T) {
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	tn.reset()
	m, f := superFrame(macOf("c"), macOf("a"), 3000, 1000)
	buf := append(make([]byte, wire.GSOFrameOverhead+2), f...)
	a := tn.nodes["a"]
	a.OffloadFromTAP(tn.now, m, buf, wire.GSOFrameOverhead+2)
	hops := a.Config().HopLimit
	want := (&wire.GSOFrame{Hops: hops, Offload: m, Frame: f}).Append(nil)
	sends := a.Ready().Sends
	if len(sends) != 1 || !bytes.Equal(sends[0].Msg, want) {
		t.Fatalf("a's sends: %d, first %x…; want one 0x90 %x…", len(sends), head(sends), want[:16])
	}
	if &sends[0].Msg[0] != &buf[2] {
		t.Errorf("a's 0x90 is not built in the caller's buffer")
	}
	tn.collect("a")
	tn.run()
	want[1] = hops - 1
	if got := tn.sentOn("b", "c"); len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("b sent %d messages to c, want one 0x90 with %d hops left", len(got), hops-1)
	}
	if len(tn.tap["c"]) != 1 || !bytes.Equal(tn.tap["c"][0], f) || tn.offloads["c"][0] != m {
		t.Fatalf("c's TAP got %d frames, want the super-frame whole", len(tn.tap["c"]))
	}
}

// head returns the first bytes of the first send's message, for errors.
func head(s []Send) []byte {
	if len(s) == 0 {
		return nil
	}
	return s[0].Msg[:min(16, len(s[0].Msg))]
}

// TestGSOFramesCut: a super-frame is cut into MSS-sized frames for a
// neighbour that takes no 0x90 — a seed-protocol peer behind a relay, or
// an extended one whose 0x8F has not come — and the pieces are the
// super-frame's payload in order.
func TestGSOFramesCut(t *testing.T) {
	for _, tc := range []struct {
		name      string
		seedLink  bool // b-c speaks the seed protocol
		hold8F    bool // no 0x8F is delivered
		cutter    string
		wantTypes wire.Type // what reaches c
	}{
		{"for a seed-protocol peer", true, false, "b", wire.TypeTargetedFrame},
		{"before the peer's 0x8F", false, true, "a", wire.TypeLimitedFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := newNet(t, "a", "b", "c")
			if tc.hold8F {
				tn.hold = func(m inflight) bool { return wire.Type(m.msg[0]) == wire.TypeFeatures }
			}
			tn.link("a", "b")
			tn.link("b", "c", tc.seedLink)
			tn.run()
			tn.reset()
			m, f := superFrame(macOf("c"), macOf("a"), 2500, 1000)
			tn.nodes["a"].OffloadFromTAP(tn.now, m, f, 0)
			tn.collect("a")
			tn.run()
			if got := count(typesSent(tn, "b", "c"), tc.wantTypes); got != 3 {
				t.Fatalf("b sent %v to c, want three %v", typesSent(tn, "b", "c"), tc.wantTypes)
			}
			frames := tn.tap["c"]
			if len(frames) != 3 {
				t.Fatalf("c's TAP got %d frames, want 3", len(frames))
			}
			var payload []byte
			for i, fr := range frames {
				if tn.offloads["c"][i] != (gso.Meta{}) {
					t.Errorf("segment %d carries offload fields %+v", i, tn.offloads["c"][i])
				}
				if want := []int{1054, 1054, 554}[i]; len(fr) != want {
					t.Errorf("segment %d is %d bytes, want %d", i, len(fr), want)
				}
				if seq := binary.BigEndian.Uint32(fr[38:]); seq != 1000+uint32(1000*i) {
					t.Errorf("segment %d seq %d, want %d", i, seq, 1000+1000*i)
				}
				payload = append(payload, fr[54:]...)
			}
			if !bytes.Equal(payload, f[54:]) {
				t.Errorf("the segments' payload differs from the super-frame's")
			}
			if s := tn.nodes[tc.cutter].Stats(); s.Segmented != 1 {
				t.Errorf("%s cut %d super-frames, want 1", tc.cutter, s.Segmented)
			}
		})
	}
}

// TestGSOFrameChecks: a partial checksum alone is completed before the
// frame travels; a super-frame whose headers cannot be cut is dropped, not
// sent; a malformed 0x90 is a violation.
func TestGSOFrameChecks(t *testing.T) {
	tn := newNet(t, "a", "b")
	tn.link("a", "b", true) // b takes no 0x90: a must cut
	tn.run()
	tn.reset()
	m, f := superFrame(macOf("b"), macOf("a"), 100, 1000)
	m.Type, m.Size = gso.TypeNone, 0 // only the checksum is partial
	binary.BigEndian.PutUint16(f[50:], 0)
	tn.nodes["a"].OffloadFromTAP(tn.now, m, f, 0)
	tn.collect("a")
	tn.run()
	if len(tn.tap["b"]) != 1 || binary.BigEndian.Uint16(tn.tap["b"][0][50:]) == 0 {
		t.Fatalf("b got %d frames; the checksum of a partial-checksum frame was not completed", len(tn.tap["b"]))
	}

	tn.reset()
	m, f = superFrame(macOf("b"), macOf("a"), 3000, 1000)
	f[46] = 0x20 // TCP data offset 2: no header to cut
	before := tn.nodes["a"].Stats().Drops[DropMalformed]
	tn.nodes["a"].OffloadFromTAP(tn.now, m, f, 0)
	tn.collect("a")
	tn.run()
	if len(tn.sentOn("a", "b")) != 0 || tn.nodes["a"].Stats().Drops[DropMalformed] != before+1 {
		t.Errorf("an uncuttable super-frame: sent %d messages, malformed drops %d→%d; want none sent, one drop",
			len(tn.sentOn("a", "b")), before, tn.nodes["a"].Stats().Drops[DropMalformed])
	}

	tn2 := newNet(t, "a", "b")
	tn2.link("a", "b")
	tn2.run()
	tn2.inject("b", "a", []byte{0x90, 0x40, 0x01, 0x05, 0, 54, 5, 0xa8, 0, 34, 0, 6})
	if v := tn2.nodes["b"].Stats().Violations; v != 1 {
		t.Errorf("a malformed 0x90: %d violations, want 1", v)
	}
}

// BenchmarkOffloadFromTAP: a 64 KB super-frame from the TAP to a
// neighbour that takes 0x90 (one message, copied or built in place
// around the frame) and to a seed-protocol one (cut into 45 frames); none
// allocates.
func BenchmarkOffloadFromTAP(b *testing.B) {
	for _, bc := range []struct {
		name string
		seed bool
		at   int // room before the frame
	}{{"whole", false, 0}, {"whole in place", false, wire.GSOFrameOverhead}, {"cut", true, 0}} {
		b.Run(bc.name, func(b *testing.B) {
			tn := newNet(b, "a", "b")
			tn.link("a", "b", bc.seed)
			tn.run()
			m, f := superFrame(macOf("b"), macOf("a"), 65000-54, 1448)
			f = append(make([]byte, bc.at), f...)
			n := tn.nodes["a"]
			b.SetBytes(int64(len(f)))
			b.ReportAllocs()
			for b.Loop() {
				n.OffloadFromTAP(tn.now, m, f, bc.at)
				n.Ready()
				n.Advance()
			}
		})
	}
}
