package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/invpn/invpn/cmd/invpn/internal/atomicfile"
	"github.com/invpn/invpn/wire"
)

// recordIssued keeps a copy of the certificate der in the CA's records,
// caDir/issued/SERIAL.crt (PEM, 0644; the directory is made 0700), and
// returns the record's path.
func recordIssued(caDir string, der []byte) (string, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", fmt.Errorf("record issued certificate: %w", err)
	}
	dir := filepath.Join(caDir, IssuedDir)
	if err := mkdir(dir); err != nil {
		return "", fmt.Errorf("record issued certificate: %w", err)
	}
	path := filepath.Join(dir, SerialString(cert.SerialNumber)+".crt")
	if err := atomicfile.CreateNew(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", fmt.Errorf("record issued certificate: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("record issued certificate: %w", err)
	}
	return path, nil
}

// readIssued returns the certificates in the CA's records, in the order of
// their file names; none when caDir/issued does not exist. Each must be
// one certificate signed by caCert: a record that is not is an error that
// names its file. Files not ending in .crt are ignored.
func readIssued(caDir string, caCert *x509.Certificate) ([]*x509.Certificate, error) {
	dir := filepath.Join(caDir, IssuedDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the issued certificates: %w", err)
	}
	var certs []*x509.Certificate
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".crt") {
			continue
		}
		c, err := readRecord(filepath.Join(dir, e.Name()), caCert)
		if err != nil {
			return nil, fmt.Errorf("read the issued certificates: %w", err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// readRecord reads the one certificate of the record path, which caCert
// must have signed.
func readRecord(path string, caCert *x509.Certificate) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%s: %d certificates in the file, want 1", path, len(certs))
	}
	if err := certs[0].CheckSignatureFrom(caCert); err != nil {
		return nil, fmt.Errorf("%s: not signed by this CA: %w", path, err)
	}
	return certs[0], nil
}

// memberMAC returns the MAC a member certificate names, as MAC.String
// writes it; a Common Name that is not a MAC is returned as it is.
func memberMAC(cert *x509.Certificate) string {
	if m, err := wire.ParseMAC(cert.Subject.CommonName); err == nil {
		return m.String()
	}
	return cert.Subject.CommonName
}
