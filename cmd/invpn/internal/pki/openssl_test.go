package pki

import (
	"os/exec"
	"path/filepath"
	"testing"

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
