package revocation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA that signs member certificates and lists.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func newCA(t testing.TB, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key}
}

// member issues a certificate with serial.
func (ca testCA) member(t testing.TB, serial int64) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "02:50:56:00:00:01"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// list signs a CRL of number revoking serials; number must not be nil (Go refuses to sign without one).
func (ca testCA) list(t testing.TB, number *big.Int, serials ...int64) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: number, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: now})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseAndRevokes(t *testing.T) {
	ca, other := newCA(t, "group"), newCA(t, "other")
	der := ca.list(t, big.NewInt(3), 7, 9)
	asPEM := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	for name, data := range map[string][]byte{"DER": der, "PEM": asPEM} {
		l, err := Parse(data, []*x509.Certificate{other.cert, ca.cert})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if l.Number != 3 || l.Len() != 2 || string(l.DER) != string(der) {
			t.Errorf("%s: number %d, %d revoked; want 3 and 2, and the DER as signed", name, l.Number, l.Len())
		}
		if !l.Revokes(ca.member(t, 7)) || !l.Revokes(ca.member(t, 9)) {
			t.Errorf("%s: revoked serials pass", name)
		}
		if l.Revokes(ca.member(t, 8)) {
			t.Errorf("%s: serial 8 is revoked", name)
		}
		if l.Revokes(other.member(t, 7)) {
			t.Errorf("%s: serial 7 of another CA is revoked", name)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	ca, other := newCA(t, "group"), newCA(t, "other")
	impostor := newCA(t, "group") // same name, another key
	cas := []*x509.Certificate{ca.cert}
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"another CA's list", "not signed by a CA of the group (issuer", other.list(t, big.NewInt(1), 1)},
		{"same name, another key", "its signature does not", impostor.list(t, big.NewInt(1), 1)},
		{"number 0", "CRL number 0", ca.list(t, big.NewInt(0), 1)},
		{"number past 64 bits", "CRL number 18446744073709551616", ca.list(t, new(big.Int).Lsh(big.NewInt(1), 64), 1)},
		{"a certificate in PEM", `PEM block "CERTIFICATE"`, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})},
		{"garbage", "revocation: x509", []byte{0x30, 0x03, 0x02, 0x01, 0x01}},
		{"too long", "more than the", make([]byte, 70000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data, cas)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestStoreKeepsTheNewest(t *testing.T) {
	ca := newCA(t, "group")
	s := NewStore([]*x509.Certificate{ca.cert})
	m := ca.member(t, 5)
	if err := s.Check(m); err != nil {
		t.Fatalf("empty store refuses: %v", err)
	}
	l2, err := s.Parse(ca.list(t, big.NewInt(2), 5))
	if err != nil {
		t.Fatal(err)
	}
	l1, _ := s.Parse(ca.list(t, big.NewInt(1)))
	if !s.Offer(l2) || s.Offer(l1) || s.Offer(l2) {
		t.Error("Offer took an older or the same list, or refused a newer one")
	}
	if err := s.Check(m); !errors.Is(err, ErrRevoked) {
		t.Errorf("Check = %v, want ErrRevoked", err)
	}
	// A reload that no longer trusts the list's CA drops it.
	s.SetCAs([]*x509.Certificate{newCA(t, "next").cert})
	if s.Current() != nil || s.Check(m) != nil {
		t.Error("a list of a CA no longer trusted still applies")
	}
}

func TestSaveLoad(t *testing.T) {
	ca := newCA(t, "group")
	cas := []*x509.Certificate{ca.cert}
	path := filepath.Join(t.TempDir(), "peers.crl")
	if l, err := Load(path, cas); l != nil || err != nil {
		t.Fatalf("Load of a missing file = %v, %v; want nil, nil", l, err)
	}
	l, _ := Parse(ca.list(t, big.NewInt(4), 1), cas)
	if err := Save(path, l); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path, cas)
	if err != nil || got.Number != 4 || string(got.DER) != string(l.DER) {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("Save left %d files, want 1", len(entries))
	}
	os.WriteFile(path, []byte("not a list"), 0o600)
	if _, err := Load(path, cas); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of a damaged file = %v, want an error naming it", err)
	}
}

// FuzzParse feeds hostile lists to Parse: it never panics, and a list it
// accepts has a number and keeps its DER within one message.
func FuzzParse(f *testing.F) {
	ca := newCA(f, "group")
	f.Add(ca.list(f, big.NewInt(1), 1, 2))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ca.list(f, big.NewInt(2))}))
	f.Add([]byte{0x30, 0x00})
	cas := []*x509.Certificate{ca.cert}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse(data, cas)
		if err != nil {
			return
		}
		if l.Number == 0 || len(l.DER) == 0 {
			t.Fatalf("accepted list %+v", l)
		}
	})
}
