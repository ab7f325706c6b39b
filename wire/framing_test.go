package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderVectors(t *testing.T) {
	// Two framed messages written by hand: a 0x00 (length 0x0012 = 18)
	// and a 0x81 (length 0x0011 = 17).
	stream := unhex(t, "0012 00 01 0000018bcfe56800 025056000001 a310"+
		"0011 81 0000000000000001 025056000001 0806")
	r := NewReader(bytes.NewReader(stream))
	m, err := r.Next()
	if err != nil || len(m) != 18 || m[0] != 0x00 {
		t.Fatalf("first message %x, %v", m, err)
	}
	m, err = r.Next()
	if err != nil || len(m) != 17 || m[0] != 0x81 {
		t.Fatalf("second message %x, %v", m, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last message: %v, want io.EOF", err)
	}
}

func TestReaderRejects(t *testing.T) {
	cases := []struct {
		name, hex string
		err       error
	}{
		{"zero length", "0000 00", ErrZeroLength},
		{"half a length", "00", io.ErrUnexpectedEOF},
		{"body cut short", "0012 00 01 0000", io.ErrUnexpectedEOF},
		{"length without body", "ffff", io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(unhex(t, tc.hex)))
			if _, err := r.Next(); !errors.Is(err, tc.err) {
				t.Fatalf("Next() error %v, want %v", err, tc.err)
			}
		})
	}
}

// TestReaderAllocatesDeclaredLengthOnly: a prefix that declares 65535
// bytes on a stream holding 3 may allocate at most the declared length,
// and a stream of small messages never grows the buffer past them.
func TestReaderAllocatesDeclaredLengthOnly(t *testing.T) {
	r := NewReader(strings.NewReader("\x00\x05\x81abcd\x00\x03\x80xy"))
	for range 2 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if cap(r.buf) > 5 {
		t.Fatalf("buffer grew to %d bytes for messages of at most 5", cap(r.buf))
	}
}

func TestReaderUnknownTypeIsNotAFramingError(t *testing.T) {
	// docs/protocol.md#extending-the-protocol: a later extension may add
	// types; the reader frames them like any other.
	r := NewReader(bytes.NewReader(unhex(t, "0003 7e 0102 0002 80 00")))
	m, err := r.Next()
	if err != nil || m[0] != 0x7e {
		t.Fatalf("unknown type: %x, %v", m, err)
	}
	if _, err := TypeOf(m); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("TypeOf: %v", err)
	}
	if m, err := r.Next(); err != nil || m[0] != 0x80 {
		t.Fatalf("message after unknown type: %x, %v", m, err)
	}
}

func TestAppendFrameLimits(t *testing.T) {
	if _, err := AppendFrame(nil, make([]byte, MaxMessage+1)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("65536-byte message: %v, want ErrTooLong", err)
	}
	if _, err := AppendFrame(nil, nil); !errors.Is(err, ErrZeroLength) {
		t.Fatalf("empty message: %v, want ErrZeroLength", err)
	}
	b, err := AppendFrame(nil, make([]byte, MaxMessage))
	if err != nil || b[0] != 0xff || b[1] != 0xff || len(b) != MaxMessage+2 {
		t.Fatalf("65535-byte message framed as %x..., %v", b[:2], err)
	}
}

type countingWriter struct{ writes int }

func (c *countingWriter) Write(p []byte) (int, error) { c.writes++; return len(p), nil }

func TestWriterOneWritePerMessage(t *testing.T) {
	var c countingWriter
	w := NewWriter(&c)
	for range 3 {
		if err := w.WriteMessage([]byte{0x80, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	if c.writes != 3 {
		t.Fatalf("%d writes for 3 messages, want 3", c.writes)
	}
}
