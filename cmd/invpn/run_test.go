package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Usage: invpn run -c FILE", "SIGHUP", "CAP_NET_ADMIN"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, errOut.String())
		}
	}
}

func TestRunNoConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"run"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "-c FILE is required") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

// A bad configuration file is reported with its file, section and key,
// before anything is opened.
func TestRunBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(path, []byte("[ssl]\nkey = k\ncert = c\nca = a\n[network]\nport = seventy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"run", "-c", path}, &out, &errOut)
	if code == 0 {
		t.Fatal("exit 0 with a bad config")
	}
	if want := path + ": [network] port: "; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q lacks %q", errOut.String(), want)
	}
}

// Missing [ssl] files are reported naming the section, before the TAP
// device is opened.
func TestRunMissingCert(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "invpn.conf")
	if err := os.WriteFile(path, []byte("[ssl]\nkey = node.key\ncert = node.crt\nca = ca.crt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "-c", path}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "[ssl] cert, key") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
