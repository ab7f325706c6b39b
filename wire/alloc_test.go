package wire

import "testing"

// frame1500 is a 1500-byte Ethernet frame (14-byte header and payload).
func frame1500() []byte {
	f := make([]byte, 1500)
	copy(f, []byte{0x02, 0x50, 0x56, 0, 0, 2, 0x02, 0x50, 0x56, 0, 0, 1, 0x08, 0x00})
	return f
}

// TestPerFrameNoAlloc: encoding and decoding 0x80, 0x81, 0x82 and 0x84
// into a reused buffer allocates nothing (the per-frame path).
func TestPerFrameNoAlloc(t *testing.T) {
	f := frame1500()
	buf := make([]byte, 0, 2048)
	tf := TargetedFrame{Frame: f}
	bf := BroadcastFrame{ID: 1, Src: macA, Payload: f[12:]}
	lf := LimitedFrame{Hops: 64, Frame: f}
	group := append([]byte{0x33, 0x33, 0, 0, 0, 1}, f[6:]...)
	gf := GroupFrame{ID: 2, Frame: group}
	cases := map[string]func(){
		"0x80": func() {
			b := tf.Append(buf[:0])
			if _, err := DecodeTargetedFrame(b); err != nil {
				t.Fatal(err)
			}
		},
		"0x81": func() {
			b := bf.Append(buf[:0])
			if _, err := DecodeBroadcastFrame(b); err != nil {
				t.Fatal(err)
			}
		},
		"0x82": func() {
			b := gf.Append(buf[:0])
			if _, err := DecodeGroupFrame(b); err != nil {
				t.Fatal(err)
			}
		},
		"0x84": func() {
			b := lf.Append(buf[:0])
			if _, err := DecodeLimitedFrame(b); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s encode+decode: %v allocs per run, want 0", name, n)
		}
	}
}

func BenchmarkTargetedFrame1500(b *testing.B) {
	m := TargetedFrame{Frame: frame1500()}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(1500)
	for b.Loop() {
		buf = m.Append(buf[:0])
		if _, err := DecodeTargetedFrame(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBroadcastFrame1500(b *testing.B) {
	f := frame1500()
	m := BroadcastFrame{ID: 1, Src: macA, Payload: f[12:]}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(1500)
	for b.Loop() {
		buf = m.Append(buf[:0])
		if _, err := DecodeBroadcastFrame(buf); err != nil {
			b.Fatal(err)
		}
	}
}
