package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/transport/tlstransport"
)

func TestCAInitAndCertIssue(t *testing.T) {
	dir := t.TempDir()
	caDir, nodeDir := filepath.Join(dir, "ca"), filepath.Join(dir, "node1")
	var out, errOut bytes.Buffer
	if code := run([]string{"ca", "init", "--dir", caDir}, &out, &errOut); code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, errOut.String())
	}
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		if _, err := os.Stat(filepath.Join(caDir, f)); err != nil {
			t.Error(err)
		}
	}
	// A second init refuses to replace the group CA.
	errOut.Reset()
	if code := run([]string{"ca", "init", "--dir", caDir}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "exists") {
		t.Errorf("second ca init: exit %d, stderr %q", code, errOut.String())
	}

	errOut.Reset()
	if code := run([]string{"cert", "issue", "--ca", caDir, "--mac", "02:50:56:00:00:07", "--out", nodeDir}, &out, &errOut); code != 0 {
		t.Fatalf("cert issue: exit %d: %s", code, errOut.String())
	}
	cert, err := pki.LoadKeyPair(filepath.Join(nodeDir, pki.NodeCertFile), filepath.Join(nodeDir, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if mac, err := tlstransport.MACFromCert(cert.Leaf); err != nil || mac.String() != "02:50:56:00:00:07" {
		t.Errorf("certificate names %v (%v)", mac, err)
	}
	if _, err := pki.LoadCertPool(filepath.Join(nodeDir, pki.CACertFile)); err != nil {
		t.Error(err)
	}

	// random picks a locally administered unicast MAC.
	out.Reset()
	randDir := filepath.Join(dir, "node2")
	if code := run([]string{"cert", "issue", "--ca", caDir, "--mac", "random", "--out", randDir}, &out, &errOut); code != 0 {
		t.Fatalf("cert issue random: exit %d: %s", code, errOut.String())
	}
	cert, err = pki.LoadKeyPair(filepath.Join(randDir, pki.NodeCertFile), filepath.Join(randDir, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	mac, err := tlstransport.MACFromCert(cert.Leaf)
	if err != nil || mac[0]&0x03 != 0x02 || !strings.Contains(out.String(), mac.String()) {
		t.Errorf("random MAC %v (%v), output %q", mac, err, out.String())
	}
}

func TestCertIssueErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cert", "issue", "--ca", dir, "--mac", "nonsense", "--out", dir}, 1, "--mac \"nonsense\""},
		{[]string{"cert", "issue", "--ca", dir, "--mac", "03:00:00:00:00:01", "--out", dir}, 1, "not a unicast MAC"},
		{[]string{"cert", "issue", "--ca", dir, "--mac", "random", "--out", filepath.Join(dir, "x")}, 1, "ca"},
		{[]string{"cert", "issue", "--mac", "random"}, 2, "--ca, --mac and --out are required"},
		{[]string{"cert"}, 2, "Usage: invpn cert issue"},
		{[]string{"cert", "--help"}, 0, "Usage: invpn cert issue"},
		{[]string{"cert", "issue", "-h"}, 0, "Usage: invpn cert issue"},
		{[]string{"cert", "-h"}, 0, "Usage: invpn cert renew"},
		{[]string{"cert", "bogus"}, 2, `unknown subcommand "bogus"`},
		{[]string{"cert", "revoke", "-h"}, 0, "Usage: invpn cert revoke --ca DIR TARGET..."},
		{[]string{"cert", "revoke", "--ca", dir}, 2, "--ca and at least one TARGET are required"},
		{[]string{"cert", "revoke", "--ca", dir, "1a"}, 1, "ca.crt"},
		{[]string{"cert", "list", "-h"}, 0, "Usage: invpn cert list --ca DIR"},
		{[]string{"cert", "list"}, 2, "--ca is required"},
		{[]string{"cert", "list", "--ca", dir, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"cert", "renew", "--help"}, 0, "Usage: invpn cert renew --ca DIR --out DIR2"},
		{[]string{"cert", "renew", "--ca", dir}, 2, "--ca and --out are required"},
		{[]string{"ca"}, 2, "Usage: invpn ca init"},
		{[]string{"ca", "init", "--help"}, 0, "Usage: invpn ca init"},
		{[]string{"ca", "init"}, 2, "--dir is required"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}

// runOK runs the command args and returns its output, failing the test
// when it does not exit 0.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("%q: exit %d: %s", args, code, errOut.String())
	}
	return out.String()
}

// nodeSerial returns the serial of the certificate in nodeDir, as the
// cert subcommands print it.
func nodeSerial(t *testing.T, nodeDir string) string {
	t.Helper()
	c, err := pki.LoadKeyPair(filepath.Join(nodeDir, pki.NodeCertFile), filepath.Join(nodeDir, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return pki.SerialString(c.Leaf.SerialNumber)
}

// listRows runs cert list and returns its rows after the header, each as
// its fields.
func listRows(t *testing.T, caDir string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(runOK(t, "cert", "list", "--ca", caDir)), "\n")
	if !strings.HasPrefix(lines[0], "SERIAL") || !strings.Contains(lines[0], "NOT AFTER") || !strings.Contains(lines[0], "STATUS") {
		t.Fatalf("cert list header %q", lines[0])
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

// The certificate lifecycle at the CA: issue, list, revoke by MAC and by
// serial, renew.
func TestCertRevokeListRenew(t *testing.T) {
	dir := t.TempDir()
	caDir, dirA, dirB := filepath.Join(dir, "ca"), filepath.Join(dir, "a"), filepath.Join(dir, "b")
	const macA, macB = "02:50:56:00:00:01", "02:50:56:00:00:02"
	runOK(t, "ca", "init", "--dir", caDir)
	runOK(t, "cert", "issue", "--ca", caDir, "--mac", macA, "--out", dirA)
	runOK(t, "cert", "issue", "--ca", caDir, "--mac", macB, "--out", dirB)
	serialA, serialB := nodeSerial(t, dirA), nodeSerial(t, dirB)

	rows := listRows(t, caDir)
	if len(rows) != 2 || rows[0][0] != serialA || rows[0][1] != macA || rows[0][3] != "valid" || rows[1][1] != macB {
		t.Errorf("cert list after issue: %q, want A then B, valid", rows)
	}

	crl := filepath.Join(caDir, pki.CRLFile)
	out := runOK(t, "cert", "revoke", "--ca", caDir, macA)
	want := "revoked " + serialA + " (" + macA + ")\n" +
		"wrote " + crl + " (CRL number 1, 1 revoked)\n" +
		"give it to one member as [ssl] crl and send it SIGHUP; the mesh passes it on\n"
	if out != want {
		t.Errorf("cert revoke %s:\n%s\nwant:\n%s", macA, out, want)
	}
	// Flags may follow the targets; a revoked serial is reported, not an error.
	out = runOK(t, "cert", "revoke", serialA, "ab:cd", "--ca", caDir)
	today := time.Now().UTC().Format(time.DateOnly)
	want = "already revoked " + serialA + " (" + macA + ") on " + today + "\n" +
		"revoked abcd (not in the records)\n" +
		"wrote " + crl + " (CRL number 2, 2 revoked)\n"
	if !strings.HasPrefix(out, want) {
		t.Errorf("cert revoke by serial:\n%s\nwant it to start:\n%s", out, want)
	}
	out = runOK(t, "cert", "revoke", "--ca", caDir, macA)
	if !strings.Contains(out, "nothing new to revoke: "+crl+" unchanged (CRL number 2, 2 revoked)") {
		t.Errorf("cert revoke of a revoked MAC:\n%s", out)
	}

	out = runOK(t, "cert", "renew", "--ca", caDir, "--out", dirB)
	newB := nodeSerial(t, dirB)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "renewed "+macB+": "+filepath.Join(dirB, pki.NodeCertFile)+" (serial "+newB+", valid until ") ||
		!strings.HasSuffix(lines[0], "); send the daemon SIGHUP to use it") ||
		!strings.Contains(lines[1], "serial "+serialB+") stays valid") ||
		!strings.HasSuffix(lines[1], "invpn cert revoke --ca "+caDir+" "+serialB) {
		t.Errorf("cert renew:\n%s", out)
	}
	if newB == serialB {
		t.Error("cert renew kept the serial")
	}

	rows = listRows(t, caDir)
	status := map[string]string{}
	for _, r := range rows {
		status[r[0]] = strings.Join(r[3:], " ")
	}
	for serial, want := range map[string]string{serialA: "revoked " + today, serialB: "valid", newB: "valid", "abcd": "revoked " + today} {
		if status[serial] != want {
			t.Errorf("cert list: %s is %q, want %q (rows %q)", serial, status[serial], want, rows)
		}
	}
	if len(rows) != 5 || rows[3][1] != "-" || rows[3][0] != "abcd" {
		t.Errorf("cert list: rows %q, want A, B twice, abcd with - for its MAC, and the note", rows)
	}
}
