package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/invpn/invpn/wire"
)

// The naive first-path model (docs/design.md#compare-with-a-naive-model): from its own log of
// announcement arrivals the checker knows, for every node and target,
// the neighbour over which the target's newest announcement arrived
// first, which is where first-path routing must send frames for that
// target.

// modelEntry is the model's route of one node toward one target.
type modelEntry struct {
	id   uint64
	via  int32 // -1: nothing arrived
	sent int64 // its arrival less the time batches held it
}

// announcement updates the naive first-path model: for each node and
// target, the neighbour over which the target's newest announcement
// arrived first, counting its arrival less the time relays held it in
// batches (held; docs/protocol.md#quiet-refresh). Copies whose path
// already holds the receiver are ignored, as the node ignores them.
func (c *checker) announcement(from, to int, msg []byte, held int64) {
	cl := &c.w.cluster
	if n := cl.n(); len(c.model) != n*n {
		c.growModel()
	}
	body := msg[1:] // version, id, mac...
	pathKnown := false
	if wire.Type(msg[0]) == wire.TypeInfoPath {
		if len(msg) < 2 {
			return
		}
		n := int(msg[1])
		body = msg[2:]
		if n != wire.PathUnknown {
			pathKnown = n < wire.MaxPath
			if len(body) < 6*n {
				return
			}
			me := cl.nodes[to].mac
			for k := range n {
				if wire.MAC(body[6*k:6*k+6]) == me {
					return
				}
			}
			body = body[6*n:]
		}
	}
	if len(body) < 15 {
		return
	}
	id := binary.BigEndian.Uint64(body[1:9])
	x, ok := cl.byMAC[wire.MAC(body[9:15])]
	if !ok || x == to {
		return
	}
	e := &c.model[to*cl.n()+x]
	sent := c.w.now - held
	switch {
	case e.via < 0 || id > e.id:
		e.id, e.via, e.sent = id, int32(from), sent
	case id == e.id && sent < e.sent && pathKnown:
		e.via, e.sent = int32(from), sent
	}
}

// growModel sizes the model for the current number of nodes, empty.
func (c *checker) growModel() {
	n := c.w.cluster.n()
	c.model = make([]modelEntry, n*n)
	for k := range c.model {
		c.model[k].via = -1
	}
}

// FirstPathCheck is what CheckFirstPath compared and what did not match.
type FirstPathCheck struct {
	// Routes is the number of (node, target) pairs whose route was
	// compared with a model that had an announcement of the target.
	Routes int
	// Paths is the number of routes followed hop by hop to their target
	// and checked for loops and least latency.
	Paths int
	// Mismatches has one line per route or path that is wrong.
	Mismatches []string
}

// CheckFirstPath compares every up node's routes with the naive
// first-path model (Config.ModelRouting must be set) and, in a world
// whose links all have fixed latencies and no bandwidth limit, checks
// that following next hops from any node reaches its target without a
// loop along a least-latency path (within 1 µs per hop: held times travel
// in whole microseconds). Call it when no announcement is in
// flight: in the middle of an announcement interval of a quiet static
// topology.
func (w *World) CheckFirstPath() FirstPathCheck {
	var res FirstPathCheck
	if !w.cfg.ModelRouting {
		res.Mismatches = []string{"CheckFirstPath: Config.ModelRouting is not set"}
		return res
	}
	cl := &w.cluster
	c := &w.check
	d := &w.trace.describe
	n := cl.n()
	if len(c.model) != n*n {
		c.growModel()
	}
	bad := func(format string, args ...any) {
		res.Mismatches = append(res.Mismatches, fmt.Sprintf(format, args...))
	}
	next := make([]int32, n*n)
	cl.nextHops(next)
	dist := c.latencies()
	for u, sn := range cl.nodes {
		if sn.n == nil {
			continue
		}
		for x := range n {
			if x == u {
				continue
			}
			m := c.model[u*n+x]
			if m.via >= 0 {
				res.Routes++
			}
			ri, ok := sn.n.Route(cl.nodes[x].mac)
			switch {
			case m.via < 0 && ok:
				bad("%s routes to %s via %s, but no announcement of %s reached it",
					sn.name, cl.nodes[x].name, d.MAC(ri.NextHop), cl.nodes[x].name)
			case m.via >= 0 && !ok:
				bad("%s has no route to %s; model: via %s (id %d)",
					sn.name, cl.nodes[x].name, cl.nodes[m.via].name, m.id)
			case m.via >= 0 && ri.NextHop != cl.nodes[m.via].mac:
				bad("%s routes to %s via %s (id %d), model: via %s (newest id %d arrived first from it)",
					sn.name, cl.nodes[x].name, d.MAC(ri.NextHop), ri.ID, cl.nodes[m.via].name, m.id)
			}
			if dist == nil || math.IsInf(dist[u][x], 1) {
				continue
			}
			// Follow next hops: no loop, least latency.
			res.Paths++
			var total float64
			seen := map[int]bool{u: true}
			path := []string{sn.name}
			v := u
			for v != x {
				nv := next[v*n+x]
				if nv < 0 {
					bad("route %s -> %s stops at %s: %s", sn.name, cl.nodes[x].name, cl.nodes[v].name, strings.Join(path, " "))
					break
				}
				lat, _ := w.EdgeLatency(v, int(nv))
				total += float64(lat)
				v = int(nv)
				path = append(path, cl.nodes[v].name)
				if seen[v] {
					bad("route %s -> %s loops: %s", sn.name, cl.nodes[x].name, strings.Join(path, " "))
					break
				}
				seen[v] = true
			}
			// Held times travel in whole microseconds (wire.MaxHeld), so
			// a copy held on its way competes up to 1 µs late per hop
			// that held it: paths within that of the least latency tie.
			if v == x && total > dist[u][x]+float64(heldGrain*time.Duration(n-1)) {
				bad("route %s -> %s takes %v over %s; the least latency is %v",
					sn.name, cl.nodes[x].name, time.Duration(total), strings.Join(path, " "), time.Duration(dist[u][x]))
			}
		}
	}
	return res
}

// heldGrain is the resolution of a held time on the wire.
const heldGrain = time.Microsecond

// latencies returns all-pairs least latencies over live links, or nil if
// some edge has a bandwidth limit (queueing makes first arrival differ
// from least latency).
func (c *checker) latencies() [][]float64 {
	w := c.w
	n := w.N()
	if n > 400 {
		return nil
	}
	for _, e := range w.net.edgeSeq {
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
