package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/netns"
)

// TestSampleConfigStartsANode runs `invpn run -c` on the shipped sample
// config (cmd/invpn/invpn.conf.sample), with only its paths pointed at a
// fresh CA and node certificate, its seed list emptied (its addresses are
// documentation examples) and its TAP name made unique, inside a network
// namespace of its own. The daemon must start, bring up the TAP with the
// sample's addresses, answer `invpn status`, and exit 0 on SIGTERM.
func TestSampleConfigStartsANode(t *testing.T) {
	e2eSkip(t)
	dir := t.TempDir()
	bin := buildInvpn(t, dir)
	if out, err := runCmd(bin, "ca", "init", "--dir", filepath.Join(dir, "ca")); err != nil {
		t.Fatalf("ca init: %v\n%s", err, out)
	}
	if out, err := runCmd(bin, "cert", "issue", "--ca", filepath.Join(dir, "ca"), "--mac", "02:50:56:00:00:01", "--out", filepath.Join(dir, "node")); err != nil {
		t.Fatalf("cert issue: %v\n%s", err, out)
	}
	sample, err := os.ReadFile("invpn.conf.sample")
	if err != nil {
		t.Fatal(err)
	}
	lab := netns.NewLab(netns.RandomPrefix("ivs"))
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	ns, err := lab.AddNamespace("1")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl.sock")
	conf := string(sample)
	for key, value := range map[string]string{
		"key":    filepath.Join(dir, "node", "node.key"),
		"cert":   filepath.Join(dir, "node", "node.crt"),
		"ca":     filepath.Join(dir, "node", "ca.crt"),
		"cache":  filepath.Join(dir, "cache.json"),
		"init":   "",
		"name":   lab.Prefix() + "t",
		"socket": sock,
	} {
		re := regexp.MustCompile(`(?m)^` + key + ` *=.*$`)
		if !re.MatchString(conf) {
			t.Fatalf("sample has no %q key", key)
		}
		conf = re.ReplaceAllString(conf, key+" = "+value)
	}
	path := filepath.Join(dir, "invpn.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "log")
	p, err := lab.Start("daemon", ns, logPath, bin, "run", "-c", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var status string
	for ctx.Err() == nil {
		if out, err := netns.Exec(ctx, ns, bin, "status", "--socket", sock); err == nil {
			status = out
			break
		}
		select {
		case <-p.Done():
			b, _ := os.ReadFile(logPath)
			t.Fatalf("daemon exited: %v\n%s", p.Err(), b)
		case <-time.After(100 * time.Millisecond): // polling a starting process
		}
	}
	if !strings.Contains(status, "node 02:50:56:00:00:01") {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("status %q\nlog:\n%s", status, b)
	}
	addrs, err := netns.Exec(ctx, ns, "ip", "addr", "show", lab.Prefix()+"t")
	if err != nil || !strings.Contains(addrs, "10.78.0.1/24") || !strings.Contains(addrs, "fd00:78::1/64") || !strings.Contains(addrs, "02:50:56:00:00:01") {
		t.Fatalf("TAP not set up from the sample: %v\n%s", err, addrs)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("daemon did not exit 0 on SIGTERM: %v", err)
	}
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), "msg=stopped") {
		t.Errorf("no clean stop in the log:\n%s", b)
	}
}

// runCmd runs bin with args and returns its combined output.
func runCmd(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}
