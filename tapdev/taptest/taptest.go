// Package taptest provides an in-memory tapdev.Device for tests: frames
// injected with Inject are what the device reads, frames the code under test
// writes appear on Written.
//
// Like a real TAP device it rejects frames shorter than an Ethernet header,
// and it never hands out or keeps a caller's buffer: Inject and WriteFrame
// copy the frame.
package taptest

import (
	"fmt"
	"io"
	"sync"

	"github.com/invpn/invpn/tapdev"
)

// DefaultQueue is the capacity of a Device's read and write queues when
// Config.Queue is zero.
const DefaultQueue = 1024

// Config describes a fake Device. The zero Config is usable.
type Config struct {
	// Name returned by Name; empty means "tap0".
	Name string
	// MTU returned by MTU; zero means tapdev.DefaultMTU.
	MTU int
	// Queue is how many frames Inject and WriteFrame buffer before they
	// block; zero means DefaultQueue.
	Queue int
}

// Device is an in-memory tapdev.Device. All methods are safe for concurrent use.
type Device struct {
	name   string
	mtu    int
	in     chan []byte   // frames injected, waiting for ReadFrame
	out    chan []byte   // frames written, waiting for the test
	closed chan struct{} // closed by Close

	closeOnce sync.Once
}

var _ tapdev.Device = (*Device)(nil)

// New returns an open Device described by cfg.
func New(cfg Config) *Device {
	if cfg.Name == "" {
		cfg.Name = "tap0"
	}
	if cfg.MTU == 0 {
		cfg.MTU = tapdev.DefaultMTU
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	return &Device{
		name:   cfg.Name,
		mtu:    cfg.MTU,
		in:     make(chan []byte, cfg.Queue),
		out:    make(chan []byte, cfg.Queue),
		closed: make(chan struct{}),
	}
}

// Inject queues a copy of frame for ReadFrame, as if the host had sent it.
// It blocks while the read queue is full, and fails once the device is closed.
func (d *Device) Inject(frame []byte) error {
	if err := checkFrame(frame); err != nil {
		return fmt.Errorf("taptest: inject into %s: %w", d.name, err)
	}
	select {
	case <-d.closed:
		return fmt.Errorf("taptest: inject into %s: %w", d.name, tapdev.ErrClosed)
	default:
	}
	select {
	case d.in <- clone(frame):
		return nil
	case <-d.closed:
		return fmt.Errorf("taptest: inject into %s: %w", d.name, tapdev.ErrClosed)
	}
}

// Written returns the channel on which every frame passed to WriteFrame
// arrives, in order, as a copy the receiver owns. The channel is never
// closed; select on Closed as well to stop waiting when the device closes.
func (d *Device) Written() <-chan []byte { return d.out }

// Closed returns a channel that is closed when Close is called.
func (d *Device) Closed() <-chan struct{} { return d.closed }

// ReadFrame implements tapdev.Device: it blocks until a frame is injected or
// the device is closed. A frame longer than buf is dropped and reported with
// an error wrapping io.ErrShortBuffer, so that a too-small buffer is found in
// tests rather than truncating frames silently.
func (d *Device) ReadFrame(buf []byte) (int, error) {
	select {
	case <-d.closed:
		return 0, fmt.Errorf("taptest: read from %s: %w", d.name, tapdev.ErrClosed)
	default:
	}
	select {
	case f := <-d.in:
		if len(f) > len(buf) {
			return 0, fmt.Errorf("taptest: read from %s: frame of %d bytes into a buffer of %d: %w", d.name, len(f), len(buf), io.ErrShortBuffer)
		}
		return copy(buf, f), nil
	case <-d.closed:
		return 0, fmt.Errorf("taptest: read from %s: %w", d.name, tapdev.ErrClosed)
	}
}

// WriteFrame implements tapdev.Device: it queues a copy of frame on Written,
// blocking while that queue is full, and fails once the device is closed.
func (d *Device) WriteFrame(frame []byte) error {
	if err := checkFrame(frame); err != nil {
		return fmt.Errorf("taptest: write to %s: %w", d.name, err)
	}
	select {
	case <-d.closed:
		return fmt.Errorf("taptest: write to %s: %w", d.name, tapdev.ErrClosed)
	default:
	}
	select {
	case d.out <- clone(frame):
		return nil
	case <-d.closed:
		return fmt.Errorf("taptest: write to %s: %w", d.name, tapdev.ErrClosed)
	}
}

// Name implements tapdev.Device.
func (d *Device) Name() string { return d.name }

// MTU implements tapdev.Device.
func (d *Device) MTU() int { return d.mtu }

// Close implements tapdev.Device: it unblocks pending ReadFrame, WriteFrame
// and Inject calls, which then fail with tapdev.ErrClosed. Frames already
// on Written stay there.
func (d *Device) Close() error {
	d.closeOnce.Do(func() { close(d.closed) })
	return nil
}

// checkFrame rejects what a Linux TAP device rejects: a frame shorter than
// an Ethernet header.
func checkFrame(frame []byte) error {
	if len(frame) < tapdev.EthernetHeaderLen {
		return fmt.Errorf("frame of %d bytes is shorter than an Ethernet header (%d)", len(frame), tapdev.EthernetHeaderLen)
	}
	return nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
