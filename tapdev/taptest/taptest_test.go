package taptest

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/invpn/invpn/tapdev"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// frame returns a minimal Ethernet frame whose payload starts with tag.
func frame(tag byte) []byte {
	f := make([]byte, tapdev.EthernetHeaderLen+2)
	f[0] = 0xff
	f[6] = 0x02
	f[12], f[13] = 0x08, 0x00
	f[14] = tag
	return f
}

func TestInjectThenRead(t *testing.T) {
	d := New(Config{})
	if d.Name() != "tap0" || d.MTU() != 1500 {
		t.Errorf("defaults: Name %q MTU %d, want tap0 1500", d.Name(), d.MTU())
	}
	f := frame(1)
	if err := d.Inject(f); err != nil {
		t.Fatal(err)
	}
	f[14] = 99 // the device must have copied the frame
	buf := make([]byte, d.MTU()+tapdev.EthernetHeaderLen)
	n, err := d.ReadFrame(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], frame(1)) {
		t.Errorf("ReadFrame = %x, want %x", buf[:n], frame(1))
	}
}

func TestWriteAppearsOnWritten(t *testing.T) {
	d := New(Config{Name: "ivt0", MTU: 1400})
	if d.Name() != "ivt0" || d.MTU() != 1400 {
		t.Errorf("Name %q MTU %d, want ivt0 1400", d.Name(), d.MTU())
	}
	f := frame(7)
	if err := d.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
	f[14] = 99 // not retained
	if got := <-d.Written(); !bytes.Equal(got, frame(7)) {
		t.Errorf("Written = %x, want %x", got, frame(7))
	}
}

func TestShortFramesRejected(t *testing.T) {
	d := New(Config{})
	if err := d.WriteFrame(make([]byte, 13)); err == nil {
		t.Error("WriteFrame of 13 bytes succeeded")
	}
	if err := d.Inject(nil); err == nil {
		t.Error("Inject of 0 bytes succeeded")
	}
}

func TestShortBuffer(t *testing.T) {
	d := New(Config{})
	if err := d.Inject(frame(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFrame(make([]byte, 10)); !errors.Is(err, io.ErrShortBuffer) {
		t.Errorf("ReadFrame into 10 bytes = %v, want io.ErrShortBuffer", err)
	}
}

func TestCloseUnblocks(t *testing.T) {
	d := New(Config{Queue: 1})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := d.ReadFrame(make([]byte, 64))
		errs <- err
	})
	if err := d.WriteFrame(frame(1)); err != nil { // fills the write queue
		t.Fatal(err)
	}
	wg.Go(func() { errs <- d.WriteFrame(frame(2)) })
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, tapdev.ErrClosed) {
			t.Errorf("blocked call after Close = %v, want ErrClosed", err)
		}
	}
	if err := d.Inject(frame(3)); !errors.Is(err, tapdev.ErrClosed) {
		t.Errorf("Inject after Close = %v, want ErrClosed", err)
	}
	select {
	case <-d.Closed():
	default:
		t.Error("Closed() not closed after Close")
	}
	if got := <-d.Written(); !bytes.Equal(got, frame(1)) {
		t.Errorf("frame written before Close = %x, want %x", got, frame(1))
	}
}

func TestConcurrentUse(t *testing.T) {
	const n = 200
	d := New(Config{Queue: 4})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := d.Inject(frame(byte(i))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() { // echo every frame read back out, like a bridge would
		buf := make([]byte, 64)
		for range n {
			k, err := d.ReadFrame(buf)
			if err != nil {
				t.Error(err)
				return
			}
			if err := d.WriteFrame(buf[:k]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range n {
		if got := <-d.Written(); got[14] != byte(i) {
			t.Fatalf("frame %d carries tag %d: order lost", i, got[14])
		}
	}
	wg.Wait()
	d.Close()
}
