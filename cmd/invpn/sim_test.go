package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimDefaultScenario(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"sim"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	for _, want := range []string{
		"scenario  three-site WAN (wan-3site.yaml)",
		"seed      1   nodes 24   simulated 2m0s",
		"converged in ",
		"failover  3 faults: p50 ",
		"cut n3-n9",
		"frames    ",
		"control   ",
		"ok    wan-3site.yaml:44 every pair reconnected within 1s of each cut",
		"ok    wan-3site.yaml:48 health traceroute exact",
		"speed     ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Errorf("an expectation failed:\n%s", out.String())
	}
}

func TestSimSameSeedSameReport(t *testing.T) {
	hash := func(seed string) string {
		var out, errOut bytes.Buffer
		if code := run([]string{"sim", "--json", "--seed", seed}, &out, &errOut); code != 0 && code != 1 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		var r struct {
			Hash string `json:"trace_hash"`
			Seed uint64 `json:"seed"`
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("--json output: %v\n%s", err, out.String())
		}
		return r.Hash
	}
	a, b, c := hash("9"), hash("9"), hash("10")
	if a != b || a == c || a == "" {
		t.Fatalf("trace hashes: seed 9 %s and %s, seed 10 %s", a, b, c)
	}
}

func TestSimSweepCSVAndPlot(t *testing.T) {
	dir := t.TempDir()
	svg := filepath.Join(dir, "failover.svg")
	var out, errOut bytes.Buffer
	code := run([]string{"sim", "--csv", "--sweep", "announce=2s,5s", "--plot", svg}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "run,seed,nodes") || !strings.HasPrefix(lines[1], "announce=2s,1,24,") {
		t.Fatalf("CSV:\n%s", out.String())
	}
	b, err := os.ReadFile(svg)
	if err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Fatalf("plot: %v, %d bytes", err, len(b))
	}
	out.Reset()
	if code := run([]string{"sim", "--sweep", "max_links=2,8"}, &out, &errOut); code != 0 && code != 1 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "max_links") || !strings.Contains(out.String(), "failover p50") {
		t.Fatalf("sweep table:\n%s", out.String())
	}
}

func TestSimMalformedScenario(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	src := "name: bad\nduration: 10s\ntopology:\n  kind: ring\n  nodes: 5\nfaults:\n  - cut: n1-n9\n    at: 2s\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"sim", file}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := file + ":7:10: field faults[0].cut: node n9 does not exist"
	if !strings.Contains(errOut.String(), want) {
		t.Fatalf("stderr %q, want it to contain %q", errOut.String(), want)
	}
}

func TestSimHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"sim", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Usage: invpn sim", "-sweep", "-plot", "ring-300.yaml"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, errOut.String())
		}
	}
}
