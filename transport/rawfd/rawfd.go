// Package rawfd reads and writes non-blocking descriptors with raw system
// calls, waiting in the Go runtime's poller only when the kernel says
// EAGAIN.
//
// Why: every read or write through os.File or net.Conn enters the
// scheduler's system-call bookkeeping (entersyscall), and the first such
// call after the process has been idle wakes the runtime's monitor thread
// (sysmon), which then naps and wakes a few more times. On a quiet link
// that is one futex wake and several context switches per frame, on
// another CPU: measured on a 2-core VM, avoiding it took 40 % off the
// overlay's added ping time (docs/architecture.md, "Latency when idle").
// A read or write on a non-blocking descriptor never blocks, so it may
// run as a raw call, which the scheduler does not watch; the waiting
// still happens in the poller, so deadlines and Close work as they do
// for the wrapped descriptor. One difference: on a closed *os.File the
// poller's own error comes back ("use of closed file"), which
// os.ErrClosed does not match; callers that care remember the Close.
package rawfd

import (
	"errors"
	"io"
	"sync"
	"syscall"
)

// FD does reads and writes on the descriptor behind a syscall.RawConn.
// One Read and one Write may run at once; calls in the same direction
// are serialised. It allocates nothing per call.
type FD struct {
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// New returns an FD over rc, whose descriptor must be non-blocking (as
// every descriptor the Go runtime polls is).
func New(rc syscall.RawConn) *FD {
	f := &FD{rc: rc}
	f.readFn = f.readOnce
	f.writeFn = f.writeSome
	return f
}

// Read reads once into b, as read(2) does, and returns io.EOF when the
// peer has closed (a zero-byte read into a non-empty b). Errors of the
// poller (a deadline, a closed descriptor) are returned as they are.
func (f *FD) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	f.rmu.Lock()
	defer f.rmu.Unlock()
	f.rbuf, f.rn, f.rerr = b, 0, nil
	err := f.rc.Read(f.readFn)
	f.rbuf = nil
	if err != nil {
		return 0, err
	}
	return f.rn, f.rerr
}

// Write writes all of b, waiting in the poller while the descriptor
// cannot take more, and returns how much was written.
func (f *FD) Write(b []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.wbuf, f.wn, f.werr = b, 0, nil
	err := f.rc.Write(f.writeFn)
	f.wbuf = nil
	if err == nil {
		err = f.werr
	}
	return f.wn, err
}

// readOnce is the RawConn.Read callback: false asks the poller to wait.
func (f *FD) readOnce(fd uintptr) bool {
	for {
		n, err := read(fd, f.rbuf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			f.rerr = err
		case n == 0:
			f.rerr = io.EOF
		default:
			f.rn = n
		}
		return true
	}
}

// writeSome is the RawConn.Write callback: it writes until done or the
// descriptor is full (false: the poller waits, then calls again).
func (f *FD) writeSome(fd uintptr) bool {
	for f.wn < len(f.wbuf) {
		n, err := write(fd, f.wbuf[f.wn:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			f.werr = err
			return true
		case n == 0:
			f.werr = io.ErrShortWrite
			return true
		}
		f.wn += n
	}
	return true
}

// ErrNotRaw is returned by Of on a system without raw read(2) and
// write(2) (not Unix).
var ErrNotRaw = errors.New("rawfd: no raw reads and writes on this system")

// Of returns an FD over c's descriptor.
func Of(c syscall.Conn) (*FD, error) {
	if !supported {
		return nil, ErrNotRaw
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return New(rc), nil
}
