package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/atomicfile"
	"github.com/invpn/invpn/wire"
)

// RenewNode gives the member in nodeDir a new certificate from the CA in
// caDir for the key it already has, and returns it. nodeDir/node.crt must
// be a certificate this CA issued, not revoked, and nodeDir/node.key its
// key. The new certificate names the same MAC, has a new serial and is
// valid from now for NodeValidity (or until the CA expires); it is
// recorded in caDir/issued and replaces nodeDir/node.crt atomically, so
// after a crash node.crt is the old certificate or the new one, both
// matching node.key, which RenewNode does not touch.
//
// The old certificate stays valid until it expires or is revoked by its
// serial.
func RenewNode(caDir, nodeDir string, now time.Time) (*x509.Certificate, error) {
	_, caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return nil, fmt.Errorf("pki: renew %s: %w", nodeDir, err)
	}
	old, key, err := loadNode(nodeDir)
	if err != nil {
		return nil, fmt.Errorf("pki: renew %s: %w", nodeDir, err)
	}
	mac, err := renewableMAC(caDir, caCert, old)
	if err != nil {
		return nil, fmt.Errorf("pki: renew %s: %w", nodeDir, err)
	}
	der, err := signNode(caCert, caKey, mac, key, now)
	if err != nil {
		return nil, fmt.Errorf("pki: renew %s: %w", mac, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: renew %s: %w", mac, err)
	}
	// Recorded first: a certificate that leaves the CA is in the records.
	if _, err := recordIssued(caDir, der); err != nil {
		return nil, fmt.Errorf("pki: renew %s: %w", mac, err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.Replace(filepath.Join(nodeDir, NodeCertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("pki: renew %s: %w", mac, err)
	}
	return cert, nil
}

// loadNode reads nodeDir/node.crt and nodeDir/node.key, which must match,
// and returns the certificate and the key's public half.
func loadNode(nodeDir string) (*x509.Certificate, crypto.PublicKey, error) {
	certPath, keyPath := filepath.Join(nodeDir, NodeCertFile), filepath.Join(nodeDir, NodeKeyFile)
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read the node certificate: %w", err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, nil, fmt.Errorf("read the node certificate %s: %w", certPath, err)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("read the node certificate %s: no CERTIFICATE block in the file", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read the node key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("read the node key %s: %w", keyPath, err)
	}
	if !publicKeysEqual(key.Public(), certs[0].PublicKey) {
		return nil, nil, fmt.Errorf("key %s does not match certificate %s", keyPath, certPath)
	}
	return certs[0], key.Public(), nil
}

// renewableMAC returns the member MAC of old when the CA in caDir may
// renew it: it issued old, and its CRL does not revoke it.
func renewableMAC(caDir string, caCert, old *x509.Certificate) (wire.MAC, error) {
	if err := old.CheckSignatureFrom(caCert); err != nil {
		return wire.MAC{}, fmt.Errorf("%s was not issued by the CA in %s: %w", NodeCertFile, caDir, err)
	}
	mac, err := wire.ParseMAC(old.Subject.CommonName)
	if err != nil || mac.IsGroup() || mac.IsZero() {
		return wire.MAC{}, fmt.Errorf("%s names %q, not a member's unicast MAC", NodeCertFile, old.Subject.CommonName)
	}
	list, err := readCRL(caDir, caCert)
	if err != nil {
		return wire.MAC{}, err
	}
	if at, revoked := list.revokedAt(old.SerialNumber); revoked {
		return wire.MAC{}, fmt.Errorf("%s (serial %s) was revoked on %s; issue a new key and certificate with invpn cert issue instead",
			NodeCertFile, SerialString(old.SerialNumber), at.UTC().Format(time.DateOnly))
	}
	return mac, nil
}
