package gso

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// Seeds shared by the fuzz targets: headers and super-frames from the
// hand-written vectors (vectors_test.go). The committed corpus in
// testdata/fuzz/ holds more.
var (
	seedHeaderTCP4 = "01 01 3600 0800 2200 1000"
	seedHeaderTCP6 = "01 84 4a00 0800 3600 1000"
	seedFrameTCP4  = `
		020000000002 020000000001 0800
		45 00 003c 1234 4000 40 06 beef 0a000001 0a000002
		3039 0050 fffffff8 00000001 50 99 ffff dead 0000
		6162636465666768 696a6b6c6d6e6f70 71727374`
	seedFrameTCP6 = `
		020000000002 020000000001 86dd
		60000000 0028 06 40 fd000000000000000000000000000001 fd000000000000000000000000000002
		3039 0050 fffffff8 00000001 50 99 ffff dead 0000
		6162636465666768 696a6b6c6d6e6f70 71727374`
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzParseHeader: any bytes parse or are refused with a *FieldError;
// what parses is written back the same (but for DATA_VALID, which is
// dropped) and parses again to the same Meta.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{seedHeaderTCP4, seedHeaderTCP6, "03 00 0000 0000 2200 0600", "01 05 2a00 a805 2200 0600", "01 01 3600"} {
		f.Add(mustHex(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseHeader(b)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			return
		}
		out := make([]byte, HeaderLen)
		m.PutHeader(out)
		want := bytes.Clone(b[:HeaderLen])
		want[0] &^= flagDataValid
		if !bytes.Equal(out, want) {
			t.Fatalf("%x parses to %+v, written back as %x", b[:HeaderLen], m, out)
		}
		if again, err := ParseHeader(out); again != m || err != nil {
			t.Fatalf("%x parses to %+v, then to %+v, %v", b[:HeaderLen], m, again, err)
		}
		_ = m.Check(len(b) - HeaderLen)
	})
}

// FuzzSegment: any header and frame are cut or refused without a panic.
// What is cut comes in as many segments as Segments says, each fitting
// a scratch of MaxSegmentLen bytes, each with at most Size bytes of
// payload and the super-frame's headers but for the fields Segment
// sets, valid IPv4 and TCP checksums, and all of them together the
// super-frame's payload. What is refused emits nothing. A scratch one
// byte short is refused; Complete does not panic on the frame either.
func FuzzSegment(f *testing.F) {
	f.Add(mustHex(seedHeaderTCP4), mustHex(seedFrameTCP4))
	f.Add(mustHex(seedHeaderTCP6), mustHex(seedFrameTCP6))
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		m, err := ParseHeader(hdr)
		if err != nil {
			return
		}
		orig := bytes.Clone(frame)
		defer func() {
			_ = Complete(Meta{NeedsCsum: m.NeedsCsum, CsumStart: m.CsumStart, CsumOffset: m.CsumOffset}, frame)
		}()
		l, perr := parse(m, frame)
		count, cerr := Segments(m, frame)
		maxLen, merr := MaxSegmentLen(m, frame)
		scratch := make([]byte, max(maxLen, 1<<16))
		if merr == nil {
			scratch = scratch[:maxLen]
		}
		var payload []byte
		emitted := 0
		err = Segment(m, frame, scratch, func(seg []byte) {
			emitted++
			if perr != nil {
				t.Fatalf("emitted a segment of a frame parse refuses: %v", perr)
			}
			checkSegment(t, m, l, frame, seg, len(payload), len(scratch))
			payload = append(payload, seg[l.hdr:]...)
		})
		if (err == nil) != (perr == nil) || (cerr == nil) != (perr == nil) || (merr == nil) != (perr == nil) {
			t.Fatalf("Segment %v, Segments %v, MaxSegmentLen %v, parse %v", err, cerr, merr, perr)
		}
		if !bytes.Equal(frame, orig) {
			t.Fatalf("Segment changed the frame")
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if emitted != 0 {
				t.Fatalf("%d segments emitted before the error %v", emitted, err)
			}
			return
		}
		if emitted != count {
			t.Fatalf("%d segments, Segments says %d", emitted, count)
		}
		if !bytes.Equal(payload, frame[l.hdr:l.end]) {
			t.Fatalf("the segments carry %d bytes of payload, the super-frame %d", len(payload), l.end-l.hdr)
		}
		err = Segment(m, frame, scratch[:maxLen-1], func([]byte) { t.Fatal("emitted into a short scratch") })
		if !errors.Is(err, io.ErrShortBuffer) {
			t.Fatalf("a scratch of %d bytes, MaxSegmentLen %d: %v", maxLen-1, maxLen, err)
		}
	})
}

// checkSegment checks one segment that carries the payload from off on.
func checkSegment(t *testing.T, m Meta, l layout, frame, seg []byte, off, scratchLen int) {
	t.Helper()
	n := len(seg) - l.hdr
	switch {
	case len(seg) > scratchLen:
		t.Fatalf("a %d-byte segment from a %d-byte scratch", len(seg), scratchLen)
	case n < 0 || n > int(m.Size):
		t.Fatalf("a segment of %d bytes, headers %d, size %d", len(seg), l.hdr, m.Size)
	case n == 0 && l.end > l.hdr:
		t.Fatalf("an empty segment of a super-frame with payload")
	}
	// The headers are the super-frame's but for the fields Segment sets.
	want := bytes.Clone(frame[:l.hdr])
	got := bytes.Clone(seg[:l.hdr])
	for _, b := range [][]byte{want, got} {
		if l.v6 {
			clear(b[l.ip+4 : l.ip+6]) // payload length
		} else {
			clear(b[l.ip+2 : l.ip+6])   // total length, id
			clear(b[l.ip+10 : l.ip+12]) // header checksum
		}
		clear(b[l.tcp+4 : l.tcp+8]) // seq
		b[l.tcp+13] &^= tcpFIN | tcpPSH | tcpCWR
		clear(b[l.tcp+16 : l.tcp+18]) // checksum
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("segment headers %x, super-frame's %x", seg[:l.hdr], frame[:l.hdr])
	}
	if seq := binary.BigEndian.Uint32(seg[l.tcp+4:]); seq != binary.BigEndian.Uint32(frame[l.tcp+4:])+uint32(off) {
		t.Fatalf("seq %#x at payload offset %d", seq, off)
	}
	// The checksums verify, summed the plain way.
	plain := func(b []byte, acc uint32) uint32 {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			acc += w
		}
		return acc
	}
	foldPlain := func(acc uint32) uint32 {
		for acc > 0xffff {
			acc = acc>>16 + acc&0xffff
		}
		return acc
	}
	if !l.v6 && foldPlain(plain(seg[l.ip:l.tcp], 0)) != 0xffff {
		t.Fatalf("IPv4 header checksum does not verify: %x", seg[l.ip:l.tcp])
	}
	pseudo := plain(seg[l.ip+12:l.ip+20], protoTCP+uint32(len(seg)-l.tcp))
	if l.v6 {
		pseudo = plain(seg[l.ip+8:l.ip+40], protoTCP+uint32(len(seg)-l.tcp))
	}
	if foldPlain(plain(seg[l.tcp:], pseudo)) != 0xffff {
		t.Fatalf("TCP checksum does not verify")
	}
}
