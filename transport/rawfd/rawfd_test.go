package rawfd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func mustFD(t *testing.T, c *net.TCPConn) *FD {
	t.Helper()
	f, err := Of(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A write larger than the socket buffers waits in the poller and
// completes as the other end reads: all bytes arrive, in order.
func TestWriteAllThroughAFullSocket(t *testing.T) {
	a, b := tcpPair(t)
	wa, rb := mustFD(t, a), mustFD(t, b)
	// More than the socket buffers take (a few MB at most on Linux), so
	// the write must find the socket full and wait.
	want := make([]byte, 32<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	done := make(chan error, 1)
	go func() {
		n, err := wa.Write(want)
		if err == nil && n != len(want) {
			err = errors.New("short write")
		}
		a.CloseWrite()
		done <- err
	}()
	got, err := io.ReadAll(readerFunc(rb.Read))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want the %d written, in order", len(got), len(want))
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// The peer's close is io.EOF; a read deadline and a local Close end a
// waiting read with the poller's errors, as for the wrapped connection.
func TestReadEndings(t *testing.T) {
	a, b := tcpPair(t)
	fb := mustFD(t, b)
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := fb.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	b.SetReadDeadline(time.Time{})
	a.Write([]byte("hi"))
	a.Close()
	buf := make([]byte, 10)
	n, err := fb.Read(buf)
	if err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q, %v; want \"hi\"", buf[:n], err)
	}
	if _, err := fb.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}

	_, d := tcpPair(t)
	fd := mustFD(t, d)
	errc := make(chan error, 1)
	go func() { _, err := fd.Read(buf); errc <- err }()
	time.AfterFunc(10*time.Millisecond, func() { d.Close() })
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read across Close: %v, want net.ErrClosed", err)
	}
	if n, err := fd.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v; want 0, nil", n, err)
	}
}

// Reads and writes of ready data allocate nothing.
func TestNoAllocations(t *testing.T) {
	a, b := tcpPair(t)
	fa, fb := mustFD(t, a), mustFD(t, b)
	msg := make([]byte, 1400)
	buf := make([]byte, 1400)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := fa.Write(msg); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(msg); {
			n, err := fb.Read(buf[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per write and read, want 0", allocs)
	}
}
