package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// This file draws a sweep over the node count (invpn sim --csv --sweep
// nodes=...): one small panel per metric against the node count, on a
// log axis, with one line per value of a second swept parameter.

// scaleMetrics are the panels of a nodes sweep: a title and the CSV
// column drawn. A panel whose column is empty in every row (the heap,
// measured only with --jobs 1) is left out.
var scaleMetrics = []struct{ title, col string }{
	{"quiet control msgs/node/s", "quiet_control_msgs_per_node_s"},
	{"quiet control bytes/node/s", "quiet_control_bytes_per_node_s"},
	{"control msgs/node/s, whole run", "control_msgs_per_node_s"},
	{"control bytes/node/s, whole run", "control_bytes_per_node_s"},
	{"routes per node", "routes_per_node"},
	{"heap bytes per node", "heap_bytes_per_node"},
	{"convergence (s)", "converge_s"},
	{"failover p95 (s)", "failover_p95_s"},
}

// isScaleSweep reports whether t is the CSV of a sweep over nodes.
func isScaleSweep(t *table) bool {
	return t.has("sweep_nodes", "nodes", "control_msgs_per_node_s", "converge_s", "failover_p95_s")
}

// plotScale draws each metric of a nodes sweep against the node count,
// one line per value of the other swept parameter (the first sweep_
// column other than nodes), each point the mean over the seeds of the
// row's variant. Runs that did not finish are left out.
func plotScale(t *table, title string) ([]byte, error) {
	other := ""
	for _, h := range t.header {
		if p, ok := strings.CutPrefix(h, "sweep_"); ok && p != "nodes" {
			if other != "" {
				return nil, fmt.Errorf("swept %s and %s besides nodes: want at most one other parameter (one line per value)", other, p)
			}
			other = p
		}
	}
	type key struct {
		line  string
		nodes float64
	}
	var lines []string // in the order of the file
	var nodes []float64
	sums := map[string]map[key]float64{}
	counts := map[string]map[key]int{}
	for k, row := range t.rows {
		if t.has("error") && t.cell(row, "error") != "" {
			continue
		}
		n, err := t.number(k, "nodes")
		if err != nil {
			return nil, err
		}
		line := ""
		if other != "" {
			line = other + "=" + t.cell(row, "sweep_"+other)
		}
		if !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
		for _, m := range scaleMetrics {
			if !t.has(m.col) || t.cell(row, m.col) == "" {
				continue
			}
			v, err := t.number(k, m.col)
			if err != nil {
				return nil, err
			}
			if sums[m.col] == nil {
				sums[m.col], counts[m.col] = map[key]float64{}, map[key]int{}
			}
			sums[m.col][key{line, n}] += v
			counts[m.col][key{line, n}]++
		}
	}
	if len(nodes) == 0 {
		return nil, errors.New("no finished run to plot")
	}
	slices.Sort(nodes)
	var panels []*plot.Plot
	for _, m := range scaleMetrics {
		if len(sums[m.col]) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = m.title
		p.X.Label.Text = "nodes"
		p.X.Scale = plot.LogScale{}
		var ticks plot.ConstantTicks
		for _, n := range nodes {
			ticks = append(ticks, plot.Tick{Value: n, Label: strconv.FormatFloat(n, 'f', -1, 64)})
		}
		p.X.Tick.Marker = ticks
		var series []any
		for _, line := range lines {
			var pts plotter.XYs
			for _, n := range nodes {
				if c := counts[m.col][key{line, n}]; c > 0 {
					pts = append(pts, plotter.XY{X: n, Y: sums[m.col][key{line, n}] / float64(c)})
				}
			}
			if len(pts) == 0 {
				continue
			}
			if other != "" {
				series = append(series, line) // a legend entry
			}
			series = append(series, pts)
		}
		if err := plotutil.AddLinePoints(p, series...); err != nil {
			return nil, err
		}
		p.X.Min, p.X.Max = nodes[0]/1.25, nodes[len(nodes)-1]*1.25 // room around the points on the log axis
		fromZero(p)
		panels = append(panels, p)
	}
	if title == "" {
		if other != "" {
			title = "scale: nodes × " + other
		} else {
			title = "scale: nodes"
		}
	}
	return drawPanels(panels, title)
}

// drawPanels tiles the panels, three to a row, under a title, as one SVG.
func drawPanels(panels []*plot.Plot, title string) ([]byte, error) {
	const cols = 3
	rows := (len(panels) + cols - 1) / cols
	const titleH = 0.5 * vg.Inch
	w, h := cols*4*vg.Inch, vg.Length(rows)*3.2*vg.Inch+titleH
	c := vgsvg.New(w, h)
	dc := draw.New(c)

	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
		for i := range cols {
			if k := r*cols + i; k < len(panels) {
				grid[r][i] = panels[k]
			}
		}
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: titleH + 2, PadBottom: 4, PadLeft: 4, PadRight: 8, PadX: 16, PadY: 16}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for i, p := range grid[r] {
			if p != nil {
				p.Draw(canvases[r][i])
			}
		}
	}
	head := plot.New()
	head.Title.Text = title
	head.Title.TextStyle.Font.Size = vg.Points(14)
	head.HideAxes()
	head.Draw(draw.Crop(dc, 0, 0, h-titleH, 0))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
