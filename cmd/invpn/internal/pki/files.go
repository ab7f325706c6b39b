package pki

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/invpn/invpn/cmd/invpn/internal/atomicfile"
)

// LoadCertPool reads a PEM file of one or more CA certificates (a bundle
// when the mesh trusts several CAs). It fails when a certificate does not
// parse or the file holds none. Blocks of other types are ignored.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pool, _, err := LoadCACerts(path)
	return pool, err
}

// LoadKeyPair reads a member's PEM certificate and key (RSA, ECDSA or
// Ed25519, in PKCS#8, PKCS#1 or SEC 1 form). The returned certificate's
// Leaf is set.
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: load key pair %s, %s: %w", certPath, keyPath, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("pki: load key pair %s: %w", certPath, err)
		}
	}
	return c, nil
}

// parseCerts returns every CERTIFICATE block of data, parsed.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
}

// loadCA reads the CA in dir: the raw ca.crt (kept to copy it to members),
// its first certificate and the CA's private key, which must match it.
func loadCA(dir string) (pemData []byte, cert *x509.Certificate, key crypto.Signer, err error) {
	pemData, cert, err = loadCACert(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load CA key: %w", err)
	}
	key, err = parseKey(keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load CA key %s: %w", keyPath, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, nil, nil, fmt.Errorf("load CA: key %s does not match certificate %s", keyPath, certPath)
	}
	return pemData, cert, key, nil
}

// loadCACert reads dir/ca.crt, raw and its first certificate, which must
// be able to act as a CA. It does not read the CA's key.
func loadCACert(dir string) (pemData []byte, cert *x509.Certificate, err error) {
	certPath := filepath.Join(dir, CACertFile)
	pemData, err = os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	certs, err := parseCerts(pemData)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA %s: %w", certPath, err)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("load CA %s: no CERTIFICATE block in the file", certPath)
	}
	cert = certs[0]
	if !mayIssue(cert) {
		return nil, nil, fmt.Errorf("load CA %s: certificate %q is not a CA", certPath, cert.Subject.CommonName)
	}
	return pemData, cert, nil
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// mayIssue reports whether cert can act as a CA: it says it is one, or, as
// openssl makes a CA without its configuration file, it has neither basic
// constraints nor key usages that forbid signing certificates.
func mayIssue(cert *x509.Certificate) bool {
	if cert.BasicConstraintsValid {
		return cert.IsCA
	}
	return cert.KeyUsage == 0 || cert.KeyUsage&x509.KeyUsageCertSign != 0
}

// parseKey reads the first private key block of data.
func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PRIVATE KEY block in the file")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", b.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%T cannot sign", k)
		}
		return s, nil
	}
}

// mkdir creates dir (mode 0700) and its parents if missing.
func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	return nil
}

// refuseExisting fails with fs.ErrExist when path exists.
func refuseExisting(path, what string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s already exists; refusing to overwrite %s (move it away first): %w", path, what, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check %s: %w", path, err)
	}
	return nil
}

// writeKeyAndCert writes a private key (0600) and its certificate (0644),
// both new files; if the certificate cannot be written the key is removed.
func writeKeyAndCert(keyPath, certPath string, key crypto.Signer, certDER []byte) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := atomicfile.CreateNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := atomicfile.CreateNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

// copyCA writes the CA file to path, unless path already holds exactly it.
func copyCA(caPEM []byte, path string) error {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, caPEM):
		return nil
	case err == nil:
		return fmt.Errorf("%s already exists with another CA; refusing to overwrite it: %w", path, fs.ErrExist)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("check %s: %w", path, err)
	}
	return atomicfile.CreateNew(path, caPEM, 0o644)
}
