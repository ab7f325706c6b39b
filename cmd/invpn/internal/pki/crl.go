package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/atomicfile"
)

// MaxCRLSize is the largest CRL, in DER bytes, that Revoke writes. The
// mesh floods the list in one message of at most 65535 bytes (a
// wire.RevocationList); this leaves room for its header with a margin.
const MaxCRLSize = 65000

// crlPEMType is the PEM block type of a CRL.
const crlPEMType = "X509 CRL"

// oidReasonCode is the CRL entry extension of a revocation's reason, which
// x509.CreateRevocationList makes from RevocationListEntry.ReasonCode.
var oidReasonCode = asn1.ObjectIdentifier{2, 5, 29, 21}

// crlState is what the CA's current crl.pem says: its CRL Number (0 when
// there is no list yet) and its entries, ready to sign into the next list.
type crlState struct {
	number  uint64
	entries []x509.RevocationListEntry
}

// revokedAt returns when serial was revoked, and whether it is in the list.
func (s *crlState) revokedAt(serial *big.Int) (time.Time, bool) {
	for _, e := range s.entries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return e.RevocationTime, true
		}
	}
	return time.Time{}, false
}

// readCRL reads caDir/crl.pem, which must be a CRL signed by caCert with a
// CRL Number within uint64. A missing file is an empty list numbered 0.
func readCRL(caDir string, caCert *x509.Certificate) (crlState, error) {
	path := filepath.Join(caDir, CRLFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return crlState{}, nil
	}
	if err != nil {
		return crlState{}, fmt.Errorf("read the CRL: %w", err)
	}
	der, err := crlDER(data)
	if err != nil {
		return crlState{}, fmt.Errorf("read the CRL %s: %w", path, err)
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return crlState{}, fmt.Errorf("read the CRL %s: %w", path, err)
	}
	if err := list.CheckSignatureFrom(caCert); err != nil {
		return crlState{}, fmt.Errorf("read the CRL %s: not signed by the CA in %s (move it away if it belongs to another CA): %w", path, caDir, err)
	}
	var number uint64
	if list.Number != nil {
		if !list.Number.IsUint64() {
			return crlState{}, fmt.Errorf("read the CRL %s: CRL number %s is beyond the 64 bits the mesh carries", path, list.Number)
		}
		number = list.Number.Uint64()
	}
	s := crlState{number: number}
	for _, e := range list.RevokedCertificateEntries {
		s.entries = append(s.entries, resignable(e))
	}
	return s, nil
}

// crlDER returns the DER of the first X509 CRL block of data.
func crlDER(data []byte) ([]byte, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("no %s block in the file", crlPEMType)
		}
		if b.Type == crlPEMType {
			return b.Bytes, nil
		}
	}
}

// resignable returns a parsed CRL entry as x509.CreateRevocationList takes
// it: the reason as ReasonCode, the entry's other extensions kept as
// ExtraExtensions.
func resignable(e x509.RevocationListEntry) x509.RevocationListEntry {
	out := x509.RevocationListEntry{
		SerialNumber:   e.SerialNumber,
		RevocationTime: e.RevocationTime,
		ReasonCode:     e.ReasonCode,
	}
	for _, ext := range e.Extensions {
		if !ext.Id.Equal(oidReasonCode) {
			out.ExtraExtensions = append(out.ExtraExtensions, ext)
		}
	}
	return out
}

// checkCRLSigner fails when caCert may not sign CRLs: its key usages, if
// it has any, must include CRL signing, and a CRL names its issuer by the
// certificate's Subject Key Identifier.
func checkCRLSigner(caCert *x509.Certificate) error {
	if caCert.KeyUsage != 0 && caCert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return errors.New("the CA certificate's key usages lack cRLSign, so members would not trust a CRL it signs; " +
			"make the CA with keyUsage = keyCertSign, cRLSign (invpn ca init does)")
	}
	if len(caCert.SubjectKeyId) == 0 {
		return errors.New("the CA certificate has no Subject Key Identifier, which a CRL needs to name its issuer; " +
			"make the CA with subjectKeyIdentifier = hash (invpn ca init does)")
	}
	return nil
}

// signCRL makes the CRL number number of entries, signed by the CA, and
// returns it in DER. ThisUpdate is now. NextUpdate is the CA's NotAfter:
// members pick the newest list by its CRL Number, not by NextUpdate, and
// keep a list until a higher number comes, so the list need not be
// reissued to stay in force. The list must fit in MaxCRLSize.
func signCRL(caCert *x509.Certificate, caKey crypto.Signer, number uint64, entries []x509.RevocationListEntry, now time.Time) ([]byte, error) {
	if err := checkCRLSigner(caCert); err != nil {
		return nil, err
	}
	if !now.Before(caCert.NotAfter) {
		return nil, fmt.Errorf("the CA expired on %s", caCert.NotAfter.UTC().Format(time.DateOnly))
	}
	issuer := caCert
	if caCert.KeyUsage == 0 {
		// No key usage extension allows every usage (RFC 5280, 4.2.1.3),
		// which x509.CreateRevocationList wants said explicitly.
		c := *caCert
		c.KeyUsage = x509.KeyUsageCRLSign
		issuer = &c
	}
	tmpl := &x509.RevocationList{
		Number:                    new(big.Int).SetUint64(number),
		ThisUpdate:                now,
		NextUpdate:                caCert.NotAfter,
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign the CRL: %w", err)
	}
	if len(der) > MaxCRLSize {
		return nil, fmt.Errorf("the CRL would be %d bytes with %d entries, over the %d bytes the mesh carries in one message (at most 65535)",
			len(der), len(entries), MaxCRLSize)
	}
	return der, nil
}

// nextCRLNumber returns the number after n, failing when it would leave
// uint64.
func nextCRLNumber(n uint64) (uint64, error) {
	if n == math.MaxUint64 {
		return 0, fmt.Errorf("the CRL number %d is the last a 64-bit number holds; start a new CA", n)
	}
	return n + 1, nil
}

// writeCRL atomically replaces caDir/crl.pem with the list der.
func writeCRL(caDir string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: crlPEMType, Bytes: der})
	return atomicfile.Replace(filepath.Join(caDir, CRLFile), data, 0o644)
}
