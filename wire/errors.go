package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors wrapped by every [DecodeError] and framing error. Test for
// them with errors.Is.
var (
	// ErrShort means a field ends past the end of the message.
	ErrShort = errors.New("message too short")
	// ErrTrailing means bytes follow the last field of a fixed-layout message.
	ErrTrailing = errors.New("trailing bytes after last field")
	// ErrVersion means a version byte other than the one this package speaks.
	ErrVersion = errors.New("unsupported version")
	// ErrAddrType means an addr_type other than 0, 1 or 2.
	ErrAddrType = errors.New("unknown address type")
	// ErrCount means a count or a list length that does not fit the message.
	ErrCount = errors.New("count does not match message length")
	// ErrUnknownType means a type byte this package does not know. Such a
	// message is well framed; a later extension may define it.
	ErrUnknownType = errors.New("unknown message type")
	// ErrWrongType means a decoder was handed a message of another type.
	ErrWrongType = errors.New("wrong message type for decoder")
	// ErrZeroLength means a frame whose length prefix is 0.
	ErrZeroLength = errors.New("zero length frame")
	// ErrTooLong means a message longer than the 2-byte length can carry.
	ErrTooLong = errors.New("message longer than 65535 bytes")
	// ErrHeader means an Ethernet frame shorter than its 14-byte header,
	// or a frame header that violates its packet type's rules.
	ErrHeader = errors.New("bad ethernet header")
	// ErrOffload means offload fields of a 0x90 that do not describe a
	// TCP super-frame of the frame carried.
	ErrOffload = errors.New("bad offload fields")
)

// DecodeError says which packet type and which field of a message was bad
// and why. It wraps one of the sentinel errors above.
type DecodeError struct {
	Type   Type   // the message's type byte
	Field  string // the field that failed, as named in the packet table
	Err    error  // a sentinel such as ErrShort
	Detail string // what was found, for people
}

func (e *DecodeError) Error() string {
	s := fmt.Sprintf("wire: decode %s: field %s: %v", e.Type, e.Field, e.Err)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Unwrap returns the sentinel error.
func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(t Type, field string, err error, format string, args ...any) error {
	return &DecodeError{Type: t, Field: field, Err: err, Detail: fmt.Sprintf(format, args...)}
}
