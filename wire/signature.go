package wire

import (
	"encoding/binary"
	"fmt"
)

// Signatures (0x8D, an extension) carries the signatures of announcements
// the sender is about to send on the same link
// (docs/protocol.md#signed-announcements): count(2), then count entries
// of mac(6), id(8), port(2), len(2) and len bytes of signature. Each
// signature is the announced member's own, over its MAC, id and port,
// made with its certificate's key; relays carry it unchanged.
type Signatures struct {
	Entries []Signature
}

// Signature is one entry of a Signatures: member MAC's signature of its
// round ID with Port.
type Signature struct {
	MAC  MAC
	ID   uint64
	Port uint16
	Sig  []byte // aliases the decoded message
}

// signaturesFixed is the size of a 0x8D with no entries, type included;
// signatureFixed the size of an entry without its signature.
const (
	signaturesFixed = 1 + 2
	signatureFixed  = 6 + 8 + 2 + 2
)

// MaxSignatureLen is the longest signature an entry may carry (an RSA
// 4096 key's is 512 bytes).
const MaxSignatureLen = 1024

var signaturesFields = []field{{"type", 1}, {"count", 2}}

// Type returns TypeSignatures.
func (*Signatures) Type() Type { return TypeSignatures }

// SignatureLen is the size of e in a 0x8D.
func SignatureLen(e *Signature) int { return signatureFixed + len(e.Sig) }

// Append appends the message to dst. Callers keep the message within
// MaxMessage and each signature within MaxSignatureLen.
func (m *Signatures) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeSignatures))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Entries)))
	for i := range m.Entries {
		e := &m.Entries[i]
		dst = append(dst, e.MAC[:]...)
		dst = binary.BigEndian.AppendUint64(dst, e.ID)
		dst = binary.BigEndian.AppendUint16(dst, e.Port)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.Sig)))
		dst = append(dst, e.Sig...)
	}
	return dst
}

// DecodeSignatures decodes a 0x8D message (type byte included). Entries
// are allocated only as far as the message has room for, whatever count
// says; signatures alias msg. An empty signature, or one longer than
// MaxSignatureLen, is rejected.
func DecodeSignatures(msg []byte) (Signatures, error) {
	var m Signatures
	if err := checkType(msg, TypeSignatures); err != nil {
		return m, err
	}
	if len(msg) < signaturesFixed {
		return m, shortErr(TypeSignatures, fieldAt(signaturesFields, len(msg)), len(msg), signaturesFixed)
	}
	count := int(binary.BigEndian.Uint16(msg[1:3]))
	rest := msg[signaturesFixed:]
	if count > len(rest)/(signatureFixed+1) {
		return m, decodeErr(TypeSignatures, "count", ErrCount, "count %d does not fit %d bytes", count, len(rest))
	}
	if count > 0 {
		m.Entries = make([]Signature, 0, count)
	}
	for i := range count {
		name := fmt.Sprintf("entries[%d]", i)
		if len(rest) < signatureFixed {
			return Signatures{}, decodeErr(TypeSignatures, name, ErrShort, "%d bytes, need %d", len(rest), signatureFixed)
		}
		n := int(binary.BigEndian.Uint16(rest[16:18]))
		if n == 0 || n > MaxSignatureLen {
			return Signatures{}, decodeErr(TypeSignatures, name+".len", ErrCount, "signature of %d bytes (want 1 to %d)", n, MaxSignatureLen)
		}
		if len(rest) < signatureFixed+n {
			return Signatures{}, decodeErr(TypeSignatures, name+".sig", ErrShort, "%d bytes, need %d", len(rest)-signatureFixed, n)
		}
		m.Entries = append(m.Entries, Signature{MAC: MAC(rest[:6]), ID: binary.BigEndian.Uint64(rest[6:14]),
			Port: binary.BigEndian.Uint16(rest[14:16]), Sig: rest[signatureFixed : signatureFixed+n]})
		rest = rest[signatureFixed+n:]
	}
	if len(rest) > 0 {
		return Signatures{}, decodeErr(TypeSignatures, "entries", ErrTrailing, "%d bytes after %d entries", len(rest), count)
	}
	return m, nil
}

// Certificate (0x8E, an extension) carries a member's certificate, in
// DER, to the end of the message, so that the receiver can check that
// member's signatures (docs/protocol.md#signed-announcements). A node
// sends its own on every new extended link, and a relay sends a member's
// on a link before the first signature of that member it sends there.
type Certificate struct {
	DER []byte // aliases the decoded message
}

// Type returns TypeCertificate.
func (*Certificate) Type() Type { return TypeCertificate }

// Append appends the message to dst. Callers keep DER within
// MaxMessage-1 bytes.
func (m *Certificate) Append(dst []byte) []byte {
	return append(append(dst, byte(TypeCertificate)), m.DER...)
}

// DecodeCertificate decodes a 0x8E message (type byte included): the
// certificate must not be empty; it is not parsed here.
func DecodeCertificate(msg []byte) (Certificate, error) {
	if err := checkType(msg, TypeCertificate); err != nil {
		return Certificate{}, err
	}
	if len(msg) < 2 {
		return Certificate{}, shortErr(TypeCertificate, "certificate", len(msg), 2)
	}
	return Certificate{DER: msg[1:]}, nil
}
