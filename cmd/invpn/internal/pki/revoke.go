package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"time"

	"github.com/invpn/invpn/wire"
)

// Revocation is what Revoke did.
type Revocation struct {
	// CRLPath is the CA's list, caDir/crl.pem.
	CRLPath string
	// Number is the CRL Number of the list now in CRLPath.
	Number uint64
	// Entries is how many serials that list revokes in all.
	Entries int
	// Written says whether Revoke wrote a new list. It did not when every
	// target was already revoked; then the list is unchanged.
	Written bool
	// Certs has one element for each certificate the targets named, in
	// the order of the targets.
	Certs []RevokedCert
}

// RevokedCert is one certificate a target of Revoke named.
type RevokedCert struct {
	// Target is the target as given: a MAC or a serial.
	Target string
	// Serial is the certificate's serial number.
	Serial *big.Int
	// MAC is the recorded certificate's Common Name, its member's MAC; ""
	// when the certificate is not in the records.
	MAC string
	// InRecords says whether the CA's records (IssuedDir) hold the
	// certificate. A serial given directly need not be there: a
	// certificate made with openssl is not.
	InRecords bool
	// Already says that the list revoked the serial already: in an
	// earlier call, or for an earlier target of this one.
	Already bool
	// RevokedAt is when the list says it was revoked: the now of this
	// call, or the earlier time when Already.
	RevokedAt time.Time
}

// Revoke adds the certificates that targets name to the CA's certificate
// revocation list, caDir/crl.pem, and returns what it did. A target is a
// MAC (as wire.ParseMAC reads it), naming every certificate in the records
// whose Common Name is that MAC, or else a serial (as ParseSerial reads
// it), revoked whether or not the records hold it.
//
// The new list holds every entry of the old one plus the new serials,
// revoked at now; its CRL Number is the old one's plus one (1 for the
// first list), and it replaces crl.pem atomically. A serial already in the
// list is reported as such and not added again; when nothing is new, the
// file is left as it is. Revoke fails, writing nothing, when a target
// names nothing, the old list is not signed by this CA, the CA may not
// sign CRLs, or the list would outgrow MaxCRLSize.
func Revoke(caDir string, targets []string, now time.Time) (Revocation, error) {
	if len(targets) == 0 {
		return Revocation{}, errors.New("pki: revoke: no target; give a MAC or a serial")
	}
	_, caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return Revocation{}, fmt.Errorf("pki: revoke: %w", err)
	}
	if err := checkCRLSigner(caCert); err != nil {
		return Revocation{}, fmt.Errorf("pki: revoke: %w", err)
	}
	issued, err := readIssued(caDir, caCert)
	if err != nil {
		return Revocation{}, fmt.Errorf("pki: revoke: %w", err)
	}
	list, err := readCRL(caDir, caCert)
	if err != nil {
		return Revocation{}, fmt.Errorf("pki: revoke: %w", err)
	}
	rev := Revocation{CRLPath: filepath.Join(caDir, CRLFile)}
	added := 0
	for _, t := range targets {
		named, err := resolveTarget(t, issued, caDir)
		if err != nil {
			return Revocation{}, fmt.Errorf("pki: revoke: %w", err)
		}
		for _, c := range named {
			if at, ok := list.revokedAt(c.Serial); ok {
				c.Already, c.RevokedAt = true, at
			} else {
				c.RevokedAt = now
				list.entries = append(list.entries, x509.RevocationListEntry{SerialNumber: c.Serial, RevocationTime: now})
				added++
			}
			rev.Certs = append(rev.Certs, c)
		}
	}
	rev.Number, rev.Entries = list.number, len(list.entries)
	if added == 0 {
		return rev, nil
	}
	if rev.Number, err = nextCRLNumber(list.number); err != nil {
		return Revocation{}, fmt.Errorf("pki: revoke: %w", err)
	}
	der, err := signCRL(caCert, caKey, rev.Number, list.entries, now)
	if err != nil {
		return Revocation{}, fmt.Errorf("pki: revoke: %w", err)
	}
	if err := writeCRL(caDir, der); err != nil {
		return Revocation{}, fmt.Errorf("pki: revoke: %w", err)
	}
	rev.Written = true
	return rev, nil
}

// resolveTarget returns the certificates target names: for a MAC, every
// recorded certificate of that member (at least one, else an error); for
// a serial, that serial, with its record if there is one.
func resolveTarget(target string, issued []*x509.Certificate, caDir string) ([]RevokedCert, error) {
	if mac, err := wire.ParseMAC(target); err == nil {
		var named []RevokedCert
		for _, c := range issued {
			if memberMAC(c) == mac.String() {
				named = append(named, RevokedCert{Target: target, Serial: c.SerialNumber, MAC: mac.String(), InRecords: true})
			}
		}
		if len(named) == 0 {
			return nil, fmt.Errorf("no certificate for %s in %s; give its serial instead (openssl x509 -noout -serial -in node.crt)",
				mac, filepath.Join(caDir, IssuedDir))
		}
		return named, nil
	}
	serial, err := ParseSerial(target)
	if err != nil {
		return nil, fmt.Errorf("target %q is neither a MAC (like 02:50:56:00:00:01) nor a serial: %w", target, err)
	}
	for _, c := range issued {
		if c.SerialNumber.Cmp(serial) == 0 {
			return []RevokedCert{{Target: target, Serial: serial, MAC: memberMAC(c), InRecords: true}}, nil
		}
	}
	return []RevokedCert{{Target: target, Serial: serial}}, nil
}
