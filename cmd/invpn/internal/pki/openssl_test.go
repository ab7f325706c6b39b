package pki

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// The original's recipe makes 4096-bit RSA keys. One such key takes 1.5 to
// 4 s with OpenSSL 3 here, so two would often pass the 5 s budget: the
// member's key, which the TLS handshake uses, keeps the real size and the
// CA's key is 2048 bits.
const (
	nodeRSABits = "4096"
	caRSABits   = "2048"
)

// Interoperating with an original node: an original member's RSA key and
// certificate, made with openssl as the original's users do, links with a
// member whose key and certificate this package issued from the same CA.
func TestOpenSSLRecipeInterop(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not on PATH: skipping the test of certificates made by the original's openssl recipe")
	}
	caDir, origDir := t.TempDir(), t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = caDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	origMAC := wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	run("req", "-x509", "-newkey", "rsa:"+caRSABits, "-nodes", "-days", "3650",
		"-keyout", CAKeyFile, "-out", CACertFile, "-subj", "/CN=invpn test CA")
	run("req", "-new", "-newkey", "rsa:"+nodeRSABits, "-nodes",
		"-keyout", filepath.Join(origDir, NodeKeyFile), "-out", "node.csr", "-subj", "/CN="+origMAC.String())
	run("x509", "-req", "-in", "node.csr", "-CA", CACertFile, "-CAkey", CAKeyFile, "-CAcreateserial",
		"-days", "3650", "-out", filepath.Join(origDir, NodeCertFile))

	// This package issues the other member from the openssl CA.
	goDir := issue(t, caDir, macB)
	caFile := filepath.Join(caDir, CACertFile)
	orig := member(t, origDir, caFile)
	ours := member(t, goDir, caFile)
	if err := connect(t, ours, orig, macB, origMAC); err != nil {
		t.Errorf("Go-issued member dials the openssl member: %v", err)
	}
	if err := connect(t, orig, ours, origMAC, macB); err != nil {
		t.Errorf("openssl member dials the Go-issued member: %v", err)
	}
}

// Revocation with a CA made by the original's openssl recipe: the CRL
// Revoke writes for it is one openssl itself checks, and it revokes a
// member openssl issued, known only by its serial.
func TestOpenSSLCARevoke(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not on PATH: skipping the test of revocation by a CA made with openssl")
	}
	caDir := t.TempDir()
	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = caDir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		return out
	}
	must("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "3650",
		"-keyout", CAKeyFile, "-out", CACertFile, "-subj", "/CN=invpn test CA")
	must("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "orig.key", "-out", "orig.csr", "-subj", "/CN=02:50:56:00:00:09")
	must("x509", "-req", "-in", "orig.csr", "-CA", CACertFile, "-CAkey", CAKeyFile, "-CAcreateserial",
		"-days", "3650", "-out", "orig.crt")
	serialLine := must("x509", "-in", "orig.crt", "-noout", "-serial") // serial=3A4F...
	origSerial := strings.TrimSpace(strings.TrimPrefix(serialLine, "serial="))
	ours := issue(t, caDir, macB)

	rev, err := Revoke(caDir, []string{origSerial, macB.String()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.Certs) != 2 || rev.Certs[0].InRecords || !rev.Certs[1].InRecords {
		t.Errorf("Revoke: %+v, want the openssl member unrecorded and ours recorded", rev.Certs)
	}
	crl := filepath.Join(caDir, CRLFile)
	if out, err := run("crl", "-in", crl, "-CAfile", CACertFile, "-noout"); err != nil || !strings.Contains(out, "verify OK") {
		t.Errorf("openssl crl -CAfile: %v\n%s", err, out)
	}
	for _, cert := range []string{"orig.crt", filepath.Join(ours, NodeCertFile)} {
		out, err := run("verify", "-crl_check", "-CRLfile", crl, "-CAfile", CACertFile, cert)
		if err == nil || !strings.Contains(out, "revoked") {
			t.Errorf("openssl verify -crl_check %s: %v, want it revoked\n%s", cert, err, out)
		}
	}
}

// Revocation: a CA openssl made with key usages that leave out cRLSign
// cannot sign a CRL members would accept; Revoke says so.
func TestOpenSSLCAWithoutCRLSign(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not on PATH")
	}
	caDir := t.TempDir()
	cmd := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-days", "30", "-keyout", CAKeyFile, "-out", CACertFile, "-subj", "/CN=invpn test CA",
		"-addext", "keyUsage=critical,keyCertSign")
	cmd.Dir = caDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	if _, err := Revoke(caDir, []string{"1a"}, time.Now()); err == nil || !strings.Contains(err.Error(), "cRLSign") {
		t.Errorf("Revoke = %v, want an error naming cRLSign", err)
	}
}
