package quictransport

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/invpn/invpn/wire"
)

// Vectors written by hand from docs/protocol.md#quic-links.
func TestFragmentVectors(t *testing.T) {
	// A 0x80 frame message of 2100 bytes in datagrams of at most 1029
	// bytes: pieces of 1024 bytes at most, so 3 pieces of 700.
	msg := make([]byte, 2100)
	msg[0] = 0x80
	for i := 1; i < len(msg); i++ {
		msg[i] = byte(i)
	}
	var got [][]byte
	_, err := appendFragments(nil, msg, 0x1234, 1029, func(d []byte) error {
		got = append(got, slices.Clone(d))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d fragments, want 3", len(got))
	}
	for i, d := range got {
		wantHdr := []byte{0xF0, 0x12, 0x34, byte(i), 3}
		if !bytes.Equal(d[:5], wantHdr) || len(d) != 5+700 || !bytes.Equal(d[5:], msg[i*700:(i+1)*700]) {
			t.Errorf("fragment %d: header % x, %d bytes; want % x and 705 bytes", i, d[:5], len(d), wantHdr)
		}
	}
	// Joined in any order.
	var r reassembler
	for _, i := range []int{2, 0, 1} {
		out, err := r.take(got[i])
		if err != nil {
			t.Fatal(err)
		}
		if (out != nil) != (i == 1) {
			t.Fatalf("after fragment %d: complete=%v", i, out != nil)
		}
		if out != nil && !bytes.Equal(out, msg) {
			t.Fatal("joined frame differs")
		}
	}
}

func TestDatagramRejections(t *testing.T) {
	cases := []struct {
		name string
		d    []byte
	}{
		{"empty", nil},
		{"not a frame", []byte{0x01, 1, 2}},
		{"fragment without piece", []byte{0xF0, 0, 1, 0, 2}},
		{"count 1", []byte{0xF0, 0, 1, 0, 1, 0x80}},
		{"count 65", []byte{0xF0, 0, 1, 0, 65, 0x80}},
		{"index not below count", []byte{0xF0, 0, 1, 2, 2, 0x80}},
		{"first piece not a frame", []byte{0xF0, 0, 1, 0, 2, 0x00, 1}},
	}
	for _, c := range cases {
		var r reassembler
		out, err := r.take(c.d)
		if out != nil || !errors.Is(err, errDatagram) {
			t.Errorf("%s (% x): %v, %v; want a datagram error", c.name, c.d, out, err)
		}
	}
	var r reassembler
	if _, err := r.take([]byte{0xF0, 0, 7, 1, 3, 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.take([]byte{0xF0, 0, 7, 1, 3, 9}); !errors.Is(err, errDatagram) {
		t.Errorf("a piece twice: %v, want a datagram error", err)
	}
	if _, err := r.take([]byte{0xF0, 0, 7, 0, 4, 0x80}); !errors.Is(err, errDatagram) {
		t.Errorf("a piece with another count: %v, want a datagram error", err)
	}
}

// TestFragmentsProperty: a frame cut into pieces and delivered in any
// order, with pieces of other frames between and some pieces lost,
// comes out exactly when all its pieces came, and intact.
func TestFragmentsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 6).Draw(t, "frames")
		max := rapid.IntRange(minPiece+fragmentHeader, 1452).Draw(t, "max")
		type dg struct {
			frame int
			d     []byte
		}
		var all []dg
		frames := make([][]byte, n)
		for f := range n {
			size := rapid.IntRange(max+1, 9000).Draw(t, "size")
			m := rapid.SliceOfN(rapid.Byte(), size, size).Draw(t, "body")
			m[0] = byte(wire.TypeTargetedFrame)
			frames[f] = m
			_, err := appendFragments(nil, m, uint16(f), max, func(d []byte) error {
				if len(d) > max {
					t.Fatalf("fragment of %d bytes, max %d", len(d), max)
				}
				all = append(all, dg{f, slices.Clone(d)})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		perm := rapid.Permutation(all).Draw(t, "order")
		lost := map[int]bool{}
		var r reassembler
		var got [][]byte
		for _, x := range perm {
			if rapid.IntRange(0, 9).Draw(t, "loss") == 0 {
				lost[x.frame] = true
				continue
			}
			out, err := r.take(x.d)
			if err != nil {
				t.Fatalf("take: %v", err)
			}
			if out != nil {
				got = append(got, out)
			}
		}
		var want [][]byte
		for f, m := range frames {
			if !lost[f] {
				want = append(want, m)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d frames joined, want %d (of %d, lost %v)", len(got), len(want), n, lost)
		}
		for _, g := range got {
			if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(g, w) }) {
				t.Fatalf("a joined frame of %d bytes is none of those sent", len(g))
			}
		}
	})
}

// FuzzReassembler feeds datagrams to one reassembler: it never panics,
// every frame it returns is a frame message of at most wire.MaxMessage
// bytes, and it holds no more than its slots.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{0x81, 1, 2, 3}, []byte{0xF0, 0, 1, 0, 2, 0x80, 5}, []byte{0xF0, 0, 1, 1, 2, 6})
	f.Add([]byte{0xF0, 0xff, 0xff, 63, 64, 1}, []byte{}, []byte{0x00})
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		var r reassembler
		for _, d := range [][]byte{a, b, c, a, c, b} {
			out, err := r.take(d)
			if err != nil {
				if out != nil || !errors.Is(err, errDatagram) {
					t.Fatalf("take(% x) = % x, %v", d, out, err)
				}
				continue
			}
			if out != nil && (len(out) > wire.MaxMessage || !isFrame(out[0])) {
				t.Fatalf("take returned % x…, %d bytes", out[:1], len(out))
			}
		}
		held := 0
		for _, s := range r.slots {
			held += s.size
		}
		if held > reassemblySlots*wire.MaxMessage {
			t.Fatalf("holds %d bytes", held)
		}
	})
}
