//go:build !linux

package tapdev

import (
	"errors"
	"fmt"
	"runtime"
)

// TAP is a TAP device. Only Linux is supported; elsewhere Open fails.
type TAP struct{ Device }

// Open fails with an error wrapping errors.ErrUnsupported: TAP devices are
// implemented only on Linux.
func Open(cfg Config) (*TAP, error) {
	return nil, fmt.Errorf("tapdev: open %q: TAP devices on %s: %w", cfg.withDefaults().Name, runtime.GOOS, errors.ErrUnsupported)
}
