//go:build !unix

package rawfd

import "errors"

// supported: there is no read(2) here; Of refuses and callers keep their
// usual I/O.
const supported = false

func read(fd uintptr, b []byte) (int, error)  { return 0, errors.ErrUnsupported }
func write(fd uintptr, b []byte) (int, error) { return 0, errors.ErrUnsupported }
