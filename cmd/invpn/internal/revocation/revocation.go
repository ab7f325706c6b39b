// Package revocation holds the group's certificate revocation list on a
// member (docs/protocol.md#revocation): it checks that a list is signed by
// a CA of the group, keeps the newest one by CRL number, answers whether a
// peer's certificate is revoked, and persists the list next to the peer
// cache so that a restart does not let a revoked member back in.
//
// The list itself is a standard X.509 CRL made by `invpn cert revoke`
// (or any CA tool); the mesh floods it as a 0x8C, and a member believes a
// copy only when it verifies here.
package revocation

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/atomicfile"
	"github.com/invpn/invpn/wire"
)

// pemType is the PEM block type of a CRL.
const pemType = "X509 CRL"

// List is a revocation list that verified against a CA of the group.
type List struct {
	// Number is the list's CRL Number: a newer list has a larger one.
	Number uint64
	// DER is the list as signed, as the mesh carries it.
	DER []byte
	// Issuer names the CA that signed it; ThisUpdate is when.
	Issuer     string
	ThisUpdate time.Time

	rawIssuer []byte
	revoked   map[string]time.Time // serial (big-endian bytes) → revocation time
}

// Len returns how many certificates the list revokes.
func (l *List) Len() int { return len(l.revoked) }

// Revokes reports whether cert is on the list: issued by the list's CA
// with a revoked serial.
func (l *List) Revokes(cert *x509.Certificate) bool {
	if l == nil || !bytes.Equal(cert.RawIssuer, l.rawIssuer) {
		return false
	}
	_, ok := l.revoked[string(cert.SerialNumber.Bytes())]
	return ok
}

// Parse reads a CRL in PEM ("X509 CRL") or DER form and checks it: it
// must be signed by one of cas, carry a CRL Number that fits 64 bits and
// is not 0, and fit one 0x8C. Every rejection says what was wrong.
func Parse(data []byte, cas []*x509.Certificate) (*List, error) {
	der := data
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != pemType {
			return nil, fmt.Errorf("revocation: PEM block %q, want %q", b.Type, pemType)
		}
		der = b.Bytes
	}
	if len(der) > wire.MaxRevocationList {
		return nil, fmt.Errorf("revocation: list of %d bytes, more than the %d one message carries", len(der), wire.MaxRevocationList)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	ca, err := signer(crl, cas)
	if err != nil {
		return nil, err
	}
	if crl.Number == nil || crl.Number.Sign() <= 0 || !crl.Number.IsUint64() {
		return nil, fmt.Errorf("revocation: list of %s has CRL number %v; want one from 1 to 2^64-1", ca.Subject.CommonName, crl.Number)
	}
	l := &List{
		Number: crl.Number.Uint64(), DER: bytes.Clone(der), Issuer: ca.Subject.String(), ThisUpdate: crl.ThisUpdate,
		rawIssuer: bytes.Clone(crl.RawIssuer), revoked: make(map[string]time.Time, len(crl.RevokedCertificateEntries)),
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber != nil {
			l.revoked[string(e.SerialNumber.Bytes())] = e.RevocationTime
		}
	}
	return l, nil
}

// signer returns the CA of cas that signed crl.
func signer(crl *x509.RevocationList, cas []*x509.Certificate) (*x509.Certificate, error) {
	var sigErr error
	for _, ca := range cas {
		if !bytes.Equal(ca.RawSubject, crl.RawIssuer) {
			continue
		}
		if err := crl.CheckSignatureFrom(ca); err != nil {
			sigErr = err
			continue
		}
		return ca, nil
	}
	if sigErr != nil {
		// Every CA made by `invpn ca init` has the same name.
		return nil, fmt.Errorf("revocation: list is not signed by a CA of the group (its issuer's name matches one, its signature does not: %w)", sigErr)
	}
	return nil, fmt.Errorf("revocation: list is not signed by a CA of the group (issuer %q)", crl.Issuer.String())
}

// ErrRevoked is what Store.Check returns, wrapped, for a revoked
// certificate.
var ErrRevoked = errors.New("on the revocation list")

// Store holds the newest list the member believes. It is safe for
// concurrent use: TLS handshakes call Check while the daemon's loop
// offers lists.
type Store struct {
	mu   sync.RWMutex
	cas  []*x509.Certificate
	list *List
}

// NewStore returns an empty store that believes lists signed by cas.
func NewStore(cas []*x509.Certificate) *Store { return &Store{cas: cas} }

// SetCAs replaces the CAs lists must be signed by (a reload). A held list
// of a CA no longer trusted is dropped.
func (s *Store) SetCAs(cas []*x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cas = cas
	if s.list != nil {
		if _, err := Parse(s.list.DER, cas); err != nil {
			s.list = nil
		}
	}
}

// Parse checks data against the store's CAs (see [Parse]).
func (s *Store) Parse(data []byte) (*List, error) {
	s.mu.RLock()
	cas := s.cas
	s.mu.RUnlock()
	return Parse(data, cas)
}

// Offer installs l if its number is above the held list's, and reports
// whether it did.
func (s *Store) Offer(l *List) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.list != nil && l.Number <= s.list.Number {
		return false
	}
	s.list = l
	return true
}

// Current returns the held list; nil for none.
func (s *Store) Current() *List {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.list
}

// Check returns an error wrapping ErrRevoked when the held list revokes
// cert: the answer to tlstransport.Config.Revoked.
func (s *Store) Check(cert *x509.Certificate) error {
	if l := s.Current(); l.Revokes(cert) {
		return fmt.Errorf("serial %s of %s: %w number %d", serial(cert.SerialNumber), l.Issuer, ErrRevoked, l.Number)
	}
	return nil
}

// serial writes a serial number in lowercase hex.
func serial(n *big.Int) string { return n.Text(16) }

// Load reads a list saved by Save, or given by configuration, and checks
// it against cas. A missing file is (nil, nil).
func Load(path string, cas []*x509.Certificate) (*List, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	l, err := Parse(data, cas)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// Save writes l to path as PEM, atomically (atomicfile.Replace), so a
// crash leaves the old list or the new one.
func Save(path string, l *List) error {
	if err := atomicfile.Replace(path, pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: l.DER}), 0o600); err != nil {
		return fmt.Errorf("revocation: save: %w", err)
	}
	return nil
}
