package sim

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// FaultResult is how long the mesh took to recover from one fault (or,
// for kind "start", to converge after the start).
type FaultResult struct {
	Kind string        // start, cut, heal, crash, restart, partition, jump
	Desc string        // what happened, with node names
	At   time.Duration // virtual time of the fault
	// Recovery is the time from the fault until every pair of nodes that
	// could still reach each other did so by following routes over live
	// links. Valid when Recovered.
	Recovery  time.Duration
	Recovered bool
	// BrokenPairs is the number of ordered pairs that could not reach
	// each other at the first measurement after the fault.
	BrokenPairs int
}

// prober measures convergence and failover: after each fault it checks
// every ProbeStep whether all still-connected pairs reach each other.
type prober struct {
	w         *World
	next      []int32 // n*n next hops, -1 for none
	pending   []int   // indices into results
	results   []FaultResult
	scheduled bool
	enabled   bool
}

func (p *prober) init(w *World) { p.w = w }

// grow notes that a node was added: tables are resized on next use.
func (p *prober) grow() {}

// MeasureRecovery turns on failover measurement: from now on every fault
// is followed by probes until the mesh has recovered. It also measures
// the convergence from now, as a result of kind "start".
func (w *World) MeasureRecovery() {
	w.probe.enabled = true
	w.probe.fault("start", "start")
}

// Recoveries returns the measured faults so far, in order.
func (w *World) Recoveries() []FaultResult { return slices.Clone(w.probe.results) }

// fault starts measuring the recovery from a fault that just happened.
func (p *prober) fault(desc, kind string) {
	if !p.enabled {
		return
	}
	p.results = append(p.results, FaultResult{Kind: kind, Desc: desc, At: time.Duration(p.w.now), BrokenPairs: -1})
	p.pending = append(p.pending, len(p.results)-1)
	if !p.scheduled {
		p.scheduled = true
		p.w.After(0, p.run)
	}
}

func (p *prober) run() {
	w := p.w
	p.scheduled = false
	if n := len(w.nodes); len(p.next) != n*n {
		p.next = make([]int32, n*n)
	}
	broken := w.brokenPairs(p.next)
	var still []int
	for _, k := range p.pending {
		r := &p.results[k]
		if r.BrokenPairs < 0 {
			r.BrokenPairs = broken
		}
		switch {
		case broken == 0:
			r.Recovered = true
			r.Recovery = time.Duration(w.now) - r.At
		case time.Duration(w.now)-r.At >= w.cfg.RecoveryTimeout:
			// given up: stays not recovered
		default:
			still = append(still, k)
		}
	}
	p.pending = still
	if len(still) > 0 {
		p.scheduled = true
		w.After(w.cfg.ProbeStep, p.run)
	}
}

// connectivity returns a component id for each up node (-1 for down
// nodes) and the adjacency it used: usable static edges in a static
// world, live links in an organic one.
func (w *World) connectivity() ([]int, [][]int) {
	n := len(w.nodes)
	adj := make([][]int, n)
	if w.allPair {
		adj = w.LiveLinks()
	} else {
		for _, e := range w.edgeSeq {
			if e.static && !e.cut && w.part[e.a] == w.part[e.b] {
				adj[e.a] = append(adj[e.a], e.b)
				adj[e.b] = append(adj[e.b], e.a)
			}
		}
	}
	comp := make([]int, n)
	for i := range comp {
		comp[i] = -1
	}
	for s := range n {
		if comp[s] >= 0 || !w.Up(s) {
			continue
		}
		comp[s] = s
		stack := []int{s}
		for len(stack) > 0 {
			u := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if u != s && w.nodes[u].opts.NoRelay {
				continue
			}
			for _, v := range adj[u] {
				if comp[v] < 0 && w.Up(v) {
					comp[v] = s
					stack = append(stack, v)
				}
			}
		}
	}
	return comp, adj
}

// nextHops fills next (n*n) with each up node's next hop toward each
// node over a live link, -1 for none.
func (w *World) nextHops(next []int32) {
	n := len(w.nodes)
	for k := range next {
		next[k] = -1
	}
	for u, sn := range w.nodes {
		if sn.n == nil {
			continue
		}
		for _, ri := range sn.n.Routes() {
			x, ok := w.byMAC[ri.Target]
			if !ok {
				continue
			}
			if v, ok := w.peerOf(u, ri.Via); ok {
				next[u*n+x] = int32(v)
			}
		}
	}
}

// brokenPairs counts the ordered pairs of up nodes, connected to each
// other, whose routes do not lead from one to the other within the hop
// limit of targeted frames.
func (w *World) brokenPairs(next []int32) int {
	n := len(w.nodes)
	comp, adj := w.connectivity()
	w.nextHops(next)
	limit := int32(w.hopLimit())
	far := w.farPairs(comp, adj, int(limit))
	// dist: -1 unknown, -2 on the current walk, -3 does not reach, else
	// hops to x.
	dist := make([]int32, n)
	var walk []int
	broken := 0
	for x := range n {
		if comp[x] < 0 {
			continue
		}
		for k := range dist {
			dist[k] = -1
		}
		dist[x] = 0
		for u := range n {
			if u == x || comp[u] != comp[x] || far != nil && far[x] != nil && far[x][u] {
				continue
			}
			walk = walk[:0]
			v := u
			res := int32(-3)
			for {
				if dist[v] >= 0 || dist[v] == -3 {
					res = dist[v]
					break
				}
				if dist[v] == -2 {
					break // a loop
				}
				dist[v] = -2
				walk = append(walk, v)
				nv := next[v*n+x]
				if nv < 0 {
					break
				}
				v = int(nv)
			}
			for k := len(walk) - 1; k >= 0; k-- {
				if res >= 0 {
					res++
				}
				dist[walk[k]] = res
			}
			if dist[u] < 0 || dist[u] > limit {
				broken++
			}
		}
	}
	return broken
}

// farPairs marks, when the graph has pairs further apart than the hop
// limit, far[x][u] for each of them: no route can join them, so they
// are not counted as broken. It returns nil when there is none.
func (w *World) farPairs(comp []int, adj [][]int, limit int) [][]bool {
	n := len(w.nodes)
	if n <= limit+1 {
		return nil
	}
	var far [][]bool
	dist := make([]int, n)
	queue := make([]int, 0, n)
	for x := range n {
		if comp[x] < 0 {
			continue
		}
		for k := range dist {
			dist[k] = -1
		}
		dist[x] = 0
		queue = append(queue[:0], x)
		for h := 0; h < len(queue); h++ {
			u := queue[h]
			if u != x && w.nodes[u].opts.NoRelay {
				continue
			}
			for _, v := range adj[u] {
				if dist[v] < 0 && w.Up(v) {
					dist[v] = dist[u] + 1
					queue = append(queue, v)
				}
			}
		}
		for u := range n {
			if dist[u] > limit {
				if far == nil {
					far = make([][]bool, n)
				}
				if far[x] == nil {
					far[x] = make([]bool, n)
				}
				far[x][u] = true
			}
		}
	}
	return far
}

// hopLimit is the hop limit the nodes give targeted frames.
func (w *World) hopLimit() int {
	for _, sn := range w.nodes {
		if sn.n != nil {
			return int(sn.n.Config().HopLimit)
		}
	}
	return 64
}

// Converged reports whether every pair of connected nodes reaches each
// other now.
func (w *World) Converged() bool { return w.brokenPairs(make([]int32, len(w.nodes)*len(w.nodes))) == 0 }

// CheckFirstPath compares every up node's routes with the naive
// first-path model (Config.ModelRouting must be set) and, in a world
// whose links all have fixed latencies and no bandwidth limit, checks
// that following next hops from any node reaches its target without a
// loop along a least-latency path. Call it when no announcement is in
// flight: in the middle of an announcement interval of a quiet static
// topology. It returns one line per mismatch.
func (w *World) CheckFirstPath() []string {
	if !w.cfg.ModelRouting {
		return []string{"CheckFirstPath: Config.ModelRouting is not set"}
	}
	n := len(w.nodes)
	var bad []string
	next := make([]int32, n*n)
	w.nextHops(next)
	dist := w.latencies()
	for u, sn := range w.nodes {
		if sn.n == nil {
			continue
		}
		for x := range n {
			if x == u {
				continue
			}
			m := w.obs.model[u*n+x]
			ri, ok := sn.n.Route(w.nodes[x].mac)
			switch {
			case m.via < 0 && ok:
				bad = append(bad, fmt.Sprintf("%s routes to %s via %s, but no announcement of %s reached it",
					sn.name, w.nodes[x].name, w.macName(ri.NextHop), w.nodes[x].name))
			case m.via >= 0 && !ok:
				bad = append(bad, fmt.Sprintf("%s has no route to %s; model: via %s (id %d)",
					sn.name, w.nodes[x].name, w.nodes[m.via].name, m.id))
			case m.via >= 0 && ri.NextHop != w.nodes[m.via].mac:
				bad = append(bad, fmt.Sprintf("%s routes to %s via %s (id %d), model: via %s (newest id %d arrived first from it)",
					sn.name, w.nodes[x].name, w.macName(ri.NextHop), ri.ID, w.nodes[m.via].name, m.id))
			}
			if dist == nil || math.IsInf(dist[u][x], 1) {
				continue
			}
			// Follow next hops: no loop, least latency.
			var total float64
			seen := map[int]bool{u: true}
			path := []string{sn.name}
			v := u
			for v != x {
				nv := next[v*n+x]
				if nv < 0 {
					bad = append(bad, fmt.Sprintf("route %s -> %s stops at %s: %s", sn.name, w.nodes[x].name, w.nodes[v].name, strings.Join(path, " ")))
					break
				}
				lat, _ := w.EdgeLatency(v, int(nv))
				total += float64(lat)
				v = int(nv)
				path = append(path, w.nodes[v].name)
				if seen[v] {
					bad = append(bad, fmt.Sprintf("route %s -> %s loops: %s", sn.name, w.nodes[x].name, strings.Join(path, " ")))
					break
				}
				seen[v] = true
			}
			if v == x && total != dist[u][x] {
				bad = append(bad, fmt.Sprintf("route %s -> %s takes %v over %s; the least latency is %v",
					sn.name, w.nodes[x].name, time.Duration(total), strings.Join(path, " "), time.Duration(dist[u][x])))
			}
		}
	}
	return bad
}

// latencies returns all-pairs least latencies over live links, or nil if
// some edge has a bandwidth limit (queueing makes first arrival differ
// from least latency).
func (w *World) latencies() [][]float64 {
	n := len(w.nodes)
	if n > 400 {
		return nil
	}
	for _, e := range w.edgeSeq {
		if e.bandwidth > 0 {
			return nil
		}
	}
	d := make([][]float64, n)
	for i := range d {
		d[i] = make([]float64, n)
		for j := range d[i] {
			if i != j {
				d[i][j] = math.Inf(1)
			}
		}
	}
	for i, peers := range w.LiveLinks() {
		for _, j := range peers {
			lat, _ := w.EdgeLatency(i, j)
			d[i][j] = float64(lat)
		}
	}
	for k := range n {
		for i := range n {
			if math.IsInf(d[i][k], 1) {
				continue
			}
			for j := range n {
				if v := d[i][k] + d[k][j]; v < d[i][j] {
					d[i][j] = v
				}
			}
		}
	}
	return d
}

// Unreachable describes up to limit ordered pairs of connected nodes
// whose routes do not lead from one to the other, with where the walk
// ends.
func (w *World) Unreachable(limit int) []string {
	n := len(w.nodes)
	next := make([]int32, n*n)
	comp, _ := w.connectivity()
	w.nextHops(next)
	var out []string
	for x := range n {
		for u := range n {
			if u == x || comp[u] < 0 || comp[u] != comp[x] {
				continue
			}
			path := []string{w.nodes[u].name}
			seen := map[int]bool{u: true}
			v := u
			for v != x {
				nv := next[v*n+x]
				if nv < 0 {
					path = append(path, "(no route)")
					break
				}
				v = int(nv)
				path = append(path, w.nodes[v].name)
				if seen[v] {
					path = append(path, "(loop)")
					break
				}
				seen[v] = true
			}
			if v != x || len(path) > 0 && strings.HasPrefix(path[len(path)-1], "(") {
				out = append(out, fmt.Sprintf("%s -> %s: %s", w.nodes[u].name, w.nodes[x].name, strings.Join(path, " ")))
				if len(out) >= limit {
					return out
				}
			}
		}
	}
	return out
}
