// Command invpn-plot draws the CSV that `invpn sim --csv` writes as an
// SVG plot. It is a separate command so that the daemon binary does not
// link a plotting library.
//
//	invpn sim --csv --faults scenarios/random-200.yaml > faults.csv
//	invpn-plot -o failover.svg faults.csv
//
// Rows of faults (invpn sim --csv --faults) give the recovery time after
// each fault against the time of the fault, one line per run. Rows of
// runs (invpn sim --csv, with or without --sweep) give the failover p50,
// p95 and maximum of each run, one point per run. Rows of a sweep over
// the node count (invpn sim --csv --sweep nodes=... [--sweep PARAM=...])
// give one small panel per metric (control messages and bytes per node
// per second, routes and heap per node, convergence, failover p95)
// against the node count on a log axis, one line per value of the other
// swept parameter, each point the mean over the seeds:
//
//	invpn sim --sweep nodes=100,300,1000 --sweep refresh=0,120s --jobs 1 --csv scenarios/scale.yaml > scale.csv
//	invpn-plot -o scale.svg scale.csv
package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the command with its arguments and streams; it returns the exit
// status: 0, 1 for a failure, 2 for wrong flags.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("invpn-plot", flag.ContinueOnError)
	fset.SetOutput(stderr)
	out := fset.String("o", "failover.svg", "write the plot to `FILE.svg` (- for standard output)")
	title := fset.String("title", "", "the plot's title (default: from the CSV)")
	fset.Usage = func() {
		fmt.Fprintf(stderr, `Usage: invpn-plot [-o FILE.svg] [-title TEXT] [FILE.csv]

Draws the CSV that invpn sim writes as an SVG plot: the recovery after each
fault over time from invpn sim --csv --faults, or each run's failover p50,
p95 and maximum from invpn sim --csv (with or without --sweep). From a
sweep over the node count (invpn sim --csv --sweep nodes=100,300,1000
--sweep refresh=0,120s), one panel per metric against the node count (log
axis), one line per value of the other swept parameter, the seeds of a
variant averaged. Reads standard input when FILE.csv is absent or -.

Flags:
`)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 1 {
		fmt.Fprintf(stderr, "invpn-plot: one CSV file at a time, got %v\n", fset.Args())
		return 2
	}
	if *out != "-" && !strings.HasSuffix(strings.ToLower(*out), ".svg") {
		fmt.Fprintf(stderr, "invpn-plot: -o %s: the file name must end in .svg\n", *out)
		return 2
	}
	name, in := "standard input", stdin
	if fset.NArg() == 1 && fset.Arg(0) != "-" {
		name = fset.Arg(0)
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "invpn-plot: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	svg, err := plotCSV(in, *title)
	if err != nil {
		fmt.Fprintf(stderr, "invpn-plot: %s: %v\n", name, err)
		return 1
	}
	if *out == "-" {
		_, err = stdout.Write(svg)
	} else {
		err = os.WriteFile(*out, svg, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "invpn-plot: %v\n", err)
		return 1
	}
	return 0
}

// table is a CSV file: its header and rows, with cells found by column
// name.
type table struct {
	header []string
	rows   [][]string
}

func readTable(r io.Reader) (*table, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("empty CSV")
	}
	return &table{header: recs[0], rows: recs[1:]}, nil
}

func (t *table) has(cols ...string) bool {
	for _, c := range cols {
		if !slices.Contains(t.header, c) {
			return false
		}
	}
	return true
}

func (t *table) cell(row []string, col string) string { return row[slices.Index(t.header, col)] }

// number parses the cell of row k in column col.
func (t *table) number(k int, col string) (float64, error) {
	v, err := strconv.ParseFloat(t.cell(t.rows[k], col), 64)
	if err != nil {
		return 0, fmt.Errorf("row %d, column %s: %w", k+2, col, err)
	}
	return v, nil
}

// plotCSV reads one of invpn sim's CSV forms and returns the SVG.
func plotCSV(r io.Reader, title string) ([]byte, error) {
	t, err := readTable(r)
	if err != nil {
		return nil, err
	}
	if isScaleSweep(t) {
		return plotScale(t, title)
	}
	var p *plot.Plot
	switch {
	case t.has("run", "at_s", "recovered", "recovery_s"):
		p, err = plotFaults(t)
	case t.has("run", "failover_p50_s", "failover_p95_s", "failover_max_s"):
		p, err = plotRuns(t)
	default:
		return nil, fmt.Errorf("columns %v: want the CSV of invpn sim --csv or --csv --faults", t.header)
	}
	if err != nil {
		return nil, err
	}
	if title != "" {
		p.Title.Text = title
	}
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "svg")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// plotFaults draws each run's recovery times against the time of the
// fault, as one line of points.
func plotFaults(t *table) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "failover"
	p.X.Label.Text = "fault at (s)"
	p.Y.Label.Text = "recovery (s)"
	var runs []string
	points := map[string]plotter.XYs{}
	for k, row := range t.rows {
		if t.cell(row, "recovered") != "true" {
			continue
		}
		at, err := t.number(k, "at_s")
		if err != nil {
			return nil, err
		}
		rec, err := t.number(k, "recovery_s")
		if err != nil {
			return nil, err
		}
		run := t.cell(row, "run")
		if _, ok := points[run]; !ok {
			runs = append(runs, run)
		}
		points[run] = append(points[run], plotter.XY{X: at, Y: rec})
	}
	if len(runs) == 0 {
		return nil, errors.New("no recovered fault to plot")
	}
	if len(runs) == 1 {
		p.Title.Text = "failover: " + runs[0]
	}
	var series []any
	for _, run := range runs {
		if len(runs) > 1 {
			series = append(series, run) // a legend entry
		}
		series = append(series, points[run])
	}
	if err := plotutil.AddLinePoints(p, series...); err != nil {
		return nil, err
	}
	fromZero(p)
	return p, nil
}

// fromZero starts the y axis at zero and leaves room above the lines
// for the legend, at the top left.
func fromZero(p *plot.Plot) {
	p.Y.Min = 0
	p.Y.Max = max(p.Y.Max*1.3, 0.001)
	p.Legend.Top, p.Legend.Left = true, true
}

// plotRuns draws the failover p50, p95 and maximum of each run, the runs
// along the x axis in the order of the file.
func plotRuns(t *table) (*plot.Plot, error) {
	if len(t.rows) == 0 {
		return nil, errors.New("no run to plot")
	}
	p := plot.New()
	p.Title.Text = "failover per run"
	p.Y.Label.Text = "failover (s)"
	var names []string
	var series []any
	for _, col := range []struct{ label, name string }{{"p50", "failover_p50_s"}, {"p95", "failover_p95_s"}, {"max", "failover_max_s"}} {
		var pts plotter.XYs
		for k := range t.rows {
			v, err := t.number(k, col.name)
			if err != nil {
				return nil, err
			}
			pts = append(pts, plotter.XY{X: float64(k), Y: v})
		}
		series = append(series, col.label, pts)
	}
	for _, row := range t.rows {
		names = append(names, t.cell(row, "run"))
	}
	if err := plotutil.AddLinePoints(p, series...); err != nil {
		return nil, err
	}
	p.NominalX(names...)
	fromZero(p)
	return p, nil
}
