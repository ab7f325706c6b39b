// Package meshmap serves the live map of the mesh: a web page that draws
// the mesh as one daemon sees it — the nodes, their links, this node's
// routes, and the nodes that stopped answering — and keeps it current
// without a reload.
//
// While at least one page is open, the server asks the daemon for a health
// request (0x02) every interval and for its status, turns the answers into
// a Graph (Tracker.Update) and pushes it to every open page as a
// server-sent event. With no page open it sends nothing: a health request
// floods the whole mesh. The page and the graph-drawing library
// (cytoscape, vendored in static/vendor with its licence) are embedded in
// the binary; nothing is fetched from elsewhere at run time.
package meshmap

import (
	"cmp"
	"slices"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/healthreport"
	"github.com/invpn/invpn/wire"
)

// Node states in a Graph.
const (
	StateSelf     = "self"     // the node that serves the map
	StateAnswered = "answered" // answered the latest health request
	// StateSilent is a node that did not answer the latest request but
	// was named by an answer or this node's routes, or answered one of
	// the requests of the last Tracker.Forget.
	StateSilent = "silent"
)

// Graph is the mesh as the latest health request found it, as the page
// draws it. MACs are strings so that the page can use them as ids.
type Graph struct {
	Self     string    `json:"self"`
	At       time.Time `json:"at"`       // when the request started
	Answered int       `json:"answered"` // nodes that answered, this one included
	Nodes    []Node    `json:"nodes"`    // sorted by MAC
	Links    []Link    `json:"links"`    // sorted by A, then B
	Routes   []Route   `json:"routes"`   // this node's routing table, sorted by target
}

// Node is one member of the mesh.
type Node struct {
	MAC   string `json:"mac"`
	State string `json:"state"` // StateSelf, StateAnswered or StateSilent
	// Hops is how many links the request crossed to reach it, RTTMillis
	// how long its answer took; both 0 for this node and a silent one.
	Hops      int     `json:"hops"`
	RTTMillis float64 `json:"rtt_ms"`
	Links     int     `json:"links"`  // links in its answer
	Routes    int     `json:"routes"` // routes in its answer
	// LastSeen is when it last answered; zero if it never did since the
	// map started.
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// Link is one link between two members, listed once with A < B.
type Link struct {
	A string `json:"a"`
	B string `json:"b"`
	// Transport and Liveness are known only for this node's own links
	// (from its status). RTTMillis comes from its status for its own
	// links and from the answering nodes' 0x8B for the others (either
	// end's measurement); 0 until heartbeats have measured it, or when
	// no 0x8B came (an original node on the way).
	Transport string  `json:"transport,omitempty"`
	RTTMillis float64 `json:"rtt_ms,omitempty"`
	Liveness  string  `json:"liveness,omitempty"`
	// OneSided is true when only one of its ends listed it: a link that
	// is coming up or going down, or a report that is out of date.
	OneSided bool `json:"one_sided,omitempty"`
	// OnPath is true when the request or an answer travelled it.
	OnPath bool `json:"on_path,omitempty"`
}

// Route is one entry of this node's routing table.
type Route struct {
	Target  string   `json:"target"`
	NextHop string   `json:"next_hop"`
	Hops    int      `json:"hops"` // -1: unknown
	Backups []string `json:"backups"`
}

// DefaultForget is how long a node that stopped answering stays on the
// map.
const DefaultForget = 5 * time.Minute

// Tracker turns successive health requests into graphs, remembering
// which nodes answered before so that a node that stops answering stays
// on the map, marked silent, for Forget. The zero value is not usable:
// make one with NewTracker. It is not safe for concurrent use.
type Tracker struct {
	// Forget is how long a node that stopped answering stays on the map.
	Forget   time.Duration
	lastSeen map[wire.MAC]time.Time
}

// NewTracker returns a Tracker that forgets silent nodes after forget.
func NewTracker(forget time.Duration) *Tracker {
	return &Tracker{Forget: forget, lastSeen: map[wire.MAC]time.Time{}}
}

// Update returns the graph of one health request h, taken with the status
// st of the requester (which gives its own links' transport, RTT and
// liveness, and its routes).
func (t *Tracker) Update(st *control.Status, h *control.Health) Graph {
	rep := healthreport.Build(h.Requester, h.ID, h.Start, h.Answers, h.Routes)
	g := Graph{Self: h.Requester.String(), At: h.Start, Answered: 1 + len(rep.Rows)}
	t.lastSeen[h.Requester] = h.Start
	nodes := map[wire.MAC]*Node{h.Requester: {MAC: h.Requester.String(), State: StateSelf,
		Links: st.MeshLinks(), Routes: len(st.Routes), LastSeen: h.Start}}
	for _, row := range rep.Rows {
		t.lastSeen[row.Node] = h.Start
		nodes[row.Node] = &Node{MAC: row.Node.String(), State: StateAnswered, Hops: row.HopsOut,
			RTTMillis: millis(row.RTT), Links: row.Links, Routes: row.Routes, LastSeen: h.Start}
	}
	silent := func(m wire.MAC) {
		if nodes[m] == nil {
			nodes[m] = &Node{MAC: m.String(), State: StateSilent, LastSeen: t.lastSeen[m]}
		}
	}
	for _, m := range rep.Missing {
		silent(m)
	}
	for m, seen := range t.lastSeen {
		if h.Start.Sub(seen) > t.Forget {
			delete(t.lastSeen, m)
		} else {
			silent(m)
		}
	}

	links := map[[2]wire.MAC]*Link{}
	ends := map[[2]wire.MAC]int{} // how many ends listed the link
	list := func(from, to wire.MAC) *Link {
		if from == to {
			return nil
		}
		k := linkKey(from, to)
		l := links[k]
		if l == nil {
			l = &Link{A: k[0].String(), B: k[1].String()}
			links[k] = l
		}
		ends[k]++
		silent(to) // a neighbour nobody else named
		return l
	}
	for _, ls := range st.Links {
		if ls.Directory {
			continue // a table for the cache, about to close: no mesh link
		}
		if l := list(h.Requester, ls.Peer); l != nil {
			l.Transport, l.RTTMillis, l.Liveness = ls.Transport, millis(time.Duration(ls.RTTSeconds*float64(time.Second))), ls.Liveness
		}
	}
	for _, a := range h.Answers {
		if nodes[a.Response.Origin] == nil || nodes[a.Response.Origin].State != StateAnswered {
			continue // not an answer the report kept
		}
		for _, peer := range a.Response.Links {
			list(a.Response.Origin, peer)
		}
	}
	for _, hl := range h.Links {
		if hl.ID != h.ID || nodes[hl.Origin] == nil || nodes[hl.Origin].State != StateAnswered {
			continue
		}
		for _, lr := range hl.Links {
			if l := links[linkKey(hl.Origin, lr.Peer)]; l != nil && l.RTTMillis == 0 {
				l.RTTMillis = millis(lr.RTT)
			}
		}
	}
	for k, l := range links {
		// A link to a silent node has only the one end that listed it.
		l.OneSided = ends[k] < 2 && nodes[k[0]].State != StateSilent && nodes[k[1]].State != StateSilent
	}
	for _, row := range rep.Rows {
		for _, path := range [][]wire.MAC{row.PathOut, row.PathBack} {
			for i := 1; i < len(path); i++ {
				if l := links[linkKey(path[i-1], path[i])]; l != nil {
					l.OnPath = true
				}
			}
		}
	}

	for _, n := range nodes {
		g.Nodes = append(g.Nodes, *n)
	}
	slices.SortFunc(g.Nodes, func(a, b Node) int { return compareMAC(a.MAC, b.MAC) })
	for _, l := range links {
		g.Links = append(g.Links, *l)
	}
	slices.SortFunc(g.Links, func(a, b Link) int {
		if c := compareMAC(a.A, b.A); c != 0 {
			return c
		}
		return compareMAC(a.B, b.B)
	})
	for _, r := range st.Routes {
		rt := Route{Target: r.Target.String(), NextHop: r.NextHop.String(), Hops: r.Hops, Backups: []string{}}
		for _, b := range r.Backups {
			rt.Backups = append(rt.Backups, b.String())
		}
		g.Routes = append(g.Routes, rt)
	}
	slices.SortFunc(g.Routes, func(a, b Route) int { return compareMAC(a.Target, b.Target) })
	return g
}

// linkKey orders a link's ends, the smaller MAC first.
func linkKey(a, b wire.MAC) [2]wire.MAC {
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return [2]wire.MAC{a, b}
}

// compareMAC orders MACs in their canonical text form (fixed width,
// lower-case hex), which sorts as their bytes do.
var compareMAC = cmp.Compare[string]

// millis returns d in milliseconds to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
