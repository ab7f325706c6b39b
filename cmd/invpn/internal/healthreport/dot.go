package healthreport

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/invpn/invpn/wire"
)

// DOT returns the mesh as the answers describe it, as a Graphviz graph:
// every node that answered or was named, every link an answer listed, and
// in blue the links that the request or an answer travelled. The requester
// is a double circle, a node that did not answer is dashed.
//
// The text is deterministic: nodes sorted by MAC, then links sorted by
// their ends (the smaller MAC first), each listed once. The error is
// always nil; it is kept for callers that write the graph to a file.
func (r *Report) DOT() ([]byte, error) {
	var macs []wire.MAC
	known := map[wire.MAC]bool{}
	add := func(m wire.MAC) {
		if !known[m] {
			known[m] = true
			macs = append(macs, m)
		}
	}
	add(r.Requester)
	for _, a := range r.answers {
		add(a.Origin)
		for _, l := range a.Links {
			add(l)
		}
	}
	for _, m := range r.Missing {
		add(m)
	}
	slices.SortFunc(macs, func(a, b wire.MAC) int { return a.Compare(b) })

	used := map[dotEdge]bool{}
	mark := func(path []wire.MAC) {
		for i := 1; i < len(path); i++ {
			used[newDotEdge(path[i-1], path[i])] = true
		}
	}
	for _, row := range r.Rows {
		mark(row.PathOut)
		mark(row.PathBack)
	}
	var edges []dotEdge
	listed := map[dotEdge]bool{}
	for _, a := range r.answers {
		for _, l := range a.Links {
			e := newDotEdge(a.Origin, l)
			if e.a == e.b || listed[e] {
				continue
			}
			listed[e] = true
			edges = append(edges, e)
		}
	}
	slices.SortFunc(edges, func(x, y dotEdge) int {
		if c := x.a.Compare(y.a); c != 0 {
			return c
		}
		return x.b.Compare(y.b)
	})

	var b bytes.Buffer
	b.WriteString("strict graph invpn {\n")
	for _, m := range macs {
		fmt.Fprintf(&b, "  %s", dotID(m.String()))
		switch {
		case m == r.Requester:
			b.WriteString(" [shape=doublecircle]")
		case slices.Contains(r.Missing, m):
			fmt.Fprintf(&b, " [style=dashed, label=%s]", dotID(m.String()+`\n(no answer)`))
		}
		b.WriteString(";\n")
	}
	if len(edges) > 0 {
		b.WriteString("\n")
	}
	for _, e := range edges {
		fmt.Fprintf(&b, "  %s -- %s", dotID(e.a.String()), dotID(e.b.String()))
		if used[e] {
			b.WriteString(" [color=blue, penwidth=2]")
		}
		b.WriteString(";\n")
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// dotEdge is an undirected link, its smaller end first.
type dotEdge struct{ a, b wire.MAC }

func newDotEdge(x, y wire.MAC) dotEdge {
	if y.Compare(x) < 0 {
		x, y = y, x
	}
	return dotEdge{x, y}
}

// dotID returns s as a quoted DOT ID. A backslash is kept as it is, so
// that escapes such as \n in a label reach Graphviz; a double quote is
// escaped.
func dotID(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
