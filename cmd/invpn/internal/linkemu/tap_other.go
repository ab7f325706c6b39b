//go:build !linux

package linkemu

import "errors"

// TAP is a TAP device; only Linux has them here.
type TAP struct{ name string }

// OpenTAP fails: TAP devices need Linux.
func OpenTAP(name string) (*TAP, error) { return nil, errors.New("linkemu: TAP devices need Linux") }

// Name returns the device's name.
func (t *TAP) Name() string { return t.name }

// ReadFrame implements Port.
func (t *TAP) ReadFrame([]byte) (int, error) { return 0, ErrClosed }

// WriteFrame implements Port.
func (t *TAP) WriteFrame([]byte) error { return ErrClosed }

// Close implements Port.
func (t *TAP) Close() error { return nil }
