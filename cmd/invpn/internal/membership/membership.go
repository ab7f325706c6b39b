// Package membership is the daemon's node.Authenticator
// (docs/protocol.md#signed-announcements): it signs this member's
// announcements with its certificate's key, and checks other members'
// signatures against their certificates, which it learns from the mesh
// (0x8E) after checking them against the group's CAs and the revocation
// list.
//
// A signature covers a fixed label, the member's MAC, the round's id and
// the port it announces, hashed with SHA-256: ECDSA signatures are ASN.1
// (about 71 bytes for P-256), RSA ones PKCS #1 v1.5, Ed25519 ones the
// 64-byte signature of the message itself.
package membership

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// label starts every signed message, so that a signature of an
// announcement is never one of anything else made with the same key.
const label = "invpn signed announcement v1\x00"

// MaxCertificates bounds the certificates a Book keeps: a member can send
// any number of valid ones only if the CA issued them.
const MaxCertificates = 1 << 16

// Book holds the members' certificates this daemon has learned. It is
// used by the daemon's loop only.
type Book struct {
	self    wire.MAC
	key     crypto.Signer
	own     []byte // this member's certificate, DER
	roots   *x509.CertPool
	revoked func(*x509.Certificate) error
	certs   map[wire.MAC]*x509.Certificate
}

var _ node.Authenticator = (*Book)(nil)

// New returns a Book that signs with cert (this member's certificate and
// key) and believes certificates that chain to roots and that revoked
// (the revocation store's Check; nil for none) does not refuse.
func New(cert tls.Certificate, roots *x509.CertPool, revoked func(*x509.Certificate) error) (*Book, error) {
	b := &Book{roots: roots, revoked: revoked, certs: map[wire.MAC]*x509.Certificate{}}
	if err := b.SetIdentity(cert, roots); err != nil {
		return nil, err
	}
	return b, nil
}

// SetIdentity changes this member's certificate and key (a renewal) and
// the CAs (a reload). The MAC stays the daemon's.
func (b *Book) SetIdentity(cert tls.Certificate, roots *x509.CertPool) error {
	if len(cert.Certificate) == 0 || cert.Leaf == nil {
		return errors.New("membership: no certificate")
	}
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("membership: key of type %T cannot sign", cert.PrivateKey)
	}
	mac, err := tlstransport.MACFromCert(cert.Leaf)
	if err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	b.self, b.key, b.own, b.roots = mac, key, cert.Certificate[0], roots
	b.certs[mac] = cert.Leaf
	return nil
}

// digest is what a signature of mac's round id with port signs.
func digest(mac wire.MAC, id uint64, port uint16) []byte {
	m := append([]byte(label), mac[:]...)
	m = binary.BigEndian.AppendUint64(m, id)
	return binary.BigEndian.AppendUint16(m, port)
}

// Sign returns this member's signature of its round id with port. A key
// that fails to sign (a hardware key gone) gives no signature: the
// neighbours still believe the member's own announcements, and the
// relays' copies are dropped where signatures are required.
func (b *Book) Sign(id uint64, port uint16) []byte {
	msg := digest(b.self, id, port)
	var sig []byte
	var err error
	if _, ok := b.key.Public().(ed25519.PublicKey); ok {
		sig, err = b.key.Sign(rand.Reader, msg, crypto.Hash(0))
	} else {
		h := sha256.Sum256(msg)
		sig, err = b.key.Sign(rand.Reader, h[:], crypto.SHA256)
	}
	if err != nil {
		return nil
	}
	return sig
}

// Learn checks a member's certificate against the CAs (any key usage, as
// TLS accepts) and the revocation list, and keeps a copy of it (der
// aliases a message buffer the daemon reuses). Of two valid certificates
// of a member it keeps the one issued last (a renewal), and reports fresh
// when that is the one it was given.
func (b *Book) Learn(der []byte) (wire.MAC, bool, error) {
	cert, err := x509.ParseCertificate(bytes.Clone(der)) // its Raw aliases what it parses
	if err != nil {
		return wire.MAC{}, false, fmt.Errorf("membership: %w", err)
	}
	mac, err := tlstransport.MACFromCert(cert)
	if err != nil {
		return wire.MAC{}, false, fmt.Errorf("membership: %w", err)
	}
	held := b.certs[mac]
	if held != nil && bytes.Equal(held.Raw, der) {
		return mac, false, nil
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: b.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return wire.MAC{}, false, fmt.Errorf("membership: certificate of %s: %w", mac, err)
	}
	if b.revoked != nil {
		if err := b.revoked(cert); err != nil {
			return wire.MAC{}, false, fmt.Errorf("membership: certificate of %s: %w", mac, err)
		}
	}
	if mac == b.self {
		return mac, false, nil // another certificate of ours (an old one): ours signs
	}
	if held != nil && !b.heldRevoked(held) && !issuedLater(cert, held) {
		return mac, false, nil // an older one, from a relay that has not heard of the renewal
	}
	if len(b.certs) >= MaxCertificates && held == nil {
		return wire.MAC{}, false, fmt.Errorf("membership: %d certificates kept already", len(b.certs))
	}
	b.certs[mac] = cert
	return mac, true, nil
}

// heldRevoked reports whether a kept certificate is revoked by now.
func (b *Book) heldRevoked(c *x509.Certificate) bool { return b.revoked != nil && b.revoked(c) != nil }

// issuedLater reports whether a was issued after b: a later NotBefore,
// or the larger serial of two issued in the same second.
func issuedLater(a, b *x509.Certificate) bool {
	if !a.NotBefore.Equal(b.NotBefore) {
		return a.NotBefore.After(b.NotBefore)
	}
	return a.SerialNumber.Cmp(b.SerialNumber) > 0
}

// Certificate returns the certificate kept for mac, DER; nil if none.
func (b *Book) Certificate(mac wire.MAC) []byte {
	if c := b.certs[mac]; c != nil {
		return c.Raw
	}
	return nil
}

// Verify checks sig, mac's signature of its round id with port, against
// the certificate kept for mac, which must not be revoked since.
func (b *Book) Verify(mac wire.MAC, id uint64, port uint16, sig []byte) error {
	cert := b.certs[mac]
	if cert == nil {
		return fmt.Errorf("membership: %s: %w", mac, node.ErrNoCertificate)
	}
	if b.revoked != nil && mac != b.self {
		if err := b.revoked(cert); err != nil {
			// Revoked since it was learned: as good as none.
			return fmt.Errorf("membership: %s: %w: %w", mac, node.ErrNoCertificate, err)
		}
	}
	msg := digest(mac, id, port)
	h := sha256.Sum256(msg)
	ok := false
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, h[:], sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, msg, sig)
	default:
		return fmt.Errorf("membership: %s: key of type %T", mac, pub)
	}
	if !ok {
		return fmt.Errorf("membership: %s: signature of round %d does not verify", mac, id)
	}
	return nil
}
