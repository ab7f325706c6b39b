package pki

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadCACerts reads a PEM file of one or more CA certificates, as
// LoadCertPool does, and returns them as a pool for chain checks and as a
// list for checking the signatures of revocation lists.
func LoadCACerts(path string) (*x509.CertPool, []*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: load CA certificates: %w", err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: load CA certificates %s: %w", path, err)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("pki: load CA certificates %s: no CERTIFICATE block in the file", path)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}
