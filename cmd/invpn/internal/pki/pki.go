// Package pki creates the group CA and node certificates without openssl,
// and loads them for the daemon (docs/protocol.md#identity-and-links).
//
// A group is one CA. Every member holds a certificate issued by it whose
// Common Name is the member's MAC (02:50:56:00:00:01). Keys made here are
// ECDSA P-256, which original nodes accept from peers; an original node's
// own key must be RSA, so its certificate is still made with openssl (the
// CA made here can sign its request).
//
// The CA keeps a copy of every certificate it issues in its issued
// directory. From those records Revoke writes the group's CRL (crl.pem,
// docs/protocol.md#revocation), List shows each certificate's state, and
// RenewNode gives a member a new certificate for its existing key.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/invpn/invpn/wire"
)

// File names inside a CA directory and a node directory.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
	// IssuedDir, inside the CA directory, holds a copy of every
	// certificate the CA issued, as SERIAL.crt (see SerialString).
	IssuedDir = "issued"
	// CRLFile, inside the CA directory, is the group's certificate
	// revocation list that Revoke writes, PEM type "X509 CRL".
	CRLFile = "crl.pem"
)

// Validity periods. A node certificate never outlives its CA.
const (
	CAValidity   = 20 * 365 * 24 * time.Hour
	NodeValidity = 10 * 365 * 24 * time.Hour
	// backdate allows for members whose clocks are a little behind.
	backdate = time.Hour
)

// caCommonName is the Subject Common Name of a CA made by InitCA.
const caCommonName = "invpn group CA"

// InitCA creates a new group CA in dir: dir/ca.crt (mode 0644) and
// dir/ca.key (mode 0600), an ECDSA P-256 key. dir is created (mode 0700) if
// needed. It refuses, with an error wrapping fs.ErrExist, to overwrite an
// existing CA: a new CA starts a new group that no existing member trusts.
func InitCA(dir string) error {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if err := mkdir(dir); err != nil {
		return fmt.Errorf("pki: init CA: %w", err)
	}
	for _, p := range []string{certPath, keyPath} {
		if err := refuseExisting(p, "the group CA"); err != nil {
			return fmt.Errorf("pki: init CA: %w", err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: init CA: generate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: caCommonName, Organization: []string{"invpn"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // signs member certificates only
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("pki: init CA: create certificate: %w", err)
	}
	if err := writeKeyAndCert(keyPath, certPath, key, der); err != nil {
		return fmt.Errorf("pki: init CA: %w", err)
	}
	return nil
}

// IssueNode issues a certificate for the member mac, signed by the CA in
// caDir, and writes outDir/node.crt (0644), outDir/node.key (0600, ECDSA
// P-256) and a copy of caDir/ca.crt as outDir/ca.crt. The certificate's
// Common Name is mac.String(); it is valid for both TLS server and client
// authentication for NodeValidity (or until the CA expires). IssueNode
// refuses to overwrite node files (fs.ErrExist) and a different ca.crt in
// outDir; outDir may be caDir itself. A copy of the certificate is kept
// in caDir/issued (see IssuedDir), where Revoke, List and RenewNode find it.
func IssueNode(caDir string, mac wire.MAC, outDir string) error {
	if mac.IsGroup() || mac.IsZero() {
		return fmt.Errorf("pki: issue node %s: not a unicast MAC", mac)
	}
	caPEM, caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return fmt.Errorf("pki: issue node %s: %w", mac, err)
	}
	certPath, keyPath := filepath.Join(outDir, NodeCertFile), filepath.Join(outDir, NodeKeyFile)
	if err := mkdir(outDir); err != nil {
		return fmt.Errorf("pki: issue node %s: %w", mac, err)
	}
	for _, p := range []string{certPath, keyPath} {
		if err := refuseExisting(p, "a node certificate"); err != nil {
			return fmt.Errorf("pki: issue node %s: %w", mac, err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: issue node %s: generate key: %w", mac, err)
	}
	der, err := signNode(caCert, caKey, mac, key.Public(), time.Now())
	if err != nil {
		return fmt.Errorf("pki: issue node %s: %w", mac, err)
	}
	if err := copyCA(caPEM, filepath.Join(outDir, CACertFile)); err != nil {
		return fmt.Errorf("pki: issue node %s: %w", mac, err)
	}
	record, err := recordIssued(caDir, der)
	if err != nil {
		return fmt.Errorf("pki: issue node %s: %w", mac, err)
	}
	if err := writeKeyAndCert(keyPath, certPath, key, der); err != nil {
		// The key is lost, so the certificate can never be used.
		os.Remove(record)
		return fmt.Errorf("pki: issue node %s: %w", mac, err)
	}
	return nil
}

// signNode makes the member certificate of mac for the public key pub,
// signed by the CA: a new random serial, valid from now (less backdate)
// for NodeValidity or until the CA expires, for TLS server and client
// authentication. It returns the certificate in DER.
func signNode(caCert *x509.Certificate, caKey crypto.Signer, mac wire.MAC, pub crypto.PublicKey, now time.Time) ([]byte, error) {
	if !now.Before(caCert.NotAfter) {
		return nil, fmt.Errorf("the CA expired on %s", caCert.NotAfter.UTC().Format(time.DateOnly))
	}
	notAfter := now.Add(NodeValidity)
	if caCert.NotAfter.Before(notAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: mac.String()},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		// Explicitly not a CA.
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return der, nil
}

// RandomMAC returns a random locally administered unicast MAC read from r
// (crypto/rand.Reader when r is nil): the first octet has its group bit
// cleared and its local bit set. RandomMAC panics if r fails, which
// crypto/rand.Reader never does.
func RandomMAC(r io.Reader) wire.MAC {
	if r == nil {
		r = rand.Reader
	}
	var m wire.MAC
	if _, err := io.ReadFull(r, m[:]); err != nil {
		panic(fmt.Sprintf("pki: random MAC: %v", err))
	}
	m[0] = m[0]&^0x01 | 0x02
	return m
}
