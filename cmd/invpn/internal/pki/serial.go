package pki

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// maxSerialOctets is the longest serial number RFC 5280 (section 4.1.2.2)
// lets a certificate carry.
const maxSerialOctets = 20

// SerialString formats a certificate serial number as the CA's records
// name it: lowercase hex without leading zeros or colons (1a2b3c), the
// name of its file in IssuedDir and the form the CLI prints.
func SerialString(serial *big.Int) string {
	return serial.Text(16)
}

// ParseSerial parses a serial number written in hex, as SerialString
// writes it or as openssl prints it: any case, with or without colons
// between the octets (3A:4F:01) and with an optional 0x prefix. It rejects
// an empty, non-hex, negative or zero serial and one longer than 20 octets,
// saying which.
func ParseSerial(s string) (*big.Int, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	switch {
	case strings.TrimSpace(s) == "":
		return nil, errors.New("pki: parse serial: empty")
	case strings.HasPrefix(s, "-"):
		return nil, fmt.Errorf("pki: parse serial %q: negative; serial numbers are positive", s)
	case digits == "":
		return nil, fmt.Errorf("pki: parse serial %q: no digits after 0x", s)
	case strings.HasPrefix(digits, ":") || strings.HasSuffix(digits, ":") || strings.Contains(digits, "::"):
		return nil, fmt.Errorf("pki: parse serial %q: a colon must stand between two hex digits", s)
	}
	digits = strings.ReplaceAll(digits, ":", "")
	if i := strings.IndexFunc(digits, notHexDigit); i >= 0 {
		return nil, fmt.Errorf("pki: parse serial %q: %q is not a hex digit (want hex like 1a2b3c or 1A:2B:3C)", s, digits[i:i+1])
	}
	n, _ := new(big.Int).SetString(digits, 16) // every digit is hex
	if n.Sign() == 0 {
		return nil, fmt.Errorf("pki: parse serial %q: zero; serial numbers are positive", s)
	}
	if octets := (n.BitLen() + 7) / 8; octets > maxSerialOctets {
		return nil, fmt.Errorf("pki: parse serial %q: %d octets, longer than the %d a certificate serial may have", s, octets, maxSerialOctets)
	}
	return n, nil
}

// notHexDigit reports whether r is not a hex digit.
func notHexDigit(r rune) bool {
	return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F')
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b) // never fails
	b[0] &= 0x7f
	b[0] |= 0x01 // non-zero and never shortened when encoded
	return new(big.Int).SetBytes(b)
}
