package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
