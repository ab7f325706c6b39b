// Package healthreport turns the answers to one health request (0x03
// messages collected by the requester) into what an operator reads: one
// row per answering node with its hops out and back and round-trip time,
// and flags for nodes that did not answer, paths that differ out and back,
// and routes that point at a neighbour the node is not linked to. It also
// draws the mesh as the answers describe it, in Graphviz DOT.
package healthreport

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// Row is one answering node.
type Row struct {
	Node     wire.MAC      `json:"-"`         // the node that answered
	HopsOut  int           `json:"hops_out"`  // links the request crossed
	HopsBack int           `json:"hops_back"` // links the answer crossed
	RTT      time.Duration `json:"rtt_ns"`    // from the request to the answer's arrival
	Links    int           `json:"links"`     // the node's links
	Routes   int           `json:"routes"`    // the node's routes
	// PathOut is the request's path from the requester to Node; PathBack
	// the answer's path from Node to the requester.
	PathOut  []wire.MAC `json:"-"`
	PathBack []wire.MAC `json:"-"` // see PathOut
	// Asymmetric is true when PathBack is not PathOut reversed.
	Asymmetric bool `json:"asymmetric"`
	// BadRoutes lists targets whose next hop is not one of Node's links.
	BadRoutes []wire.MAC `json:"-"`
}

// Report is the outcome of one health request.
type Report struct {
	Requester wire.MAC `json:"-"`       // the node that sent the request
	ID        uint64   `json:"id"`      // the request's id
	Rows      []Row    `json:"answers"` // one per answering node, nearest first
	// Missing are nodes the requester or an answer knows of (as a link or
	// a route target) that did not answer.
	Missing []wire.MAC `json:"-"`
	answers []wire.HealthResponse
}

// Build makes the report of the request id that requester started at
// start, from the answers collected and the requester's own links and
// routes (which name the nodes that should answer).
func Build(requester wire.MAC, id uint64, start time.Time, results []node.HealthResult, own []node.RouteInfo) *Report {
	r := &Report{Requester: requester, ID: id}
	answered := map[wire.MAC]bool{requester: true}
	expected := map[wire.MAC]bool{}
	for _, ri := range own {
		expected[ri.Target] = true
	}
	for _, res := range results {
		a := res.Response
		if a.ID != id || a.Dest != requester || answered[a.Origin] {
			continue // another request's answer, or a duplicate
		}
		answered[a.Origin] = true
		r.answers = append(r.answers, a)
		back := append(slices.Clone(a.Reverse), requester)
		row := Row{
			Node: a.Origin, HopsOut: len(a.Traceroute) - 1, HopsBack: len(back) - 1,
			RTT: res.At.Sub(start), Links: len(a.Links), Routes: len(a.Routes),
			PathOut: a.Traceroute, PathBack: back,
		}
		reversed := slices.Clone(back)
		slices.Reverse(reversed)
		row.Asymmetric = !slices.Equal(reversed, a.Traceroute)
		for _, rt := range a.Routes {
			expected[rt.Target] = true
			if !slices.Contains(a.Links, rt.NextHop) {
				row.BadRoutes = append(row.BadRoutes, rt.Target)
			}
		}
		for _, l := range a.Links {
			expected[l] = true
		}
		r.Rows = append(r.Rows, row)
	}
	for mac := range expected {
		if !answered[mac] {
			r.Missing = append(r.Missing, mac)
		}
	}
	slices.SortFunc(r.Missing, func(a, b wire.MAC) int { return strings.Compare(a.String(), b.String()) })
	slices.SortFunc(r.Rows, func(a, b Row) int {
		if a.HopsOut != b.HopsOut {
			return a.HopsOut - b.HopsOut
		}
		return strings.Compare(a.Node.String(), b.Node.String())
	})
	return r
}

// WriteTable prints the report for people: one row per node, then flags.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tHOPS OUT\tHOPS BACK\tRTT\tLINKS\tROUTES\tFLAGS\n")
	for _, row := range r.Rows {
		var flags []string
		if row.Asymmetric {
			flags = append(flags, "asymmetric")
		}
		if len(row.BadRoutes) > 0 {
			flags = append(flags, fmt.Sprintf("%d routes via unlinked neighbours", len(row.BadRoutes)))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%d\t%d\t%s\n", row.Node, row.HopsOut, row.HopsBack,
			row.RTT.Round(10*time.Microsecond), row.Links, row.Routes, strings.Join(flags, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d nodes answered", len(r.Rows))
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "; no answer from %d: %v", len(r.Missing), r.Missing)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// jsonRow is Row with MACs as strings.
type jsonRow struct {
	Row
	Node      string   `json:"node"`
	PathOut   []string `json:"path_out"`
	PathBack  []string `json:"path_back"`
	BadRoutes []string `json:"bad_routes,omitempty"`
}

// WriteJSON writes the report as one JSON object, for scripts.
func (r *Report) WriteJSON(w io.Writer) error {
	out := struct {
		Requester string    `json:"requester"`
		ID        uint64    `json:"id"`
		Answers   []jsonRow `json:"answers"`
		Missing   []string  `json:"missing"`
	}{Requester: r.Requester.String(), ID: r.ID, Answers: []jsonRow{}, Missing: strs(r.Missing)}
	for _, row := range r.Rows {
		out.Answers = append(out.Answers, jsonRow{Row: row, Node: row.Node.String(),
			PathOut: strs(row.PathOut), PathBack: strs(row.PathBack), BadRoutes: strs(row.BadRoutes)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func strs(macs []wire.MAC) []string {
	s := make([]string, 0, len(macs))
	for _, m := range macs {
		s = append(s, m.String())
	}
	return s
}
