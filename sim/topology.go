package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Edge is a static link of a topology between nodes A and B.
type Edge struct {
	A, B int
	WAN  bool
	// Latency, when not zero, fixes the edge's one-way latency instead
	// of drawing it from its link class.
	Latency time.Duration
}

// Topology is a graph of nodes and static edges. An organic topology has
// no edges: its nodes start with a seed and build the mesh themselves.
type Topology struct {
	Kind  string
	N     int
	Edges []Edge
	// Site of each node (multi-site), nil otherwise.
	Site []int
	// Organic: every pair may link, node 0 is every other node's seed,
	// and nodes join one after the other. Bootstrap makes node 0 their
	// bootstrap peer instead of their seed.
	Organic, Bootstrap bool
}

// Line is 0 - 1 - ... - n-1.
func Line(n int) Topology {
	t := Topology{Kind: "line", N: n}
	for i := 1; i < n; i++ {
		t.Edges = append(t.Edges, Edge{A: i - 1, B: i})
	}
	return t
}

// Ring is a line closed into a cycle.
func Ring(n int) Topology {
	t := Line(n)
	t.Kind = "ring"
	if n > 2 {
		t.Edges = append(t.Edges, Edge{A: n - 1, B: 0})
	}
	return t
}

// Star links node 0 to every other node.
func Star(n int) Topology {
	t := Topology{Kind: "star", N: n}
	for i := 1; i < n; i++ {
		t.Edges = append(t.Edges, Edge{A: 0, B: i})
	}
	return t
}

// Grid is a rows x cols grid, node r*cols+c.
func Grid(rows, cols int) Topology {
	t := Topology{Kind: "grid", N: rows * cols}
	for r := range rows {
		for c := range cols {
			i := r*cols + c
			if c+1 < cols {
				t.Edges = append(t.Edges, Edge{A: i, B: i + 1})
			}
			if r+1 < rows {
				t.Edges = append(t.Edges, Edge{A: i, B: i + cols})
			}
		}
	}
	return t
}

// FullMesh links every pair.
func FullMesh(n int) Topology {
	t := Topology{Kind: "mesh", N: n}
	for i := range n {
		for j := i + 1; j < n; j++ {
			t.Edges = append(t.Edges, Edge{A: i, B: j})
		}
	}
	return t
}

// Random is a connected random graph with the given mean degree: a
// random spanning tree plus random extra edges.
func Random(n int, degree float64, rng *rand.Rand) Topology {
	t := Topology{Kind: "random", N: n}
	t.Edges = randomEdges(n, 0, degree, rng, nil)
	return t
}

// randomEdges returns a connected random graph over nodes base..base+n-1.
func randomEdges(n, base int, degree float64, rng *rand.Rand, have map[uint64]bool) []Edge {
	if have == nil {
		have = map[uint64]bool{}
	}
	var out []Edge
	add := func(a, b int) bool {
		k := pairKey(a, b)
		if a == b || have[k] {
			return false
		}
		have[k] = true
		out = append(out, Edge{A: min(a, b), B: max(a, b)})
		return true
	}
	for i := 1; i < n; i++ {
		add(base+i, base+rng.IntN(i))
	}
	want := int(float64(n)*degree/2 + 0.5)
	maxEdges := n * (n - 1) / 2
	want = min(want, maxEdges)
	for tries := 0; len(out) < want && tries < 100*want; tries++ {
		add(base+rng.IntN(n), base+rng.IntN(n))
	}
	return out
}

// MultiSite is `sites` sites of perSite nodes, each site a random graph
// of mean degree 4 (a full mesh when smaller than 6), joined by wanLinks
// WAN edges between every pair of sites.
func MultiSite(sites, perSite, wanLinks int, rng *rand.Rand) Topology {
	t := Topology{Kind: "multisite", N: sites * perSite}
	have := map[uint64]bool{}
	for s := range sites {
		t.Site = append(t.Site, slices.Repeat([]int{s}, perSite)...)
		if perSite < 6 {
			for i := range perSite {
				for j := i + 1; j < perSite; j++ {
					have[pairKey(s*perSite+i, s*perSite+j)] = true
					t.Edges = append(t.Edges, Edge{A: s*perSite + i, B: s*perSite + j})
				}
			}
			continue
		}
		t.Edges = append(t.Edges, randomEdges(perSite, s*perSite, 4, rng, have)...)
	}
	for a := range sites {
		for b := a + 1; b < sites; b++ {
			for range wanLinks {
				for tries := 0; tries < 100; tries++ {
					x, y := a*perSite+rng.IntN(perSite), b*perSite+rng.IntN(perSite)
					if !have[pairKey(x, y)] {
						have[pairKey(x, y)] = true
						t.Edges = append(t.Edges, Edge{A: x, B: y, WAN: true})
						break
					}
				}
			}
		}
	}
	return t
}

// build returns the topology t names; random topologies draw from rng.
func (t TopologySpec) build(rng *rand.Rand) (Topology, error) {
	switch t.Kind {
	case "line":
		return Line(t.Nodes), nil
	case "ring":
		return Ring(t.Nodes), nil
	case "star":
		return Star(t.Nodes), nil
	case "grid":
		return Grid(t.Rows, t.Cols), nil
	case "mesh":
		return FullMesh(t.Nodes), nil
	case "random":
		return Random(t.Nodes, t.Degree, rng), nil
	case "multisite":
		return MultiSite(t.Sites, t.PerSite, t.WANLinks, rng), nil
	case "organic":
		if t.JoinWith == "bootstrap" {
			return OrganicBootstrap(t.Nodes), nil
		}
		return Organic(t.Nodes), nil
	case "custom":
		return Topology{Kind: "custom", N: t.Nodes, Edges: slices.Clone(t.Edges)}, nil
	}
	return Topology{}, fmt.Errorf("unknown topology %q", t.Kind)
}

// Organic is n nodes with no static edges; each starts with node 0 as its
// seed (`init`) and builds the mesh through its peer cache and connect
// policy.
func Organic(n int) Topology { return Topology{Kind: "organic", N: n, Organic: true} }

// OrganicBootstrap is Organic with node 0 as every node's bootstrap peer
// instead of its seed: it serves the joiners its table and is no hub.
func OrganicBootstrap(n int) Topology {
	return Topology{Kind: "organic", N: n, Organic: true, Bootstrap: true}
}

// Build adds t's nodes and edges to w. Each node of a static topology
// has its neighbours as seeds (`init`), as a real deployment lists them,
// and every node starts at once and dials them: the links come up from
// the nodes' own dials, as will every link after a fault. An organic
// topology's nodes after the first start down: start them with Restart
// (Scenario does so one after the other).
func (w *World) Build(t Topology) error {
	if t.N < 1 {
		return fmt.Errorf("sim: topology %s: %d nodes", t.Kind, t.N)
	}
	base := w.N()
	if t.Organic {
		w.AllowAll()
		w.AddNode(NodeOptions{})
		for range t.N - 1 {
			if t.Bootstrap {
				w.AddNode(NodeOptions{Bootstrap: []int{base}, Down: true})
			} else {
				w.AddNode(NodeOptions{Seeds: []int{base}, Down: true})
			}
		}
		return nil
	}
	seeds := make([][]int, t.N)
	for _, e := range t.Edges {
		if e.A < 0 || e.B < 0 || e.A >= t.N || e.B >= t.N || e.A == e.B {
			return fmt.Errorf("sim: topology %s: bad edge %d-%d", t.Kind, e.A, e.B)
		}
		if !slices.Contains(seeds[e.A], base+e.B) {
			seeds[e.A] = append(seeds[e.A], base+e.B)
			seeds[e.B] = append(seeds[e.B], base+e.A)
		}
	}
	for i := range t.N {
		w.AddNode(NodeOptions{Seeds: seeds[i], Down: true})
	}
	for _, e := range t.Edges {
		w.net.newEdge(base+e.A, base+e.B, e.WAN, true, e.Latency)
	}
	for i := range t.N {
		w.cluster.start(base + i)
	}
	return nil
}
