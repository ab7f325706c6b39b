//go:build linux

package linkemu

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// TAP is the file descriptor of a TAP device (IFF_TAP|IFF_NO_PI, not
// persistent), a Port. The descriptor stays attached to the device when
// the device is moved into another network namespace (ip link set NAME
// netns NS), so the emulator reads and writes a namespace's interface from
// the test process's own namespace. Closing it removes the device; so
// does deleting the namespace it is in (ReadFrame then returns ErrClosed).
type TAP struct {
	f    *os.File
	name string
}

// OpenTAP creates a TAP device named name (at most 15 bytes) in the
// calling thread's network namespace, down and without addresses, and
// returns its descriptor. It fails with EBUSY if the name is taken.
func OpenTAP(name string) (*TAP, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("linkemu: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("linkemu: TAP name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("linkemu: create TAP %s: %w", name, err)
	}
	// A non-blocking descriptor goes to the runtime poller: Close ends a
	// blocked Read.
	return &TAP{f: os.NewFile(uintptr(fd), "tap:"+ifr.Name()), name: ifr.Name()}, nil
}

// Name returns the name the device was created with (it may be renamed
// after it moved).
func (t *TAP) Name() string { return t.name }

// ReadFrame implements Port.
func (t *TAP) ReadFrame(buf []byte) (int, error) {
	n, err := t.f.Read(buf)
	return n, t.wrap(err)
}

// WriteFrame implements Port. Writing to a device that is down fails
// (EIO): the frame is lost, as on a cable whose end is unplugged.
func (t *TAP) WriteFrame(frame []byte) error {
	_, err := t.f.Write(frame)
	return t.wrap(err)
}

// Close implements Port.
func (t *TAP) Close() error {
	if err := t.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("linkemu: close TAP %s: %w", t.name, err)
	}
	return nil
}

// wrap marks the errors of a closed descriptor or a deleted device
// (EBADFD) as ErrClosed.
func (t *TAP) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADFD):
		return fmt.Errorf("linkemu: TAP %s: %w (%v)", t.name, ErrClosed, err)
	}
	return fmt.Errorf("linkemu: TAP %s: %w", t.name, err)
}
