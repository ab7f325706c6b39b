package rawfd

import (
	"syscall"
	"unsafe"
)

// supported: Of works on this system.
const supported = true

// read is read(2) as a raw call: the descriptor is non-blocking, so it
// returns at once and the scheduler need not know about it.
func read(fd uintptr, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// write is write(2) as a raw call, as read.
func write(fd uintptr, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
