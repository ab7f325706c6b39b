package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds the measurements: the counters the world keeps, and
// the measurer, which times how long the mesh takes to converge and to
// recover from each fault.

// Totals are world-wide counters.
type Totals struct {
	Events       uint64
	Messages     uint64 // messages delivered to a node
	Lost         uint64 // messages dropped by a broken link or a gone end
	BusyTicks    uint64 // ticks a node asked for at or before the current time
	SeedLinks    uint64 // links created that speak only the seed protocol
	LinksCreated uint64
	Retransmits  uint64 // segments retransmitted: after a loss, or when a silent path passes packets again
	// Datagrams counts the frames sent as datagrams (Config.Datagrams),
	// DatagramsLost those a lossy or silent path lost (in Lost too).
	Datagrams, DatagramsLost uint64
	// LivenessLinks counts the links failed by liveness (silent for their
	// detection time) at one end or both.
	LivenessLinks uint64
	// DirectoryLinks counts the links that were directory links at one
	// end (docs/protocol.md#link-limit). PeakDegree is the most mesh
	// links one node had at any time, PeakLinks the most links of both
	// kinds.
	DirectoryLinks        uint64
	PeakDegree, PeakLinks int
}

// Totals returns the world-wide counters.
func (w *World) Totals() Totals { t := w.totals; t.Events = w.events; return t }

// NodeStats are what the world counted for one node.
type NodeStats struct {
	ControlMsgs, ControlBytes uint64 // sent, framing included
	DataMsgs, DataBytes       uint64
	Heartbeats                uint64 // heartbeat messages (0x87) sent, counted in ControlMsgs too
	QueueDrops                uint64 // data dropped at a full send queue
	Closes                    uint64 // links the node closed itself, for any reason
	LivenessFailures          uint64 // of which: silent for the link's detection time (node.ErrLinkDead)
	SilentCloses              uint64 // of which: silent for the link timeout (node.ErrLinkSilent)
	UserTimeouts              uint64 // links the transport aborted: data unacknowledged for the user timeout
	Violations                uint64 // protocol-violation events
	DialFailures              uint64
}

// FrameStats count the frames injected and their fate.
type FrameStats struct {
	Sent       uint64 // frames injected at a TAP
	Expected   uint64 // deliveries expected: connected recipients at send time
	Delivered  uint64 // expected deliveries that happened
	Lost       uint64 // expected deliveries that did not happen
	Duplicated uint64 // deliveries beyond the first at one node
	Stray      uint64 // deliveries to nodes not connected at send time
	// BroadcastChecked and UnicastChecked count the frames sent while the
	// mesh was converged (every node knew the source; the route was
	// complete) and no link was lost before they settled: each of those
	// must reach every connected node (its destination) exactly once.
	BroadcastChecked, UnicastChecked uint64
	Loops                            uint64 // unicast frames that crossed a link twice the same way: a cycle of next hops
	Detours                          uint64 // unicast frames that came back to a node whose route changed meanwhile
	TransientLoops                   uint64 // loops of frames sent within FailoverConfirm of a loss
	// UnicastLost counts the lost deliveries of unicast frames;
	// LostInLinks those of them whose frame was last put on a link and had
	// not crossed it when it settled (TCP held it: the rest were dropped by
	// a node); LostInClosedLinks those of these whose link a node then
	// closed (or had closed already): frames given up with the link
	// (failed by liveness, or closed as the duplicate of a link dialled at
	// the same time), where the others were only later than the flood
	// window (a long stall of a lossy link).
	UnicastLost, LostInLinks, LostInClosedLinks uint64
}

// HealthStats count health requests and the answers checked.
type HealthStats struct {
	Requests, Answers, Checked uint64
}

// FaultResult is how long the mesh took to recover from one fault (or,
// for kind "start", to converge after the start).
type FaultResult struct {
	Kind string        // start, cut, one_way, reset, loss, heal, crash, halt, stall, resume, restart, partition, jump
	Desc string        // what happened, with node names
	At   time.Duration // virtual time of the fault
	// Recovery is the time from the fault until every pair of nodes that
	// could still reach each other did so by following routes over live
	// links, leaving out the pairs an earlier fault had broken and that
	// stayed broken since (they are that fault's to recover). Valid when
	// Recovered.
	Recovery  time.Duration
	Recovered bool
	// BrokenPairs is the number of ordered pairs that could not reach
	// each other at the first measurement after the fault, the pairs an
	// earlier fault had broken left out.
	BrokenPairs int
	// Detected says that some node dropped a link the fault silenced or
	// broke, DetectIn after the fault (for faults that touch links).
	Detected bool
	DetectIn time.Duration
	// Links is how many links a node held that the fault touched when it
	// began (a crash of a node whose neighbours are all down touches none).
	Links int
	// LinkBack says that, after a heal or a restart, a node's dial
	// brought a link up over the healed edge (to the restarted node),
	// LinkBackIn after the fault.
	LinkBack   bool
	LinkBackIn time.Duration
}

// measurer measures convergence and failover: after each fault it checks
// every ProbeStep whether all still-connected pairs reach each other.
type measurer struct {
	w         *World
	next      []int32 // n*n next hops, -1 for none
	pending   []pendingFault
	results   []FaultResult
	scheduled bool
	enabled   bool
	// dirty says that routes, links or paths may have changed since the
	// last measurement; while it is false the last count of broken pairs
	// stands (a probe of a large mesh costs every node's routes).
	dirty      bool
	lastBroken int
	// broken[x*n+u] says u's routes did not reach x at the last
	// measurement (nil before the first).
	broken []bool
}

// pendingFault is a fault whose recovery is being measured: the index of
// its result, and the pairs broken before it that have stayed broken
// since (nil if none), which are not its own.
type pendingFault struct {
	result    int
	inherited []bool
}

// touch notes that routes, links or paths may have changed.
func (m *measurer) touch() { m.dirty = true }

func (m *measurer) init(w *World) { m.w = w }

// MeasureRecovery turns on failover measurement: from now on every fault
// is followed by probes until the mesh has recovered. It also measures
// the convergence from now, as a result of kind "start".
func (w *World) MeasureRecovery() {
	w.measure.enabled = true
	w.measure.fault("start", "start")
}

// Recoveries returns the measured faults so far, in order.
func (w *World) Recoveries() []FaultResult { return slices.Clone(w.measure.results) }

// fault starts measuring the recovery from a fault that just happened
// and returns the index of its result, -1 when nothing is measured.
func (m *measurer) fault(desc, kind string) int {
	if !m.enabled {
		return -1
	}
	m.dirty = true
	m.results = append(m.results, FaultResult{Kind: kind, Desc: desc, At: time.Duration(m.w.now), BrokenPairs: -1})
	p := pendingFault{result: len(m.results) - 1}
	if m.lastBroken > 0 && m.broken != nil {
		// Pairs still broken by an earlier fault at the last measurement
		// (a heal whose link is not back yet, a fault that gave up).
		p.inherited = slices.Clone(m.broken)
	}
	m.pending = append(m.pending, p)
	if !m.scheduled {
		m.scheduled = true
		m.w.After(0, m.probe)
	}
	return len(m.results) - 1
}

// linkBack notes that a link came back after heal or restart r, at now.
func (m *measurer) linkBack(r int, now int64) {
	if r < 0 {
		return
	}
	if f := &m.results[r]; !f.LinkBack {
		f.LinkBack, f.LinkBackIn = true, time.Duration(now)-f.At
	}
}

// touches notes that fault r touches conn c, if a node holds it.
func (m *measurer) touches(r int, c *conn) {
	if r >= 0 && !c.reset && (c.end[0].up || c.end[1].up) {
		m.results[r].Links++
	}
}

// detected notes that a node dropped a link fault r touched, at now.
func (m *measurer) detected(r int, now int64) {
	if f := &m.results[r]; !f.Detected {
		f.Detected, f.DetectIn = true, time.Duration(now)-f.At
	}
}

// probe measures once and schedules the next probe while a fault is
// pending.
func (m *measurer) probe() {
	w := m.w
	m.scheduled = false
	if len(w.forged) > 0 {
		w.checkForged()
	}
	if n := w.N(); len(m.next) != n*n {
		m.next = make([]int32, n*n)
		m.dirty = true
	}
	if len(m.broken) != len(m.next) {
		m.broken = make([]bool, len(m.next))
		m.dirty = true
	}
	if m.dirty {
		m.lastBroken, m.dirty = m.brokenPairs(m.next, m.broken), false
	}
	var still []pendingFault
	for _, p := range m.pending {
		r := &m.results[p.result]
		broken := m.lastBroken
		if p.inherited != nil {
			broken = ownBroken(m.broken, p.inherited)
		}
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
			still = append(still, p)
		}
	}
	m.pending = still
	if len(still) > 0 {
		m.scheduled = true
		w.After(w.cfg.ProbeStep, m.probe)
	}
}

// ownBroken counts the pairs broken now that are not inherited, and
// forgets the inherited pairs that are no longer broken: if one breaks
// again, it counts.
func ownBroken(broken, inherited []bool) int {
	own := 0
	for i, b := range broken {
		switch {
		case !b:
			inherited[i] = false
		case !inherited[i]:
			own++
		}
	}
	return own
}

// connectivity returns a component id for each up node (-1 for down
// nodes) and the adjacency it used: usable static edges in a static
// world, live links in an organic one.
func (m *measurer) connectivity() ([]int, [][]int) {
	w := m.w
	n := w.N()
	var adj [][]int
	if w.net.allPair {
		adj = w.LiveLinks()
	} else {
		adj = w.net.usable()
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
			if u != s && w.cluster.nodes[u].opts.NoRelay {
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

// brokenPairs counts the ordered pairs of up nodes, connected to each
// other, whose routes do not lead from one to the other within the hop
// limit of targeted frames, and marks them in set (n*n, x*n+u; nil: not
// kept).
func (m *measurer) brokenPairs(next []int32, set []bool) int {
	w := m.w
	n := w.N()
	comp, adj := m.connectivity()
	w.cluster.nextHops(next)
	limit := int32(w.cluster.hopLimit())
	far := m.farPairs(comp, adj, int(limit))
	// dist: -1 unknown, -2 on the current walk, -3 does not reach, else
	// hops to x.
	clear(set)
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
				if set != nil {
					set[x*n+u] = true
				}
			}
		}
	}
	return broken
}

// farPairs marks, when the graph has pairs further apart than the hop
// limit, far[x][u] for each of them: no route can join them, so they
// are not counted as broken. It returns nil when there is none.
func (m *measurer) farPairs(comp []int, adj [][]int, limit int) [][]bool {
	w := m.w
	n := w.N()
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
			if u != x && w.cluster.nodes[u].opts.NoRelay {
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

// Converged reports whether every pair of connected nodes reaches each
// other now.
func (w *World) Converged() bool {
	m := &w.measure
	if n := w.N(); len(m.next) != n*n {
		m.next = make([]int32, n*n)
		m.dirty = true
	}
	// The probes keep only their count of broken pairs: m.next is
	// scratch, refilled by every measurement.
	return m.brokenPairs(m.next, nil) == 0
}

// Unreachable describes up to limit ordered pairs of connected nodes
// whose routes do not lead from one to the other, with where the walk
// ends.
func (w *World) Unreachable(limit int) []string {
	cl := &w.cluster
	n := w.N()
	next := make([]int32, n*n)
	comp, _ := w.measure.connectivity()
	cl.nextHops(next)
	var out []string
	for x := range n {
		for u := range n {
			if u == x || comp[u] < 0 || comp[u] != comp[x] {
				continue
			}
			path := []string{cl.nodes[u].name}
			seen := map[int]bool{u: true}
			v := u
			for v != x {
				nv := next[v*n+x]
				if nv < 0 {
					path = append(path, "(no route)")
					break
				}
				v = int(nv)
				path = append(path, cl.nodes[v].name)
				if seen[v] {
					path = append(path, "(loop)")
					break
				}
				seen[v] = true
			}
			if v != x || len(path) > 0 && strings.HasPrefix(path[len(path)-1], "(") {
				out = append(out, fmt.Sprintf("%s -> %s: %s", cl.nodes[u].name, cl.nodes[x].name, strings.Join(path, " ")))
				if len(out) >= limit {
					return out
				}
			}
		}
	}
	return out
}
