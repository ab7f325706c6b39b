//go:build unix && !linux

package rawfd

import "syscall"

// supported: Of works on this system.
const supported = true

// read is read(2) through the scheduler's bookkeeping: raw calls are only
// used where they have been measured (Linux).
func read(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }

// write is write(2), as read.
func write(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }
