package tlstransport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"
)

// keyKind names the key algorithms a member may use.
type keyKind string

const (
	kindECDSA   keyKind = "ecdsa-p256"
	kindEd25519 keyKind = "ed25519"
	kindRSA     keyKind = "rsa-2048" // 2048 keeps the tests fast; 4096 is tested in pki
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func newKey(t *testing.T, kind keyKind) crypto.Signer {
	t.Helper()
	switch kind {
	case kindECDSA:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	case kindEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	case kindRSA:
		// One RSA key serves every test: generating them is slow.
		rsaOnce.Do(func() {
			var err error
			if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		})
		return rsaKey
	}
	t.Fatalf("unknown key kind %q", kind)
	return nil
}

// testCA is a group CA made in memory.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

var serial int64

func nextSerial() *big.Int {
	serial++
	return big.NewInt(serial)
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t, kindECDSA)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a member certificate with Common Name cn. Without ekus it has
// no extended key usage at all, like the original's openssl recipe.
func (ca *testCA) issue(t *testing.T, cn string, kind keyKind, ekus ...x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key := newKey(t, kind)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  ekus,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// member returns a Config for a member named cn with a key of kind.
func (ca *testCA) member(t *testing.T, cn string, kind keyKind) Config {
	t.Helper()
	cert := ca.issue(t, cn, kind, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	return Config{Cert: cert, CAs: ca.pool}
}
