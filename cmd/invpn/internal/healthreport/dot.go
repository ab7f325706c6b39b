package healthreport

import (
	"fmt"
	"slices"
	"strings"

	"gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/encoding"
	"gonum.org/v1/gonum/graph/encoding/dot"
	"gonum.org/v1/gonum/graph/simple"

	"github.com/invpn/invpn/wire"
)

// meshNode is a mesh member in the DOT graph.
type meshNode struct {
	id        int64
	mac       wire.MAC
	requester bool
	missing   bool
}

func (n meshNode) ID() int64     { return n.id }
func (n meshNode) DOTID() string { return `"` + n.mac.String() + `"` }
func (n meshNode) Attributes() []encoding.Attribute {
	switch {
	case n.requester:
		return []encoding.Attribute{{Key: "shape", Value: "doublecircle"}}
	case n.missing:
		return []encoding.Attribute{{Key: "style", Value: "dashed"}, {Key: "label", Value: `"` + n.mac.String() + `\n(no answer)"`}}
	}
	return nil
}

// meshEdge is a link; used marks links that a request or answer crossed.
type meshEdge struct {
	simple.Edge
	used bool
}

func (e meshEdge) ReversedEdge() graph.Edge { e.F, e.T = e.T, e.F; return e }
func (e meshEdge) Attributes() []encoding.Attribute {
	if e.used {
		return []encoding.Attribute{{Key: "color", Value: "blue"}, {Key: "penwidth", Value: "2"}}
	}
	return nil
}

// DOT returns the mesh as the answers describe it: every node that
// answered or was named, every link an answer listed, and in blue the
// links that the request or an answer travelled.
func (r *Report) DOT() ([]byte, error) {
	g := simple.NewUndirectedGraph()
	ids := map[wire.MAC]int64{}
	var macs []wire.MAC
	add := func(m wire.MAC) {
		if _, ok := ids[m]; !ok {
			ids[m] = 0
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
	slices.SortFunc(macs, func(a, b wire.MAC) int { return strings.Compare(a.String(), b.String()) })
	for i, m := range macs {
		ids[m] = int64(i)
		g.AddNode(meshNode{id: int64(i), mac: m, requester: m == r.Requester, missing: slices.Contains(r.Missing, m)})
	}
	used := map[[2]int64]bool{}
	mark := func(path []wire.MAC) {
		for i := 1; i < len(path); i++ {
			a, b := ids[path[i-1]], ids[path[i]]
			used[[2]int64{min(a, b), max(a, b)}] = true
		}
	}
	for _, row := range r.Rows {
		mark(row.PathOut)
		mark(row.PathBack)
	}
	for _, a := range r.answers {
		for _, l := range a.Links {
			f, t := ids[a.Origin], ids[l]
			if f == t || g.HasEdgeBetween(f, t) {
				continue
			}
			g.SetEdge(meshEdge{Edge: simple.Edge{F: g.Node(f), T: g.Node(t)}, used: used[[2]int64{min(f, t), max(f, t)}]})
		}
	}
	b, err := dot.Marshal(g, "invpn", "", "  ")
	if err != nil {
		return nil, fmt.Errorf("healthreport: DOT: %w", err)
	}
	return b, nil
}
