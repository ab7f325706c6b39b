package transporttest

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// TestLinkPair checks that links made by newPair keep the [transport.Link]
// contract: framing limits, order, batching, Close and end of stream. Every
// implementation's tests run it, so the fake and the real transports are
// held to the same behaviour. newPair returns a fresh connected pair:
// dialed is the end that initiated the link, accepted the other. Each
// subtest closes the pair it used.
//
// A datagram transport (quictransport) passes Semantics{Datagrams: true}:
// then frame messages (0x80, 0x81, 0x82, 0x84) may overtake other
// messages and may be lost, while every other message must still arrive
// once, in order.
func TestLinkPair(t *testing.T, newPair func(t *testing.T) (dialed, accepted transport.Link), sem ...Semantics) {
	t.Helper()
	var datagrams bool
	for _, s := range sem {
		datagrams = datagrams || s.Datagrams
	}
	t.Run("Roles", func(t *testing.T) {
		a, b := newPair(t)
		defer closeBoth(a, b)
		if !a.Dialed() || b.Dialed() {
			t.Errorf("Dialed() = %v, %v; want true, false", a.Dialed(), b.Dialed())
		}
		if a.Transport() == "" || a.Transport() != b.Transport() {
			t.Errorf("Transport() = %q and %q, want one non-empty name at both ends", a.Transport(), b.Transport())
		}
		if a.Extended() != b.Extended() {
			t.Errorf("Extended() differs between ends: %v, %v", a.Extended(), b.Extended())
		}
		if a.Peer() == b.Peer() {
			t.Errorf("both ends name the same peer %s", a.Peer())
		}
	})
	t.Run("RoundTrip", func(t *testing.T) {
		a, b := newPair(t)
		defer closeBoth(a, b)
		big := bytes.Repeat([]byte{0x80, 1, 2, 3}, wire.MaxMessage/4+1)[:wire.MaxMessage]
		msgs := [][]byte{{0x00}, {0x81, 1, 2, 3}, big}
		for _, m := range msgs {
			mustWrite(t, a, m)
			expectMessage(t, b, m)
			mustWrite(t, b, m)
			expectMessage(t, a, m)
		}
	})
	t.Run("ReadInto", func(t *testing.T) {
		a, b := newPair(t)
		defer closeBoth(a, b)
		ir, ok := b.(transport.IntoReader)
		if !ok {
			t.Skipf("%s links read only into their own buffers", b.Transport())
		}
		big := bytes.Repeat([]byte{0x01, 4, 5, 6}, wire.MaxMessage/4+1)[:wire.MaxMessage]
		msgs := [][]byte{{0x01, 1}, big, {0x02, 2, 2}}
		for _, m := range msgs {
			mustWrite(t, a, m)
		}
		buf := make([]byte, wire.MaxMessage)
		for i, m := range msgs {
			if i == 2 { // the two ways mix on one link
				expectMessage(t, b, m)
				continue
			}
			n, err := ir.ReadMessageInto(buf)
			if err != nil || !bytes.Equal(buf[:n], m) {
				t.Fatalf("ReadMessageInto = % x (len %d), %v; want % x (len %d)", head(buf[:n]), n, err, head(m), len(m))
			}
		}
		if _, err := ir.ReadMessageInto(buf[:wire.MaxMessage-1]); err == nil {
			t.Error("ReadMessageInto a buffer shorter than wire.MaxMessage succeeded")
		}
	})
	t.Run("Batch", func(t *testing.T) {
		a, b := newPair(t)
		defer closeBoth(a, b)
		msgs := [][]byte{{0x80, 1}, {0x81, 2, 2}, {0x01, 3, 3, 3}}
		if err := a.WriteMessages(msgs); err != nil {
			t.Fatalf("WriteMessages: %v", err)
		}
		if datagrams {
			expectSet(t, b, msgs)
		} else {
			for _, m := range msgs {
				expectMessage(t, b, m)
			}
		}
		if err := a.WriteMessages(nil); err != nil {
			t.Errorf("WriteMessages(nil) = %v, want nil", err)
		}
	})
	t.Run("RejectsUnframable", func(t *testing.T) {
		a, b := newPair(t)
		defer closeBoth(a, b)
		if err := a.WriteMessage(nil); !errors.Is(err, wire.ErrZeroLength) {
			t.Errorf("WriteMessage(empty) = %v, want ErrZeroLength", err)
		}
		if err := a.WriteMessage(make([]byte, wire.MaxMessage+1)); !errors.Is(err, wire.ErrTooLong) {
			t.Errorf("WriteMessage(65536 bytes) = %v, want ErrTooLong", err)
		}
		if err := a.WriteMessages([][]byte{{0x80, 9}, {}}); !errors.Is(err, wire.ErrZeroLength) {
			t.Errorf("WriteMessages with an empty message = %v, want ErrZeroLength", err)
		}
		// Nothing of the rejected batch went out: the next message read is
		// the next one written.
		good := []byte{0x81, 7}
		mustWrite(t, a, good)
		expectMessage(t, b, good)
	})
	t.Run("NotRetained", func(t *testing.T) {
		a, b := newPair(t)
		defer closeBoth(a, b)
		m := []byte{0x80, 1, 2}
		mustWrite(t, a, m)
		m[1] = 9
		expectMessage(t, b, []byte{0x80, 1, 2})
	})
	t.Run("CloseUnblocksReader", func(t *testing.T) {
		a, b := newPair(t)
		defer a.Close()
		errc := make(chan error, 1)
		go func() {
			_, err := b.ReadMessage()
			errc <- err
		}()
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-errc; err != io.EOF {
			t.Errorf("ReadMessage after Close = %v, want io.EOF", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := b.WriteMessage([]byte{0x80}); err == nil {
			t.Error("WriteMessage after Close succeeded")
		}
	})
	t.Run("PeerCloseDrainsThenEOF", func(t *testing.T) {
		a, b := newPair(t)
		defer b.Close()
		m := []byte{0x01, 5, 5} // not a frame: it is reliable on every transport
		mustWrite(t, a, m)
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		expectMessage(t, b, m)
		if _, err := b.ReadMessage(); err != io.EOF {
			t.Errorf("ReadMessage after peer closed = %v, want io.EOF", err)
		}
	})
	t.Run("ConcurrentReadWrite", func(t *testing.T) {
		a, b := newPair(t)
		defer closeBoth(a, b)
		const n = 200
		errc := make(chan error, 2)
		pump := func(l transport.Link, tag byte) {
			for i := range n {
				if err := l.WriteMessage([]byte{tag, byte(i)}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}
		go pump(a, 0xa0)
		go pump(b, 0xb0)
		for i := range n {
			expectMessage(t, b, []byte{0xa0, byte(i)})
			expectMessage(t, a, []byte{0xb0, byte(i)})
		}
		for range 2 {
			if err := <-errc; err != nil {
				t.Errorf("writer: %v", err)
			}
		}
	})
	if datagrams {
		t.Run("FramesBesideControl", func(t *testing.T) { framesBesideControl(t, newPair) })
	}
}

// Semantics says what a transport promises beyond the Link contract's
// minimum; see TestLinkPair.
type Semantics struct {
	// Datagrams: frame messages may be reordered against other messages
	// and lost.
	Datagrams bool
}

// framesBesideControl interleaves frames and announcements: every
// announcement must arrive once and in order, every frame at most once and
// intact, and (on a loopback test path) most frames must arrive.
func framesBesideControl(t *testing.T, newPair func(t *testing.T) (transport.Link, transport.Link)) {
	a, b := newPair(t)
	defer closeBoth(a, b)
	const n = 200
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			frame := append([]byte{0x80, byte(i)}, bytes.Repeat([]byte{byte(i)}, 1500)...)
			if err := a.WriteMessages([][]byte{frame, {0x01, byte(i)}}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	seen := map[byte]bool{}
	for next := 0; next < n; {
		got, err := b.ReadMessage()
		if err != nil {
			t.Fatalf("ReadMessage after %d announcements: %v", next, err)
		}
		switch got[0] {
		case 0x01:
			if len(got) != 2 || int(got[1]) != next {
				t.Fatalf("announcement % x, want 01 %02x: control lost or reordered", got, next)
			}
			next++
		case 0x80:
			want := append([]byte{0x80, got[1]}, bytes.Repeat([]byte{got[1]}, 1500)...)
			if !bytes.Equal(got, want) {
				t.Fatalf("frame %d corrupted: % x…", got[1], head(got))
			}
			if seen[got[1]] {
				t.Fatalf("frame %d arrived twice", got[1])
			}
			seen[got[1]] = true
		default:
			t.Fatalf("unexpected message % x", head(got))
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("writer: %v", err)
	}
	// Frames sent before the last announcement may still be on their way.
	for len(seen) < n/2 {
		got, err := b.ReadMessage()
		if err != nil || got[0] != 0x80 || seen[got[1]] {
			t.Fatalf("after the announcements: % x, %v; %d of %d frames arrived", head(got), err, len(seen), n)
		}
		seen[got[1]] = true
	}
}

// expectSet reads len(want) messages and checks that they are want in any
// order.
func expectSet(t *testing.T, l transport.Link, want [][]byte) {
	t.Helper()
	left := append([][]byte(nil), want...)
	for range want {
		got, err := l.ReadMessage()
		if err != nil {
			t.Fatalf("ReadMessage from %s: %v", l.Peer(), err)
		}
		i := slices.IndexFunc(left, func(m []byte) bool { return bytes.Equal(m, got) })
		if i < 0 {
			t.Fatalf("ReadMessage from %s = % x, want one of the batch", l.Peer(), head(got))
		}
		left = slices.Delete(left, i, i+1)
	}
}

func closeBoth(a, b transport.Link) {
	a.Close()
	b.Close()
}

func mustWrite(t *testing.T, l transport.Link, m []byte) {
	t.Helper()
	if err := l.WriteMessage(m); err != nil {
		t.Fatalf("WriteMessage to %s: %v", l.Peer(), err)
	}
}

func expectMessage(t *testing.T, l transport.Link, want []byte) {
	t.Helper()
	got, err := l.ReadMessage()
	if err != nil {
		t.Fatalf("ReadMessage from %s: %v", l.Peer(), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("ReadMessage from %s = % x (len %d), want % x (len %d)",
			l.Peer(), head(got), len(got), head(want), len(want))
	}
}

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}
