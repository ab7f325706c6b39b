package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool returns the path of a command the test cannot run without: it
// skips, or fails when INVPN_REQUIRE_E2E=1 (as .ci/run sets).
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("INVPN_REQUIRE_E2E") == "1" {
		t.Fatalf("%s is not installed (apt-get install %s) (INVPN_REQUIRE_E2E=1)", name, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s); set INVPN_REQUIRE_E2E=1 to make this an error", name, pkg)
	return ""
}

// TestDebianPackageInstalls: package/build.sh builds a .deb that dpkg -i
// installs into an empty root with the binary (which runs), the unit, the
// sample configuration as a root-only conffile in a root-only /etc/invpn,
// and the reference of every command; reinstalling keeps an edited
// configuration.
func TestDebianPackageInstalls(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the package")
	}
	dpkg := needTool(t, "dpkg", "dpkg")
	out := t.TempDir()
	build := exec.Command("bash", "package/build.sh", out)
	build.Env = append(os.Environ(), "INVPN_VERSION=1.2.3-test")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("package/build.sh: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "invpn_1.2.3-test_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("no invpn_1.2.3-test_amd64.deb in %s", out)
	}
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	install := func() {
		t.Helper()
		if b, err := exec.Command(dpkg, "--root="+root, "--log=/dev/null", "-i", debs[0]).CombinedOutput(); err != nil {
			t.Fatalf("dpkg -i: %v\n%s", err, b)
		}
	}
	install()

	same := func(installed, source string) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(root, installed))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(source)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", installed, source)
		}
	}
	same("lib/systemd/system/invpn.service", "invpn.service")
	same("etc/invpn/invpn.conf", "invpn.conf.sample")
	same("usr/share/doc/invpn/README.md", "../../README.md")
	copyright, err := os.ReadFile(filepath.Join(root, "usr/share/doc/invpn/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	for _, source := range []string{"../../LICENSE", "internal/meshmap/static/vendor/cytoscape.LICENSE"} {
		if want, err := os.ReadFile(source); err != nil || !bytes.Contains(copyright, want) {
			t.Errorf("copyright lacks %s (%v)", source, err)
		}
	}
	for path, mode := range map[string]os.FileMode{"etc/invpn": os.ModeDir | 0o700, "etc/invpn/invpn.conf": 0o600, "usr/bin/invpn": 0o755} {
		if fi, err := os.Stat(filepath.Join(root, path)); err != nil || fi.Mode() != mode {
			t.Errorf("/%s: %v, %v; want mode %v", path, fi.Mode(), err, mode)
		}
	}
	if b, err := exec.Command(filepath.Join(root, "usr/bin/invpn"), "version").CombinedOutput(); err != nil || string(b) != "invpn 1.2.3-test\n" {
		t.Errorf("installed invpn version: %q, %v", b, err)
	}
	ref, err := os.ReadFile(filepath.Join(root, "usr/share/doc/invpn/reference.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage: invpn run -c FILE", "Usage: invpn sim", "Usage: invpn status", "Usage: invpn health"} {
		if !bytes.Contains(ref, []byte(want)) {
			t.Errorf("reference.txt has no %q", want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/lib/dpkg/info/invpn.conffiles")); strings.TrimSpace(string(b)) != "/etc/invpn/invpn.conf" {
		t.Errorf("conffiles %q, want /etc/invpn/invpn.conf", b)
	}

	// An operator's configuration survives a reinstall (an upgrade).
	conf := filepath.Join(root, "etc/invpn/invpn.conf")
	if err := os.WriteFile(conf, []byte("# edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	install()
	if b, _ := os.ReadFile(conf); string(b) != "# edited\n" {
		t.Errorf("reinstall replaced the edited configuration with %d bytes", len(b))
	}
}
