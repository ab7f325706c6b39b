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
	fmt.Fprintf(&b, "world seed %d, %s of %d nodes, edges:", w.Config().Seed, t.Kind, t.N)
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
// arrivals; docs/protocol.md#first-path-routing), and following next hops
// from any node reaches X without a loop along a least-latency path
// (to within the microsecond grain of held times, per hop). Every ordered pair of nodes must have been compared both ways, so the
// property cannot hold by comparing nothing.
func TestPropFirstPathRouting(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w, topo := genWorld(rt, Config{ModelRouting: true})
		// The start's change rounds and the new links' tables have
		// settled long before 12.5 s, and the first refresh round comes
		// at 90 s at the earliest.
		w.RunUntil(12500 * time.Millisecond)
		res := w.CheckFirstPath()
		if bad := res.Mismatches; len(bad) > 0 {
			if len(bad) > 8 {
				bad = append(bad[:8], fmt.Sprintf("... %d more", len(bad)-8))
			}
			rt.Fatalf("first-path routing broken in %s:\n%s\nrecent events:\n%s", describeWorld(w, topo, nil),
				strings.Join(bad, "\n"), w.Trace())
		}
		if pairs := w.N() * (w.N() - 1); res.Routes != pairs || res.Paths != pairs {
			rt.Fatalf("vacuous: compared %d routes with the model and followed %d paths, want %d each, in %s",
				res.Routes, res.Paths, pairs, describeWorld(w, topo, nil))
		}
		failOnViolations(rt, w, topo, nil)
	})
}

// TestPropTraffic: under random faults (silent and one-way cuts and
// their heals, resets, 20 % loss, crashes, halts and stalls, and
// restarts) with broadcast, unicast, ARP-like and health traffic, every
// invariant the
// world checks holds: a broadcast reaches each node at most once and
// never its source, and exactly once every node connected to the source
// while the mesh was converged and no link was lost during the flood; a
// unicast frame never loops and arrives exactly once when sent over a
// complete route with no link lost; every health answer's traceroute is
// the path the request travelled and its reverse the path the answer
// took; no node sees a protocol violation.
//
// So that the property cannot hold by checking nothing, every run ends
// with a quiet phase: 15 s after the last fault has been undone one
// broadcast, one unicast and one health request are sent, and the
// checker must have checked each of them (every answer of the health
// request included).
func TestPropTraffic(t *testing.T) {
	var random, randomChecked uint64
	rapid.Check(t, func(rt *rapid.T) {
		w, topo := genWorld(rt, Config{})
		n := topo.N
		var schedule []string
		for k := range rapid.IntRange(0, 4).Draw(rt, "faults") {
			at := time.Duration(rapid.IntRange(2000, 40000).Draw(rt, fmt.Sprintf("fault%d.at_ms", k))) * time.Millisecond
			dur := time.Duration(rapid.IntRange(100, 15000).Draw(rt, fmt.Sprintf("fault%d.for_ms", k))) * time.Millisecond
			kind := rapid.SampledFrom([]string{"crash", "halt", "stall", "cut", "one_way", "reset", "loss"}).Draw(rt, fmt.Sprintf("fault%d.kind", k))
			switch kind {
			case "crash", "halt", "stall":
				i := rapid.IntRange(0, n-1).Draw(rt, fmt.Sprintf("fault%d.node", k))
				schedule = append(schedule, fmt.Sprintf("%s n%d at %v for %v", kind, i, at, dur))
				switch kind {
				case "crash":
					w.At(at, func() { w.Crash(i) })
				case "halt":
					w.At(at, func() { w.Halt(i) })
				case "stall":
					w.At(at, func() { w.Stall(i, dur) })
				}
				w.At(at+dur, func() { w.Restart(i) })
			default:
				edges := w.Edges()
				e := edges[rapid.IntRange(0, len(edges)-1).Draw(rt, fmt.Sprintf("fault%d.edge", k))]
				if rapid.Bool().Draw(rt, fmt.Sprintf("fault%d.reversed", k)) {
					e[0], e[1] = e[1], e[0]
				}
				schedule = append(schedule, fmt.Sprintf("%s n%d-n%d at %v for %v", kind, e[0], e[1], at, dur))
				switch kind {
				case "cut":
					w.At(at, func() { _ = w.Cut(e[0], e[1]) })
					w.At(at+dur, func() { w.Heal(e[0], e[1]) })
				case "one_way":
					w.At(at, func() { _ = w.OneWay(e[0], e[1]) })
					w.At(at+dur, func() { w.HealOneWay(e[0], e[1]) })
				case "reset":
					w.At(at, func() { _ = w.Reset(e[0], e[1]) })
				case "loss":
					w.At(at, func() { _ = w.Loss(e[0], e[1], 0.2) })
					w.At(at+dur, func() { _ = w.Loss(e[0], e[1], 0) })
				}
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
		// Frames sent by 55 s have settled by 65 s.
		w.RunUntil(65 * time.Second)
		failOnViolations(rt, w, topo, schedule)
		before, hBefore := w.Frames(), w.HealthChecks()
		random += before.Sent
		randomChecked += before.BroadcastChecked + before.UnicastChecked

		// The quiet phase: every fault was undone by 55 s.
		src := rapid.IntRange(0, n-1).Draw(rt, "quiet.src")
		dst := (src + rapid.IntRange(1, n-1).Draw(rt, "quiet.dst_offset")) % n
		schedule = append(schedule, fmt.Sprintf("quiet: broadcast from n%d, unicast n%d-n%d, health from n%d at 70s", src, src, dst, dst))
		w.At(70*time.Second, func() {
			w.Broadcast(src)
			w.Unicast(src, dst)
			w.StartHealth(dst)
		})
		w.RunUntil(80 * time.Second)
		failOnViolations(rt, w, topo, schedule)
		after, hAfter := w.Frames(), w.HealthChecks()
		b, u, h := after.BroadcastChecked-before.BroadcastChecked, after.UnicastChecked-before.UnicastChecked, hAfter.Checked-hBefore.Checked
		if b != 1 || u != 1 || h != uint64(n-1) {
			rt.Fatalf("vacuous: the quiet phase checked %d broadcasts, %d unicasts and %d health answers, want 1, 1 and %d, in %s\nstill broken: %v",
				b, u, h, n-1, describeWorld(w, topo, schedule), w.Unreachable(10))
		}
	})
	t.Logf("%d of %d frames sent under faults were checked for delivery", randomChecked, random)
}

// failoverBound is the recovery bound of a fault in world w, derived
// from the protocol (docs/protocol.md#fast-failover and #link-liveness):
//
//   - detect: the first node to drop a lost link does so within detect of
//     the fault. A crashed node's kernel closes its connections, so its
//     neighbours learn one latency later; a silent cut is found by the
//     heartbeats within the detection time (DeadAfter, 750 ms: the links
//     of these worlds are at most 20 ms, so their RTT never widens it, and
//     a link's first failure is not held down).
//   - That node moves the routes over the link to loop-free backups or
//     withdraws them, and floods a 0x86; every node announces itself when
//     the 0x86 reaches it, at most one trigger gap later (the rate limit
//     of triggered announcements), and its new round replaces every route
//     that crossed the lost link. The 0x86 and the new rounds each cross
//     the mesh within one flood time, at most (N-1) hops of the longest
//     latency.
//   - The measurement probes every ProbeStep.
//
// So the bound is detect + TriggerGap + 2 (N-1) maxLatency + ProbeStep.
func failoverBound(w *World, detect time.Duration) time.Duration {
	var maxLat time.Duration
	for _, e := range w.Edges() {
		lat, _ := w.EdgeLatency(e[0], e[1])
		maxLat = max(maxLat, lat)
	}
	cfg := w.Config().Timers.nodeConfig()
	return detect + cfg.TriggerGap + 2*time.Duration(w.N()-1)*maxLat + w.Config().ProbeStep
}

// TestPropFailover: after a cut or a crash in a converged mesh, every
// pair of nodes that can still reach each other does so again within
// failoverBound of the detection time (DeadAfter). The fault must have
// been measured (not only the start), and the worst recovery seen is
// logged.
func TestPropFailover(t *testing.T) {
	var worst, worstBound time.Duration
	var worstDesc string
	rapid.Check(t, func(rt *rapid.T) {
		w, topo := genWorld(rt, Config{ProbeStep: 10 * time.Millisecond})
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
		recs := w.Recoveries()
		if len(recs) != 2 || recs[0].Kind != "start" || recs[1].Kind == "start" {
			rt.Fatalf("vacuous: measured %+v, want the start and the fault (%s)", recs, desc)
		}
		bound := failoverBound(w, w.Config().Timers.nodeConfig().DeadAfter)
		for _, f := range recs {
			if !f.Recovered || f.Kind != "start" && f.Recovery > bound {
				rt.Fatalf("%s: %+v (bound %v) in %s\nstill broken: %v\nrecent events:\n%s", f.Desc, f, bound,
					describeWorld(w, topo, []string{desc}), w.Unreachable(10), w.Trace())
			}
			if f.Kind != "start" && f.Recovery > worst {
				worst, worstBound, worstDesc = f.Recovery, bound, describeWorld(w, topo, []string{desc})
			}
		}
		failOnViolations(rt, w, topo, []string{desc})
	})
	t.Logf("worst recovery %v (bound %v) in %s", worst, worstBound, worstDesc)
}

// TestPropSilentCut: a silent cut tells nobody, so no route can move off
// the cut link before one of its ends finds it dead: in random
// topologies, when the cut breaks some pair's route, the failover is
// never shorter than the earliest detection the two ends' liveness
// allows at the moment of the cut (the link's detection time less the
// time it had already been silent, as each end reports it). The cut
// falls between two announcement rounds (every 5 s from 0 s), far enough
// from the next that no new round moves a route first. And every pair
// that stays connected reaches each other again within failoverBound of
// that earliest detection. So that the property cannot hold by checking
// nothing, at least a quarter of the runs must cut a link some route
// crossed (about half do).
func TestPropSilentCut(t *testing.T) {
	var runs, broke int
	var shortestGap, worst, worstBound time.Duration = time.Hour, 0, 0
	rapid.Check(t, func(rt *rapid.T) {
		w, topo := genWorld(rt, Config{ProbeStep: 10 * time.Millisecond})
		w.MeasureRecovery()
		round := rapid.IntRange(2, 3).Draw(rt, "round")
		at := time.Duration(round)*5*time.Second + time.Duration(rapid.IntRange(300, 3000).Draw(rt, "cut.after_round_ms"))*time.Millisecond
		edges := w.Edges()
		e := edges[rapid.IntRange(0, len(edges)-1).Draw(rt, "edge")]
		desc := fmt.Sprintf("silent cut n%d-n%d at %v", e[0], e[1], at)
		earliest := time.Duration(-1)
		w.At(at, func() {
			for _, p := range [][2]int{{e[0], e[1]}, {e[1], e[0]}} {
				for _, l := range w.Links(p[0]) {
					if l.Peer == w.MAC(p[1]) && l.Heartbeats {
						if left := l.DetectAfter - l.Silent; earliest < 0 || left < earliest {
							earliest = left
						}
					}
				}
			}
			_ = w.Cut(e[0], e[1])
		})
		w.RunUntil(at + 20*time.Second)
		runs++
		recs := w.Recoveries()
		if len(recs) != 2 || recs[1].Kind != "cut" {
			rt.Fatalf("vacuous: measured %+v, want the start and the cut (%s)", recs, desc)
		}
		if earliest < 0 {
			rt.Fatalf("no link with heartbeats over the cut edge at the cut: %s in %s", desc, describeWorld(w, topo, []string{desc}))
		}
		f := recs[1]
		bound := failoverBound(w, earliest)
		switch {
		case !f.Recovered || f.Recovery > bound:
			rt.Fatalf("%s: %+v (earliest detection %v, bound %v) in %s\nstill broken: %v\nrecent events:\n%s", f.Desc, f,
				earliest, bound, describeWorld(w, topo, []string{desc}), w.Unreachable(10), w.Trace())
		case f.BrokenPairs > 0 && f.Recovery < earliest:
			rt.Fatalf("%s broke %d pairs and they recovered in %v, before either end could find the link dead (%v): "+
				"something told the nodes (an oracle)\nin %s\nrecent events:\n%s", f.Desc, f.BrokenPairs, f.Recovery, earliest,
				describeWorld(w, topo, []string{desc}), w.Trace())
		case !f.Detected || f.DetectIn < earliest:
			rt.Fatalf("%s: a node dropped the link after %v (detected %v), the earliest its liveness allows is %v\nin %s",
				f.Desc, f.DetectIn, f.Detected, earliest, describeWorld(w, topo, []string{desc}))
		}
		if f.BrokenPairs > 0 {
			broke++
			shortestGap = min(shortestGap, f.Recovery-earliest)
		}
		if f.Recovery > worst {
			worst, worstBound = f.Recovery, bound
		}
		failOnViolations(rt, w, topo, []string{desc})
	})
	if 4*broke < runs {
		t.Fatalf("vacuous: only %d of %d cuts broke a route (about half of them do)", broke, runs)
	}
	t.Logf("%d of %d cuts broke a route; failover minus earliest detection at least %v; worst recovery %v (bound %v)",
		broke, runs, shortestGap, worst, worstBound)
}

// TestPropForgedAnnouncementsNeverAttractTraffic: with signatures, a
// member that forges announcements of another member's MAC (rounds an
// hour ahead of the victim's, with a signature it cannot make, as if it
// relayed them) at random times never has its round taken by any other
// node, so it never draws the victim's traffic, and unicast frames to the
// victim sent afterwards each arrive exactly once.
// TestForgeryTakenWithoutSignatures shows the check is not vacuous.
func TestPropForgedAnnouncementsNeverAttractTraffic(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w, topo := genWorld(rt, Config{Signatures: true})
		n := topo.N
		forger := rapid.IntRange(0, n-1).Draw(rt, "forger")
		victim := (forger + rapid.IntRange(1, n-1).Draw(rt, "victim_offset")) % n
		var schedule []string
		for k := range rapid.IntRange(1, 5).Draw(rt, "forgeries") {
			at := time.Duration(rapid.IntRange(1000, 30000).Draw(rt, fmt.Sprintf("forgery%d.at_ms", k))) * time.Millisecond
			schedule = append(schedule, fmt.Sprintf("n%d forges n%d at %v", forger, victim, at))
			w.At(at, func() { w.Forge(forger, victim) })
		}
		for k := range 3 {
			src := (victim + 1 + k%(n-1)) % n
			w.At(35*time.Second+time.Duration(k)*100*time.Millisecond, func() { w.Unicast(src, victim) })
		}
		w.RunUntil(40 * time.Second)
		w.checkForged()
		failOnViolations(rt, w, topo, schedule)
		if len(w.forged) == 0 {
			rt.Fatalf("vacuous: no forgery was sent in %s", describeWorld(w, topo, schedule))
		}
		if got := w.Frames().UnicastChecked; got == 0 {
			rt.Fatalf("vacuous: no unicast to the victim was checked in %s", describeWorld(w, topo, schedule))
		}
	})
}

// Without signatures the same forgery is taken: the nodes near the forger
// route the victim's traffic to it, until the victim's next round, which
// its echo of the forgery brings, passes it.
func TestForgeryTakenWithoutSignatures(t *testing.T) {
	w := New(Config{Seed: 1, LAN: LinkClass{Latency: Fixed(time.Millisecond)}})
	if err := w.Build(Ring(6)); err != nil {
		t.Fatal(err)
	}
	w.At(5*time.Second, func() { w.Forge(3, 0) })
	w.RunUntil(6 * time.Second)
	if got := w.ViolationCounts()["forged"]; got == 0 {
		t.Fatal("no node took the forged round without signatures")
	}
}
