package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlotFromSimCSV draws an SVG from each CSV form invpn sim writes:
// its golden files (cmd/invpn/testdata), so that the two commands agree
// on the format.
func TestPlotFromSimCSV(t *testing.T) {
	for _, c := range []struct{ csv, title string }{
		{"sim-faults.csv", "failover: three-site WAN"},
		{"sim-sweep-announce.csv", "failover per run"},
		{"sim-sweep-scale.csv", "scale: nodes × refresh"},
	} {
		t.Run(c.csv, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "plot.svg")
			var stdout, stderr bytes.Buffer
			if code := run([]string{"-o", out, filepath.Join("..", "invpn", "testdata", c.csv)}, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			svg, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(bytes.TrimSpace(svg), []byte("<?xml")) || !bytes.Contains(svg, []byte("<svg")) ||
				!bytes.Contains(svg, []byte(c.title)) {
				t.Fatalf("not an SVG titled %q (%d bytes):\n%.400s", c.title, len(svg), svg)
			}
		})
	}
}

// TestPlotStdinStdout reads the CSV from standard input and writes the
// SVG to standard output, with the title given.
func TestPlotStdinStdout(t *testing.T) {
	in := "run,kind,desc,at_s,recovered,recovery_s,broken_pairs\n" +
		"a,cut,cut n1-n2,10.000,true,0.500,4\n" +
		"a,cut,cut n2-n3,20.000,false,0.000,4\n" +
		"b,crash,crash n4,10.000,true,1.250,12\n"
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-o", "-", "-title", "two runs"}, strings.NewReader(in), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !bytes.Contains(stdout.Bytes(), []byte("<svg")) || !bytes.Contains(stdout.Bytes(), []byte("two runs")) {
		t.Fatalf("no SVG titled \"two runs\" on standard output:\n%.400s", stdout.String())
	}
}

func TestPlotErrors(t *testing.T) {
	for _, c := range []struct {
		name, in string
		args     []string
		code     int
		msg      string
	}{
		{"unknown columns", "a,b\n1,2\n", []string{"-o", "-"}, 1, "want the CSV of invpn sim"},
		{"nothing recovered", "run,at_s,recovered,recovery_s\nx,1.0,false,0\n", []string{"-o", "-"}, 1, "no recovered fault"},
		{"bad number", "run,failover_p50_s,failover_p95_s,failover_max_s\nx,fast,1,1\n", []string{"-o", "-"}, 1, "row 2, column failover_p50_s"},
		{"not svg", "", []string{"-o", "plot.png"}, 2, "must end in .svg"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(c.args, strings.NewReader(c.in), &stdout, &stderr); code != c.code {
				t.Fatalf("exit %d, want %d: %s", code, c.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.msg) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), c.msg)
			}
		})
	}
}

// TestPlotScale: a sweep over nodes and another parameter gives one
// panel per metric, the heap's only when it was measured, one line per
// value of the other parameter (a legend entry each), the seeds of a
// variant averaged; runs that did not finish are left out.
func TestPlotScale(t *testing.T) {
	head := "run,seed,nodes,converge_s,failover_p95_s,control_msgs_per_node_s,control_bytes_per_node_s,routes_per_node,heap_bytes_per_node,error,sweep_nodes,sweep_refresh\n"
	rows := "nodes=10 refresh=0,1,10,0.1,0.8,30,900,9.0,,,10,0\n" +
		"nodes=10 refresh=0,2,10,0.3,0.8,32,950,9.0,,,10,0\n" +
		"nodes=10 refresh=60s,1,10,0.1,0.8,12,300,9.0,,,10,60s\n" +
		"nodes=100 refresh=0,1,100,0.2,0.9,90,4000,99.0,,,100,0\n" +
		"nodes=100 refresh=60s,1,100,0.2,0.9,20,700,99.0,,,100,60s\n" +
		"nodes=100 refresh=60s,2,100,,,,,,,panic: boom,100,60s\n"
	svg := plotString(t, head+rows)
	for _, want := range []string{"scale: nodes × refresh", "control msgs/node/s", "control bytes/node/s", "routes per node",
		"convergence (s)", "failover p95 (s)", "refresh=0", "refresh=60s", ">100<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if strings.Contains(svg, "heap bytes per node") {
		t.Errorf("SVG has a heap panel, but no heap was measured")
	}
	withHeap := strings.ReplaceAll(head+rows, "9.0,,,", "9.0,5000,,")
	if svg := plotString(t, withHeap); !strings.Contains(svg, "heap bytes per node") {
		t.Errorf("SVG lacks the heap panel")
	}
	three := strings.Replace(head, "sweep_refresh", "sweep_refresh,sweep_degree", 1) + "a,1,10,0.1,0.8,30,900,9.0,,,10,0,4\n"
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-o", "-"}, strings.NewReader(three), &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "swept refresh and degree besides nodes") {
		t.Errorf("three swept parameters: exit %d, %s", code, stderr.String())
	}
}

// plotString draws csv to standard output and returns the SVG.
func plotString(t *testing.T, csv string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-o", "-"}, strings.NewReader(csv), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !bytes.Contains(stdout.Bytes(), []byte("<svg")) {
		t.Fatalf("not an SVG:\n%.400s", stdout.String())
	}
	return stdout.String()
}
