package wire

import (
	"bytes"
	"encoding/hex"
	"fmt"
)

// MAC is an Ethernet address: a node's identity, the Common Name of its
// certificate, and the hardware address of its TAP device.
type MAC [6]byte

// Broadcast is the Ethernet broadcast address ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// String formats m as six lower-case hex pairs separated by colons,
// the form used in certificate Common Names (02:50:56:00:00:01).
func (m MAC) String() string {
	const digits = "0123456789abcdef"
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = digits[v>>4]
		b[i*3+1] = digits[v&0x0f]
	}
	return string(b[:])
}

// IsGroup reports whether m is a group (multicast or broadcast) address:
// the least significant bit of its first octet is set.
func (m MAC) IsGroup() bool { return m[0]&0x01 != 0 }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// ParseMAC parses a MAC written as six hex pairs separated by colons or
// dashes (02:50:56:00:00:01, 02-50-56-00-00-01), in either case.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("wire: parse MAC %q: want 17 characters like 02:50:56:00:00:01, got %d", s, len(s))
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return m, fmt.Errorf("wire: parse MAC %q: separator must be ':' or '-'", s)
	}
	for i := range 6 {
		if i > 0 && s[i*3-1] != sep {
			return m, fmt.Errorf("wire: parse MAC %q: mixed or missing separator at position %d", s, i*3-1)
		}
		if _, err := hex.Decode(m[i:i+1], []byte(s[i*3:i*3+2])); err != nil {
			return m, fmt.Errorf("wire: parse MAC %q: octet %d: %w", s, i+1, err)
		}
	}
	return m, nil
}

// MarshalText formats m as String does, so MACs read well in JSON.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses a MAC as ParseMAC does.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Compare orders MACs byte by byte: -1 if m sorts before o, 0 if they are
// equal, +1 if after. Flooding order, tie-breaks and every sorted listing
// use it, so map order never reaches output.
func (m MAC) Compare(o MAC) int { return bytes.Compare(m[:], o[:]) }
