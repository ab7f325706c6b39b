package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Property tests over random topologies, fault schedules and traffic.
// Each failure prints the world's seed, the topology, the schedule and
// the events that led to the broken invariant; rapid prints how to
// replay it. Run more cases with -rapid.checks=N.

// genWorld draws a small static topology with fixed per-edge latencies
// and builds it.
func genWorld(rt *rapid.T, cfg Config) (*World, Topology) {
	cfg.Seed = rapid.Uint64().Draw(rt, "seed")
	if cfg.LAN.Latency == (Range{}) {
		cfg.LAN.Latency = Range{time.Millisecond, 20 * time.Millisecond}
	}
	cfg.Relink = true
	w := New(cfg)
	kind := rapid.SampledFrom([]string{"line", "ring", "star", "grid", "mesh", "random"}).Draw(rt, "topology")
	n := rapid.IntRange(3, 24).Draw(rt, "nodes")
	var t Topology
	switch kind {
	case "line":
		t = Line(n)
	case "ring":
		t = Ring(n)
	case "star":
		t = Star(n)
	case "grid":
		t = Grid(2, (n+1)/2)
	case "mesh":
		t = FullMesh(min(n, 7))
	case "random":
		t = Random(n, rapid.Float64Range(1.5, 4).Draw(rt, "degree"), w.Rand())
	}
	if err := w.Build(t); err != nil {
		rt.Fatal(err)
	}
	return w, t
}

// describe says what world a property ran, for failure messages.
func describeWorld(w *World, t Topology, schedule []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "world seed %d, %s of %d nodes, edges:", w.cfg.Seed, t.Kind, t.N)
	for _, e := range w.Edges() {
		lat, _ := w.EdgeLatency(e[0], e[1])
		fmt.Fprintf(&b, " %s-%s(%v)", w.Name(e[0]), w.Name(e[1]), lat)
	}
	if len(schedule) > 0 {
		fmt.Fprintf(&b, "\nschedule: %s", strings.Join(schedule, "; "))
	}
	return b.String()
}

// failOnViolations fails rt with the first violations and their traces.
func failOnViolations(rt *rapid.T, w *World, t Topology, schedule []string) {
	vs, n := w.Violations()
	if n == 0 {
		return
	}
	var b strings.Builder
	for i, v := range vs {
		if i == 2 {
			break
		}
		fmt.Fprintf(&b, "\n%s\nevents before it:\n%s", v, v.Trace)
	}
	rt.Fatalf("%d violations in %s%s", n, describeWorld(w, t, schedule), b.String())
}

// TestPropFirstPathRouting: in a quiet static topology, every node's
// next hop toward X is the neighbour over which X's newest announcement
// arrived first (the naive model, from the simulator's own log of
// arrivals; PROTOCOL.md "Learning a route"), and following next hops
// from any node reaches X without a loop along a least-latency path.
func TestPropFirstPathRouting(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w, topo := genWorld(rt, Config{ModelRouting: true})
		// Rounds start at 0 s, 5 s, 10 s...; 12.5 s is between two.
		w.RunUntil(12500 * time.Millisecond)
		if bad := w.CheckFirstPath(); len(bad) > 0 {
			if len(bad) > 8 {
				bad = append(bad[:8], fmt.Sprintf("... %d more", len(bad)-8))
			}
			rt.Fatalf("first-path routing broken in %s:\n%s\nrecent events:\n%s", describeWorld(w, topo, nil),
				strings.Join(bad, "\n"), w.Trace())
		}
		failOnViolations(rt, w, topo, nil)
	})
}

// TestPropTraffic: under random cuts, heals, crashes and restarts with
// broadcast, unicast, ARP-like and health traffic, every invariant the
// world checks holds: a broadcast reaches each node at most once and
// never its source, and exactly once every node connected to the source
// while the mesh was converged and no link was lost during the flood; a
// unicast frame never loops and arrives exactly once when sent over a
// complete route with no link lost; every health answer's traceroute is
// the path the request travelled and its reverse the path the answer
// took; no node sees a protocol violation.
func TestPropTraffic(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w, topo := genWorld(rt, Config{Detect: 500 * time.Millisecond})
		n := topo.N
		var schedule []string
		for k := range rapid.IntRange(0, 4).Draw(rt, "faults") {
			at := time.Duration(rapid.IntRange(2000, 40000).Draw(rt, fmt.Sprintf("fault%d.at_ms", k))) * time.Millisecond
			dur := time.Duration(rapid.IntRange(100, 15000).Draw(rt, fmt.Sprintf("fault%d.for_ms", k))) * time.Millisecond
			if rapid.Bool().Draw(rt, fmt.Sprintf("fault%d.crash", k)) {
				i := rapid.IntRange(0, n-1).Draw(rt, fmt.Sprintf("fault%d.node", k))
				schedule = append(schedule, fmt.Sprintf("crash n%d at %v for %v", i, at, dur))
				w.At(at, func() { w.Crash(i) })
				w.At(at+dur, func() { w.Restart(i) })
			} else {
				edges := w.Edges()
				e := edges[rapid.IntRange(0, len(edges)-1).Draw(rt, fmt.Sprintf("fault%d.edge", k))]
				schedule = append(schedule, fmt.Sprintf("cut n%d-n%d at %v for %v", e[0], e[1], at, dur))
				w.At(at, func() { _ = w.Cut(e[0], e[1]) })
				w.At(at+dur, func() { w.Heal(e[0], e[1]) })
			}
		}
		for k := range rapid.IntRange(5, 40).Draw(rt, "frames") {
			at := time.Duration(rapid.IntRange(1000, 55000).Draw(rt, fmt.Sprintf("frame%d.at_ms", k))) * time.Millisecond
			src := rapid.IntRange(0, n-1).Draw(rt, fmt.Sprintf("frame%d.src", k))
			dst := rapid.IntRange(0, n-1).Draw(rt, fmt.Sprintf("frame%d.dst", k))
			kind := rapid.SampledFrom([]string{"broadcast", "unicast", "arp", "health"}).Draw(rt, fmt.Sprintf("frame%d.kind", k))
			w.At(at, func() {
				switch kind {
				case "broadcast":
					w.Broadcast(src)
				case "unicast":
					w.Unicast(src, dst)
				case "arp":
					w.ARP(src, dst)
				case "health":
					w.StartHealth(src)
				}
			})
		}
		w.RunUntil(time.Minute)
		failOnViolations(rt, w, topo, schedule)
	})
}

// failoverBound is the recovery bound TestPropFailover enforces: the
// detection delay, plus one announcement interval in case the node must
// wait for a new round, plus propagation.
const failoverBound = 500*time.Millisecond + 5*time.Second + time.Second

// TestPropFailover: after a cut or a crash in a converged mesh, every
// pair of nodes that can still reach each other does so again within
// failoverBound. The worst recovery seen is logged.
func TestPropFailover(t *testing.T) {
	var worst time.Duration
	var worstDesc string
	rapid.Check(t, func(rt *rapid.T) {
		w, topo := genWorld(rt, Config{Detect: 500 * time.Millisecond, ProbeStep: 10 * time.Millisecond})
		w.MeasureRecovery()
		at := time.Duration(rapid.IntRange(10000, 20000).Draw(rt, "fault.at_ms")) * time.Millisecond
		var desc string
		if rapid.Bool().Draw(rt, "crash") {
			i := rapid.IntRange(0, topo.N-1).Draw(rt, "node")
			desc = fmt.Sprintf("crash n%d at %v", i, at)
			w.At(at, func() { w.Crash(i) })
		} else {
			edges := w.Edges()
			e := edges[rapid.IntRange(0, len(edges)-1).Draw(rt, "edge")]
			desc = fmt.Sprintf("cut n%d-n%d at %v", e[0], e[1], at)
			w.At(at, func() { _ = w.Cut(e[0], e[1]) })
		}
		w.RunUntil(at + 20*time.Second)
		for _, f := range w.Recoveries() {
			if !f.Recovered || f.Recovery > failoverBound {
				rt.Fatalf("%s: %+v (bound %v) in %s\nstill broken: %v\nrecent events:\n%s", f.Desc, f, failoverBound,
					describeWorld(w, topo, []string{desc}), w.Unreachable(10), w.Trace())
			}
			if f.Kind != "start" && f.Recovery > worst {
				worst, worstDesc = f.Recovery, describeWorld(w, topo, []string{desc})
			}
		}
		failOnViolations(rt, w, topo, []string{desc})
	})
	t.Logf("worst recovery %v (bound %v) in %s", worst, failoverBound, worstDesc)
}
