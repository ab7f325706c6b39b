package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// serialOf returns the serial of the node certificate in nodeDir.
func serialOf(t *testing.T, nodeDir string) *big.Int {
	t.Helper()
	return readCert(t, filepath.Join(nodeDir, NodeCertFile)).SerialNumber
}

// readCRLFile parses caDir/crl.pem and checks it is signed by caDir's CA.
func readCRLFile(t *testing.T, caDir string) *x509.RevocationList {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(caDir, CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "X509 CRL" {
		t.Fatalf("crl.pem: want an X509 CRL PEM block, got %v", b)
	}
	list, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := list.CheckSignatureFrom(readCert(t, filepath.Join(caDir, CACertFile))); err != nil {
		t.Errorf("crl.pem does not verify against ca.crt: %v", err)
	}
	return list
}

// crlSerials returns the serials list revokes, as SerialString writes them.
func crlSerials(list *x509.RevocationList) []string {
	var s []string
	for _, e := range list.RevokedCertificateEntries {
		s = append(s, SerialString(e.SerialNumber))
	}
	return s
}

func TestIssueNodeRecords(t *testing.T) {
	caDir := initCA(t)
	dir := issue(t, caDir, macA)
	record := filepath.Join(caDir, IssuedDir, SerialString(serialOf(t, dir))+".crt")
	got, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("the CA keeps no record of the issued certificate: %v", err)
	}
	want, _ := os.ReadFile(filepath.Join(dir, NodeCertFile))
	if !bytes.Equal(got, want) {
		t.Error("the record differs from the node's node.crt")
	}
	checkMode(t, filepath.Join(caDir, IssuedDir), 0o700)
	if fi, _ := os.Stat(record); fi.Mode().Perm() != 0o644 {
		t.Errorf("record mode %v, want 0644", fi.Mode().Perm())
	}
	// A refused issue leaves no record.
	if err := IssueNode(caDir, macA, dir); err == nil {
		t.Fatal("IssueNode over existing node files succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Join(caDir, IssuedDir)); len(entries) != 1 {
		t.Errorf("%d records after a refused issue, want 1", len(entries))
	}
}

// Revocation: the CRL grows by the new serials with its number one higher
// each time, and stays as it is when nothing is new.
func TestRevoke(t *testing.T) {
	caDir := initCA(t)
	a1, a2, b := issue(t, caDir, macA), issue(t, caDir, macA), issue(t, caDir, macB)
	sa1, sa2, sb := SerialString(serialOf(t, a1)), SerialString(serialOf(t, a2)), SerialString(serialOf(t, b))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	rev, err := Revoke(caDir, []string{macA.String()}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !rev.Written || rev.Number != 1 || rev.Entries != 2 || len(rev.Certs) != 2 {
		t.Errorf("revoke A: written %v, number %d, %d entries, %d certs; want true, 1, 2, 2", rev.Written, rev.Number, rev.Entries, len(rev.Certs))
	}
	for _, c := range rev.Certs {
		if c.Already || !c.InRecords || c.MAC != macA.String() || !c.RevokedAt.Equal(now) {
			t.Errorf("revoke A: %+v, want newly revoked, in the records, MAC %s, at %v", c, macA, now)
		}
	}
	list := readCRLFile(t, caDir)
	if list.Number.Int64() != 1 || !sameSet(crlSerials(list), []string{sa1, sa2}) {
		t.Errorf("CRL 1: number %v, serials %v; want 1, [%s %s]", list.Number, crlSerials(list), sa1, sa2)
	}
	if !list.ThisUpdate.Equal(now) {
		t.Errorf("CRL 1: ThisUpdate %v, want %v", list.ThisUpdate, now)
	}
	if ca := readCert(t, filepath.Join(caDir, CACertFile)); !list.NextUpdate.Equal(ca.NotAfter.Truncate(time.Second)) {
		t.Errorf("CRL 1: NextUpdate %v, want the CA's NotAfter %v", list.NextUpdate, ca.NotAfter)
	}

	rev, err = Revoke(caDir, []string{sb}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Number != 2 || rev.Entries != 3 || len(rev.Certs) != 1 || rev.Certs[0].MAC != macB.String() || !rev.Certs[0].InRecords {
		t.Errorf("revoke B by serial: number %d, %d entries, certs %+v; want 2, 3, B in the records", rev.Number, rev.Entries, rev.Certs)
	}
	list = readCRLFile(t, caDir)
	if list.Number.Int64() != 2 || !sameSet(crlSerials(list), []string{sa1, sa2, sb}) {
		t.Errorf("CRL 2: number %v, serials %v; want 2 and all three", list.Number, crlSerials(list))
	}
	for _, e := range list.RevokedCertificateEntries {
		if want := now.Add(time.Hour); SerialString(e.SerialNumber) == sb && !e.RevocationTime.Equal(want) {
			t.Errorf("CRL 2: B revoked at %v, want %v", e.RevocationTime, want)
		}
		if want := now; SerialString(e.SerialNumber) == sa1 && !e.RevocationTime.Equal(want) {
			t.Errorf("CRL 2: A's first certificate revoked at %v, want its first revocation %v", e.RevocationTime, want)
		}
	}

	before, _ := os.ReadFile(filepath.Join(caDir, CRLFile))
	rev, err = Revoke(caDir, []string{macA.String()}, now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Written || rev.Number != 2 || rev.Entries != 3 || len(rev.Certs) != 2 || !rev.Certs[0].Already || !rev.Certs[1].Already {
		t.Errorf("revoke A again: written %v, number %d, %d entries, certs %+v; want nothing new at number 2", rev.Written, rev.Number, rev.Entries, rev.Certs)
	}
	if !rev.Certs[0].RevokedAt.Equal(now) {
		t.Errorf("revoke A again: RevokedAt %v, want the first revocation %v", rev.Certs[0].RevokedAt, now)
	}
	if after, _ := os.ReadFile(filepath.Join(caDir, CRLFile)); !bytes.Equal(before, after) {
		t.Error("revoking nothing new rewrote crl.pem")
	}

	// A serial the records lack (made with openssl, say) is revoked too.
	rev, err = Revoke(caDir, []string{"0x00:AB:CD"}, now.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Number != 3 || len(rev.Certs) != 1 || rev.Certs[0].InRecords || rev.Certs[0].MAC != "" || SerialString(rev.Certs[0].Serial) != "abcd" {
		t.Errorf("revoke an unknown serial: number %d, certs %+v; want 3, abcd not in the records", rev.Number, rev.Certs)
	}
	if got := crlSerials(readCRLFile(t, caDir)); !sameSet(got, []string{sa1, sa2, sb, "abcd"}) {
		t.Errorf("CRL 3 serials %v, want A's two, B's and abcd", got)
	}
	if _, err := os.Stat(filepath.Join(caDir, CRLFile+".tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("crl.pem.tmp left behind: %v", err)
	}
}

func TestRevokeRefusesBadTargets(t *testing.T) {
	caDir := initCA(t)
	issue(t, caDir, macA)
	for _, tc := range []struct {
		targets []string
		want    string
	}{
		{[]string{macB.String()}, "give its serial instead"},
		{[]string{"not-a-serial"}, "neither a MAC"},
		{[]string{macA.String(), "-5"}, "negative"}, // nothing is written for A either
		{nil, "no target"},
	} {
		_, err := Revoke(caDir, tc.targets, time.Now())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Revoke(%q) = %v, want an error saying %q", tc.targets, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(caDir, CRLFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed Revoke wrote crl.pem: %v", err)
	}
}

// Revocation: a crl.pem the CA did not sign is not built upon.
func TestRevokeRefusesForeignCRL(t *testing.T) {
	ours, theirs := initCA(t), initCA(t)
	issue(t, ours, macA)
	issue(t, theirs, macB)
	if _, err := Revoke(theirs, []string{macB.String()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	foreign, _ := os.ReadFile(filepath.Join(theirs, CRLFile))
	if err := os.WriteFile(filepath.Join(ours, CRLFile), foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Revoke(ours, []string{macA.String()}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "not signed by the CA") {
		t.Errorf("Revoke over another CA's crl.pem = %v, want an error saying it is not signed by the CA", err)
	}
	if after, _ := os.ReadFile(filepath.Join(ours, CRLFile)); !bytes.Equal(after, foreign) {
		t.Error("Revoke replaced the foreign crl.pem")
	}
	if _, err := List(ours); err == nil {
		t.Error("List with another CA's crl.pem succeeded")
	}
}

// writeTestCA writes a CA certificate made from tmpl, self-signed by a new
// P-256 key, and its key into a new directory, and returns it.
func writeTestCA(t *testing.T, tmpl *x509.Certificate) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeKeyAndCert(filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile), key, der); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Revocation: a CA whose key usages leave out CRL signing cannot revoke,
// and says why.
func TestRevokeNeedsCRLSign(t *testing.T) {
	caDir := writeTestCA(t, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "CA without cRLSign"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	})
	_, err := Revoke(caDir, []string{"1a"}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "cRLSign") {
		t.Errorf("Revoke with a CA lacking cRLSign = %v, want an error naming cRLSign", err)
	}
}

// Revocation: a CA certificate without key usages (openssl's default)
// allows every usage, CRL signing included.
func TestRevokeCAWithoutKeyUsage(t *testing.T) {
	caDir := writeTestCA(t, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "CA without key usages"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	})
	if _, err := Revoke(caDir, []string{"1a"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := crlSerials(readCRLFile(t, caDir)); !sameSet(got, []string{"1a"}) {
		t.Errorf("CRL serials %v, want [1a]", got)
	}
}

// Revocation: one CRL travels in one message, so Revoke refuses a list
// that would not fit and writes nothing.
func TestRevokeRefusesOversizedCRL(t *testing.T) {
	if MaxCRLSize > wire.MaxRevocationList {
		t.Fatalf("MaxCRLSize %d exceeds the %d bytes of a 0x8C message", MaxCRLSize, wire.MaxRevocationList)
	}
	caDir := initCA(t)
	targets := make([]string, 2500) // about 40 bytes each
	for i := range targets {
		targets[i] = SerialString(randomSerial())
	}
	_, err := Revoke(caDir, targets, time.Now())
	if err == nil || !strings.Contains(err.Error(), "2500 entries") || !strings.Contains(err.Error(), "65000") {
		t.Errorf("Revoke of 2500 serials = %v, want an error giving the 2500 entries and the 65000-byte limit", err)
	}
	if _, err := os.Stat(filepath.Join(caDir, CRLFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an oversized CRL was written: %v", err)
	}
}

// writeCRLNumbered signs a CRL with the CA in caDir numbered number,
// revoking the given entries, and writes it as caDir/crl.pem.
func writeCRLNumbered(t *testing.T, caDir string, number *big.Int, entries []x509.RevocationListEntry) {
	t.Helper()
	_, caCert, caKey, err := loadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: number, ThisUpdate: time.Now(), NextUpdate: caCert.NotAfter, RevokedCertificateEntries: entries,
	}, caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeCRL(caDir, der); err != nil {
		t.Fatal(err)
	}
}

// Revocation: the CRL number is carried in 64 bits.
func TestRevokeCRLNumberLimit(t *testing.T) {
	for _, tc := range []struct {
		number *big.Int
		want   string
	}{
		{new(big.Int).SetUint64(math.MaxUint64), "last a 64-bit number holds"},
		{new(big.Int).Lsh(big.NewInt(1), 64), "beyond the 64 bits"},
	} {
		caDir := initCA(t)
		writeCRLNumbered(t, caDir, tc.number, nil)
		_, err := Revoke(caDir, []string{"1a"}, time.Now())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Revoke after CRL number %v = %v, want an error saying %q", tc.number, err, tc.want)
		}
	}
}

// Revocation: entries of an earlier list keep their reason and time.
func TestRevokeKeepsEarlierEntries(t *testing.T) {
	caDir := initCA(t)
	earlier := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	writeCRLNumbered(t, caDir, big.NewInt(7), []x509.RevocationListEntry{
		{SerialNumber: big.NewInt(0x1a), RevocationTime: earlier, ReasonCode: 1}, // keyCompromise
	})
	rev, err := Revoke(caDir, []string{"2b"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rev.Number != 8 {
		t.Errorf("number %d after list 7, want 8", rev.Number)
	}
	list := readCRLFile(t, caDir)
	if len(list.RevokedCertificateEntries) != 2 {
		t.Fatalf("%d entries, want 2", len(list.RevokedCertificateEntries))
	}
	if e := list.RevokedCertificateEntries[0]; e.SerialNumber.Int64() != 0x1a || e.ReasonCode != 1 || !e.RevocationTime.Equal(earlier) {
		t.Errorf("earlier entry became %v reason %d at %v, want 1a reason 1 at %v", e.SerialNumber, e.ReasonCode, e.RevocationTime, earlier)
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
