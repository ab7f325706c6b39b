package membership

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

var (
	macA = wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	macB = wire.MAC{0x02, 0x50, 0x56, 0, 0, 2}
)

// member issues a certificate for mac from the CA in caDir.
func member(t testing.TB, caDir string, mac wire.MAC) tls.Certificate {
	t.Helper()
	dir := filepath.Join(filepath.Dir(caDir), mac.String())
	if err := pki.IssueNode(caDir, mac, dir); err != nil {
		t.Fatal(err)
	}
	c, err := pki.LoadKeyPair(filepath.Join(dir, pki.NodeCertFile), filepath.Join(dir, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// books returns the Books of members a and b of one group.
func books(t testing.TB) (a, b *Book, caDir string) {
	t.Helper()
	caDir = filepath.Join(t.TempDir(), "ca")
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(filepath.Join(caDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	a, err = New(member(t, caDir, macA), roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err = New(member(t, caDir, macB), roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, caDir
}

func TestSignLearnVerify(t *testing.T) {
	a, b, _ := books(t)
	sig := a.Sign(7, 41744)
	if err := b.Verify(macA, 7, 41744, sig); !errors.Is(err, node.ErrNoCertificate) {
		t.Fatalf("Verify before the certificate came = %v, want ErrNoCertificate", err)
	}
	if mac, fresh, err := b.Learn(a.Certificate(macA)); err != nil || mac != macA || !fresh {
		t.Fatalf("Learn = %v, %v", mac, err)
	}
	if err := b.Verify(macA, 7, 41744, sig); err != nil {
		t.Fatalf("a true signature: %v", err)
	}
	for name, check := range map[string]error{
		"another id":          b.Verify(macA, 8, 41744, sig),
		"another port":        b.Verify(macA, 7, 1, sig),
		"claimed for another": b.Verify(macB, 7, 41744, sig),
		"b signing as a":      b.Verify(macA, 7, 41744, b.Sign(7, 41744)),
	} {
		if check == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestLearnRefuses(t *testing.T) {
	a, _, caDir := books(t)
	other := filepath.Join(filepath.Dir(caDir), "other")
	if err := pki.InitCA(other); err != nil {
		t.Fatal(err)
	}
	foreign := member(t, other, wire.MAC{0x02, 0x50, 0x56, 0, 0, 9})
	if _, _, err := a.Learn(foreign.Certificate[0]); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("a certificate of another CA: %v", err)
	}
	if _, _, err := a.Learn([]byte{0x30, 0x00}); err == nil {
		t.Error("garbage learned")
	}
	roots, _ := pki.LoadCertPool(filepath.Join(caDir, pki.CACertFile))
	revoking := errors.New("on the list")
	strict, err := New(member(t, caDir, wire.MAC{0x02, 0x50, 0x56, 0, 0, 3}), roots, func(c *x509.Certificate) error {
		if c.Subject.CommonName == macA.String() {
			return revoking
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := strict.Learn(a.Certificate(macA)); !errors.Is(err, revoking) {
		t.Errorf("a revoked certificate: %v", err)
	}
}

// The cost of one signature and one check, P-256 (the keys invpn cert
// issue makes): go test ./cmd/invpn/internal/membership -bench .
func BenchmarkSign(b *testing.B) {
	a, _, _ := books(b)
	for i := range b.N {
		a.Sign(uint64(i), 41744)
	}
}

func BenchmarkVerify(b *testing.B) {
	a, v, _ := books(b)
	v.Learn(a.Certificate(macA))
	sig := a.Sign(7, 41744)
	b.ReportMetric(float64(len(sig)), "sig-bytes")
	for range b.N {
		if err := v.Verify(macA, 7, 41744, sig); err != nil {
			b.Fatal(err)
		}
	}
}

// Learn keeps a copy: the daemon reuses the buffer the message came in.
func TestLearnCopies(t *testing.T) {
	a, b, _ := books(t)
	buf := append([]byte(nil), a.Certificate(macA)...)
	if _, _, err := b.Learn(buf); err != nil {
		t.Fatal(err)
	}
	clear(buf)
	if err := b.Verify(macA, 1, 2, a.Sign(1, 2)); err != nil {
		t.Errorf("after the buffer was reused: %v", err)
	}
	if got := b.Certificate(macA); string(got) != string(a.Certificate(macA)) {
		t.Error("the kept certificate changed with the buffer")
	}
}

// A renewed certificate replaces the old one, whichever comes first, and
// is reported fresh once, so that the node passes it on; the old one
// coming again later (from a relay that has not heard of the renewal)
// changes nothing.
func TestLearnKeepsTheRenewal(t *testing.T) {
	a, b, caDir := books(t)
	old := a.Certificate(macA)
	renewed, err := pki.RenewNode(caDir, filepath.Join(filepath.Dir(caDir), macA.String()), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		der   []byte
		fresh bool
	}{{old, true}, {renewed.Raw, true}, {old, false}, {renewed.Raw, false}} {
		mac, fresh, err := b.Learn(step.der)
		if err != nil || mac != macA || fresh != step.fresh {
			t.Errorf("step %d: Learn = %s, fresh %v, %v; want fresh %v", i, mac, fresh, err, step.fresh)
		}
	}
	if got := b.Certificate(macA); string(got) != string(renewed.Raw) {
		t.Error("the old certificate is kept, not the renewal")
	}
}
