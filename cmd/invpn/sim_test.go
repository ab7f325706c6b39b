package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata (go test ./cmd/invpn -run Sim -update)")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/invpn -run Sim -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept it):\n%s", file, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the lines of want and got that differ, in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// speedLine is the only line of the text report that depends on the
// machine: wall time and rates.
var speedLine = regexp.MustCompile(`(?m)^speed     .*$`)

// maskWall replaces the wall_s column of a CSV summary, the only cell
// that depends on the machine.
func maskWall(t *testing.T, b []byte) []byte {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, b)
	}
	col := -1
	for i, h := range recs[0] {
		if h == "wall_s" {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("CSV has no wall_s column:\n%s", b)
	}
	for _, r := range recs[1:] {
		r[col] = "WALL"
	}
	var out bytes.Buffer
	cw := csv.NewWriter(&out)
	if err := cw.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// simOutput runs invpn sim with args and returns its standard output; the
// exit status must be want.
func simOutput(t *testing.T, want int, args ...string) []byte {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(append([]string{"sim"}, args...), &out, &errOut); code != want {
		t.Fatalf("invpn sim %v: exit %d, want %d: %s\n%s", args, code, want, errOut.String(), out.String())
	}
	return out.Bytes()
}

// TestSimDefaultScenario: the text report of the built-in scenario, all
// but its speed line, is the golden file.
func TestSimDefaultScenario(t *testing.T) {
	out := simOutput(t, 0)
	if !speedLine.Match(out) {
		t.Errorf("no speed line:\n%s", out)
	}
	golden(t, "sim-wan-3site.txt", speedLine.ReplaceAll(out, []byte("speed     (wall time masked)")))
}

func TestSimJSON(t *testing.T) {
	out := simOutput(t, 0, "--json")
	var r struct {
		Hash string `json:"trace_hash"`
		OK   bool   `json:"ok"`
	}
	if err := json.Unmarshal(out, &r); err != nil || !r.OK || r.Hash == "" {
		t.Fatalf("--json output (%v): %+v\n%s", err, r, out)
	}
	golden(t, "sim-wan-3site.json", out)
}

func TestSimSameSeedSameReport(t *testing.T) {
	hash := func(seed string) string {
		var out, errOut bytes.Buffer
		if code := run([]string{"sim", "--json", "--seed", seed}, &out, &errOut); code != 0 && code != 1 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		var r struct {
			Hash string `json:"trace_hash"`
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

// TestSimCSV: the CSV summary of a sweep and the CSV of faults (the
// input of cmd/invpn-plot, whose test reads these golden files) are the
// golden files, the wall time masked.
func TestSimCSV(t *testing.T) {
	golden(t, "sim-sweep-announce.csv", maskWall(t, simOutput(t, 0, "--csv", "--sweep", "announce=2s,5s")))
	golden(t, "sim-faults.csv", simOutput(t, 0, "--csv", "--faults"))
}

func TestSimSweepTable(t *testing.T) {
	golden(t, "sim-sweep-max_links.txt", simOutput(t, 0, "--sweep", "max_links=2,8"))
}

// TestSimPlotMoved: --plot is gone from the daemon binary; using it says
// where it went.
func TestSimPlotMoved(t *testing.T) {
	for _, args := range [][]string{{"--plot", "x.svg"}, {"-plot=x.svg"}, {"wan-3site.yaml", "--plot", "x.svg"}} {
		var out, errOut bytes.Buffer
		if code := run(append([]string{"sim"}, args...), &out, &errOut); code != 2 {
			t.Errorf("invpn sim %v: exit %d, want 2", args, code)
		}
		if !strings.Contains(errOut.String(), "invpn-plot") || !strings.Contains(errOut.String(), "--csv --faults") {
			t.Errorf("invpn sim %v: stderr %q does not name invpn-plot and --csv --faults", args, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"sim", "--faults"}, &out, &errOut); code != 2 {
		t.Errorf("invpn sim --faults without --csv: exit %d, want 2", code)
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
	for _, want := range []string{"Usage: invpn sim", "-sweep", "-faults", "invpn-plot", "ring-300.yaml"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, errOut.String())
		}
	}
	if regexp.MustCompile(`(?m)^\s+-plot\b`).MatchString(errOut.String()) {
		t.Errorf("help still offers -plot:\n%s", errOut.String())
	}
}
