package wire

import "fmt"

// field names one fixed-size field of a layout, for error messages.
type field struct {
	name string
	size int
}

// fieldAt returns the name of the field that byte offset n falls into, the
// first field a message of n bytes lacks.
func fieldAt(fields []field, n int) string {
	off := 0
	for _, f := range fields {
		off += f.size
		if n < off {
			return f.name
		}
	}
	return fields[len(fields)-1].name
}

func shortErr(t Type, field string, got, want int) error {
	return decodeErr(t, field, ErrShort, "%d bytes, need at least %d", got, want)
}

// checkType verifies that msg is non-empty and of type t.
func checkType(msg []byte, t Type) error {
	if len(msg) == 0 {
		return &DecodeError{Type: t, Field: "type", Err: ErrShort, Detail: "empty message"}
	}
	if Type(msg[0]) != t {
		return &DecodeError{Type: t, Field: "type", Err: ErrWrongType, Detail: fmt.Sprintf("got 0x%02x", msg[0])}
	}
	return nil
}

// checkVersion verifies the version byte right after the type byte.
func checkVersion(t Type, msg []byte) error {
	if len(msg) < 2 {
		return shortErr(t, "version", len(msg), 2)
	}
	if msg[1] != Version {
		return decodeErr(t, "version", ErrVersion, "got %d, want %d", msg[1], Version)
	}
	return nil
}
