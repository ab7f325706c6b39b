package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	macA = wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	macB = wire.MAC{0x02, 0x50, 0x56, 0, 0, 2}
	macC = wire.MAC{0x02, 0x50, 0x56, 0, 0, 3}
)

func initCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := InitCA(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func issue(t *testing.T, caDir string, mac wire.MAC) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), mac.String())
	if err := IssueNode(caDir, mac, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got&^want != 0 {
		t.Errorf("%s mode %v, want at most %v", filepath.Base(path), got, want)
	}
}

func TestInitCA(t *testing.T) {
	dir := initCA(t)
	checkMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	ca := readCert(t, filepath.Join(dir, CACertFile))
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("ca.crt: IsCA %v, KeyUsage %v; want a CA that signs certificates", ca.IsCA, ca.KeyUsage)
	}
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	err := InitCA(dir)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second InitCA = %v, want fs.ErrExist", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(before, after) {
		t.Error("second InitCA changed ca.key")
	}
	// A lone ca.key is enough to refuse.
	os.Remove(filepath.Join(dir, CACertFile))
	if err := InitCA(dir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("InitCA over a lone ca.key = %v, want fs.ErrExist", err)
	}
}

// Identity and links: a member certificate's Common Name is its MAC, and it
// serves as both TLS server and client.
func TestIssueNode(t *testing.T) {
	caDir := initCA(t)
	dir := issue(t, caDir, macA)
	checkMode(t, filepath.Join(dir, NodeKeyFile), 0o600)
	c := readCert(t, filepath.Join(dir, NodeCertFile))
	if c.Subject.CommonName != "02:50:56:00:00:01" {
		t.Errorf("CN = %q, want 02:50:56:00:00:01", c.Subject.CommonName)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(c.ExtKeyUsage, u) {
			t.Errorf("ExtKeyUsage %v lacks %v", c.ExtKeyUsage, u)
		}
	}
	if c.IsCA {
		t.Error("member certificate is a CA")
	}
	ca := readCert(t, filepath.Join(caDir, CACertFile))
	if c.NotAfter.After(ca.NotAfter) {
		t.Errorf("node certificate outlives its CA: %v > %v", c.NotAfter, ca.NotAfter)
	}
	if err := c.CheckSignatureFrom(ca); err != nil {
		t.Errorf("node certificate not signed by the CA: %v", err)
	}
	caCopy, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	caOrig, _ := os.ReadFile(filepath.Join(caDir, CACertFile))
	if !bytes.Equal(caCopy, caOrig) {
		t.Error("outDir/ca.crt differs from the CA's")
	}
	if _, err := LoadKeyPair(filepath.Join(dir, NodeCertFile), filepath.Join(dir, NodeKeyFile)); err != nil {
		t.Errorf("LoadKeyPair: %v", err)
	}

	if err := IssueNode(caDir, macB, dir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("IssueNode over existing node files = %v, want fs.ErrExist", err)
	}
	if err := IssueNode(caDir, macB, caDir); err != nil {
		t.Errorf("IssueNode into the CA directory: %v", err)
	}
	if err := IssueNode(caDir, wire.MAC{0x33, 0x33, 0, 0, 0, 1}, t.TempDir()); err == nil {
		t.Error("IssueNode for a multicast MAC succeeded")
	}
	other := initCA(t)
	if err := IssueNode(other, macC, dir+"-2"); err != nil {
		t.Fatal(err)
	}
	// outDir already holds another CA's ca.crt.
	os.Remove(filepath.Join(dir, NodeCertFile))
	os.Remove(filepath.Join(dir, NodeKeyFile))
	if err := IssueNode(other, macC, dir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("IssueNode over another CA's ca.crt = %v, want fs.ErrExist", err)
	}
}

func TestIssueNodeBadCA(t *testing.T) {
	a, b := initCA(t), initCA(t)
	key, _ := os.ReadFile(filepath.Join(b, CAKeyFile))
	os.Remove(filepath.Join(a, CAKeyFile))
	if err := os.WriteFile(filepath.Join(a, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := IssueNode(a, macA, t.TempDir()); err == nil {
		t.Error("IssueNode with another CA's key succeeded")
	}
	// A member's certificate cannot act as the CA.
	node := issue(t, b, macA)
	fake := t.TempDir()
	for src, dst := range map[string]string{NodeCertFile: CACertFile, NodeKeyFile: CAKeyFile} {
		data, _ := os.ReadFile(filepath.Join(node, src))
		os.WriteFile(filepath.Join(fake, dst), data, 0o600)
	}
	if err := IssueNode(fake, macB, t.TempDir()); err == nil {
		t.Error("IssueNode with a member certificate as CA succeeded")
	}
}

func TestRandomMAC(t *testing.T) {
	for _, b := range []byte{0x00, 0xff, 0x01, 0x02} {
		m := RandomMAC(bytes.NewReader(bytes.Repeat([]byte{b}, 6)))
		if m.IsGroup() || m[0]&0x02 == 0 {
			t.Errorf("RandomMAC from %#02x bytes = %s, want locally administered unicast", b, m)
		}
		if !bytes.Equal(m[1:], bytes.Repeat([]byte{b}, 5)) {
			t.Errorf("RandomMAC from %#02x bytes = %s, want the other octets unchanged", b, m)
		}
	}
	if RandomMAC(nil) == RandomMAC(nil) {
		t.Error("two random MACs are equal")
	}
}

func TestLoadCertPool(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate\n"), 0o644)
	if _, err := LoadCertPool(empty); err == nil {
		t.Error("LoadCertPool of a file without certificates succeeded")
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), 0o644)
	if _, err := LoadCertPool(bad); err == nil {
		t.Error("LoadCertPool of a corrupt certificate succeeded")
	}
	if _, err := LoadCertPool(filepath.Join(dir, "missing.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadCertPool of a missing file = %v, want fs.ErrNotExist", err)
	}
}

// member loads a node directory into a transport configuration, trusting
// the CA file caFile.
func member(t *testing.T, nodeDir, caFile string) tlstransport.Config {
	t.Helper()
	cert, err := LoadKeyPair(filepath.Join(nodeDir, NodeCertFile), filepath.Join(nodeDir, NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := LoadCertPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	return tlstransport.Config{Cert: cert, CAs: pool}
}

// connect links a member configured as from (whose MAC is fromMAC) to a
// listener configured as to, wanting the MAC want. The listener speaks
// first, so a refused dialer fails its first read. On success it checks
// both ends and a message each way, and returns nil; otherwise it returns
// the dial or first-read error.
func connect(t *testing.T, from, to tlstransport.Config, fromMAC, want wire.MAC) error {
	t.Helper()
	ln, err := tlstransport.Listen(to, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := tlstransport.NewDialer(from)
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.Dial(context.Background(), want, ln.Addr())
	if err != nil {
		return err
	}
	defer a.Close()
	accepted := make(chan transport.Link, 1)
	go func() {
		b, err := ln.Accept(context.Background())
		if err != nil {
			accepted <- nil
			return
		}
		b.WriteMessage([]byte{0x81, 1})
		accepted <- b
	}()
	first, err := a.ReadMessage()
	if err != nil {
		ln.Close() // ends Accept
		if b := <-accepted; b != nil {
			b.Close()
			t.Errorf("listener accepted %s, whose first read failed: %v", b.Peer(), err)
		}
		return err
	}
	b := <-accepted
	defer b.Close()
	if !bytes.Equal(first, []byte{0x81, 1}) {
		t.Errorf("dialer read % x, want 81 01", first)
	}
	if err := a.WriteMessage([]byte{0x80, 2}); err != nil {
		t.Fatal(err)
	}
	if m, err := b.ReadMessage(); err != nil || !bytes.Equal(m, []byte{0x80, 2}) {
		t.Errorf("listener read % x, %v; want 80 02", m, err)
	}
	if a.Peer() != want || b.Peer() != fromMAC {
		t.Errorf("Peer() = %s, %s; want %s, %s", a.Peer(), b.Peer(), want, fromMAC)
	}
	if !a.Extended() || !b.Extended() {
		t.Errorf("Extended() = %v, %v; want true between two invpn nodes", a.Extended(), b.Extended())
	}
	return nil
}

// Identity and links: two members of one CA link both ways.
func TestIssuedNodesLink(t *testing.T) {
	caDir := initCA(t)
	dirA, dirB := issue(t, caDir, macA), issue(t, caDir, macB)
	a := member(t, dirA, filepath.Join(dirA, CACertFile))
	b := member(t, dirB, filepath.Join(dirB, CACertFile))
	if err := connect(t, a, b, macA, macB); err != nil {
		t.Errorf("A dials B: %v", err)
	}
	if err := connect(t, b, a, macB, macA); err != nil {
		t.Errorf("B dials A: %v", err)
	}
	// Identity and links: the dialer checks the MAC it meant to reach.
	if err := connect(t, a, b, macA, macC); !errors.Is(err, transport.ErrWrongPeer) {
		t.Errorf("A dials B wanting %s: %v, want ErrWrongPeer", macC, err)
	}
}

// Identity and links: a member of another CA is refused either way.
func TestForeignCARefused(t *testing.T) {
	ours, theirs := initCA(t), initCA(t)
	dirA, dirX := issue(t, ours, macA), issue(t, theirs, macB)
	a := member(t, dirA, filepath.Join(dirA, CACertFile))
	x := member(t, dirX, filepath.Join(dirX, CACertFile))
	if err := connect(t, a, x, macA, macB); !errors.Is(err, transport.ErrUntrusted) {
		t.Errorf("dial a foreign member: %v, want ErrUntrusted", err)
	}
	// The intruder trusts our CA, so only the listener's check stops it.
	x.CAs = a.CAs
	if err := connect(t, x, a, macB, macA); err == nil {
		t.Error("a foreign member's dial was accepted")
	}
}

// Identity and links: the CA file may be a bundle of several CAs.
func TestCABundle(t *testing.T) {
	ca1, ca2 := initCA(t), initCA(t)
	dirA, dirB := issue(t, ca1, macA), issue(t, ca2, macB)
	pem1, _ := os.ReadFile(filepath.Join(ca1, CACertFile))
	pem2, _ := os.ReadFile(filepath.Join(ca2, CACertFile))
	bundle := filepath.Join(t.TempDir(), "bundle.crt")
	if err := os.WriteFile(bundle, append(pem1, pem2...), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := member(t, dirA, bundle), member(t, dirB, bundle)
	if err := connect(t, a, b, macA, macB); err != nil {
		t.Errorf("A (CA 1) dials B (CA 2) with a bundle: %v", err)
	}
	if err := connect(t, b, a, macB, macA); err != nil {
		t.Errorf("B (CA 2) dials A (CA 1) with a bundle: %v", err)
	}
	// Without the bundle, CA 1 alone does not trust B.
	a1 := member(t, dirA, filepath.Join(ca1, CACertFile))
	if err := connect(t, a1, b, macA, macB); !errors.Is(err, transport.ErrUntrusted) {
		t.Errorf("A trusting only CA 1 dials B: %v, want ErrUntrusted", err)
	}
}

func TestMayIssue(t *testing.T) {
	for _, tc := range []struct {
		name string
		cert x509.Certificate
		want bool
	}{
		{"CA", x509.Certificate{BasicConstraintsValid: true, IsCA: true}, true},
		{"member", x509.Certificate{BasicConstraintsValid: true}, false},
		{"openssl without config", x509.Certificate{}, true},
		{"signing key only", x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature}, false},
	} {
		if got := mayIssue(&tc.cert); got != tc.want {
			t.Errorf("mayIssue(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
