package pki

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Renewal: the member keeps its key and MAC and gets a new certificate,
// which the CA records; the old one stays valid.
func TestRenewNode(t *testing.T) {
	caDir := initCA(t)
	dir := issue(t, caDir, macA)
	old := readCert(t, filepath.Join(dir, NodeCertFile))
	keyBefore, _ := os.ReadFile(filepath.Join(dir, NodeKeyFile))
	caBefore, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	now := time.Now().Add(24 * time.Hour)

	renewed, err := RenewNode(caDir, dir, now)
	if err != nil {
		t.Fatal(err)
	}
	got := readCert(t, filepath.Join(dir, NodeCertFile))
	if !bytes.Equal(got.Raw, renewed.Raw) {
		t.Error("node.crt is not the returned certificate")
	}
	if !publicKeysEqual(got.PublicKey, old.PublicKey) {
		t.Error("the renewed certificate has another public key")
	}
	if got.Subject.CommonName != old.Subject.CommonName {
		t.Errorf("CN %q, want %q", got.Subject.CommonName, old.Subject.CommonName)
	}
	if got.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Error("the renewed certificate has the old serial")
	}
	if !got.NotBefore.Equal(now.Add(-backdate).Truncate(time.Second)) || !got.NotAfter.Equal(now.Add(NodeValidity).Truncate(time.Second)) {
		t.Errorf("validity %v to %v, want from %v for NodeValidity", got.NotBefore, got.NotAfter, now)
	}
	if err := got.CheckSignatureFrom(readCert(t, filepath.Join(caDir, CACertFile))); err != nil {
		t.Errorf("the renewed certificate is not signed by the CA: %v", err)
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(dir, NodeKeyFile)); !bytes.Equal(keyBefore, keyAfter) {
		t.Error("RenewNode changed node.key")
	}
	if caAfter, _ := os.ReadFile(filepath.Join(dir, CACertFile)); !bytes.Equal(caBefore, caAfter) {
		t.Error("RenewNode changed the node's ca.crt")
	}
	if _, err := LoadKeyPair(filepath.Join(dir, NodeCertFile), filepath.Join(dir, NodeKeyFile)); err != nil {
		t.Errorf("the renewed node files do not load: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, NodeCertFile+".tmp")); err == nil {
		t.Error("node.crt.tmp left behind")
	}

	certs, err := List(caDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("List after renewal has %d certificates, want the old and the new", len(certs))
	}
	for i, want := range []string{SerialString(old.SerialNumber), SerialString(got.SerialNumber)} {
		if SerialString(certs[i].Serial) != want || certs[i].Status(now) != "valid" {
			t.Errorf("List[%d] = %s %s, want %s valid (old first)", i, SerialString(certs[i].Serial), certs[i].Status(now), want)
		}
	}
}

// Renewal never outlives the CA.
func TestRenewNodeCappedByCA(t *testing.T) {
	caDir := initCA(t)
	dir := issue(t, caDir, macA)
	ca := readCert(t, filepath.Join(caDir, CACertFile))
	renewed, err := RenewNode(caDir, dir, ca.NotAfter.Add(-365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !renewed.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", renewed.NotAfter, ca.NotAfter)
	}
	if _, err := RenewNode(caDir, dir, ca.NotAfter.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("RenewNode after the CA expired = %v, want an error saying it expired", err)
	}
}

// Renewal: only this CA's own, unrevoked members with their own key are
// renewed; node.crt is left alone otherwise.
func TestRenewNodeRefuses(t *testing.T) {
	ours, theirs := initCA(t), initCA(t)
	foreign := issue(t, theirs, macA)
	checkRefused := func(name, caDir, nodeDir, want string) {
		t.Helper()
		before, _ := os.ReadFile(filepath.Join(nodeDir, NodeCertFile))
		_, err := RenewNode(caDir, nodeDir, time.Now())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: RenewNode = %v, want an error saying %q", name, err, want)
		}
		if after, _ := os.ReadFile(filepath.Join(nodeDir, NodeCertFile)); !bytes.Equal(before, after) {
			t.Errorf("%s: node.crt changed", name)
		}
	}
	checkRefused("another CA's member", ours, foreign, "not issued by the CA")
	if entries, _ := os.ReadDir(filepath.Join(ours, IssuedDir)); len(entries) != 0 {
		t.Errorf("a refused renewal left %d records", len(entries))
	}

	revoked := issue(t, ours, macB)
	if _, err := Revoke(ours, []string{macB.String()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	checkRefused("a revoked member", ours, revoked, "was revoked")

	// node.key of another member.
	mixed := issue(t, ours, macC)
	key, _ := os.ReadFile(filepath.Join(issue(t, ours, macA), NodeKeyFile))
	os.WriteFile(filepath.Join(mixed, NodeKeyFile), key, 0o600)
	checkRefused("a key of another member", ours, mixed, "does not match")

	checkRefused("an empty directory", ours, t.TempDir(), "node certificate")
}
