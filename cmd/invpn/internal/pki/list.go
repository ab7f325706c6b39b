package pki

import (
	"cmp"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// expiryWarning is how close to its end a valid certificate's status
// starts counting the days left.
const expiryWarning = 30 * 24 * time.Hour

// Issued is one certificate as List reports it.
type Issued struct {
	// Serial is the certificate's serial number.
	Serial *big.Int
	// MAC is the certificate's Common Name, its member's MAC; "" when
	// only the CRL knows the serial.
	MAC string
	// NotBefore and NotAfter are the certificate's validity; zero when
	// only the CRL knows the serial.
	NotBefore, NotAfter time.Time
	// InRecords says whether the CA's records (IssuedDir) hold the
	// certificate. One revoked by serial without a record (made with
	// openssl, say) is known only from the CRL.
	InRecords bool
	// Revoked says whether the CA's CRL revokes the serial, and RevokedAt
	// since when.
	Revoked   bool
	RevokedAt time.Time
}

// Status says in a few words what the certificate is worth at now:
// "revoked 2025-01-02" (the date in UTC), "expired", "expires in N days"
// when it ends within 30 days, else "valid".
func (c Issued) Status(now time.Time) string {
	switch left := c.NotAfter.Sub(now); {
	case c.Revoked:
		return "revoked " + c.RevokedAt.UTC().Format(time.DateOnly)
	case left <= 0:
		return "expired"
	case left <= expiryWarning:
		days := int((left + 24*time.Hour - 1) / (24 * time.Hour)) // a part of a day counts as one
		if days == 1 {
			return "expires in 1 day"
		}
		return fmt.Sprintf("expires in %d days", days)
	default:
		return "valid"
	}
}

// List returns every certificate in the CA's records and every serial its
// CRL revokes that the records do not hold. The recorded certificates
// come first, sorted by MAC and then NotBefore; the serials known only
// from the CRL follow in serial order.
func List(caDir string) ([]Issued, error) {
	_, caCert, err := loadCACert(caDir)
	if err != nil {
		return nil, fmt.Errorf("pki: list: %w", err)
	}
	certs, err := readIssued(caDir, caCert)
	if err != nil {
		return nil, fmt.Errorf("pki: list: %w", err)
	}
	list, err := readCRL(caDir, caCert)
	if err != nil {
		return nil, fmt.Errorf("pki: list: %w", err)
	}
	var out []Issued
	recorded := make(map[string]bool, len(certs))
	for _, c := range certs {
		recorded[SerialString(c.SerialNumber)] = true
		at, revoked := list.revokedAt(c.SerialNumber)
		out = append(out, Issued{
			Serial: c.SerialNumber, MAC: memberMAC(c),
			NotBefore: c.NotBefore, NotAfter: c.NotAfter,
			InRecords: true, Revoked: revoked, RevokedAt: at,
		})
	}
	for _, e := range list.entries {
		if !recorded[SerialString(e.SerialNumber)] {
			out = append(out, Issued{Serial: e.SerialNumber, Revoked: true, RevokedAt: e.RevocationTime})
		}
	}
	slices.SortStableFunc(out, compareIssued)
	return out, nil
}

// compareIssued orders List's rows: recorded before CRL-only, then by MAC,
// NotBefore and serial.
func compareIssued(a, b Issued) int {
	if a.InRecords != b.InRecords {
		if a.InRecords {
			return -1
		}
		return 1
	}
	return cmp.Or(
		cmp.Compare(a.MAC, b.MAC),
		a.NotBefore.Compare(b.NotBefore),
		a.Serial.Cmp(b.Serial),
	)
}
