package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RunOptions change how a scenario runs.
type RunOptions struct {
	// Seed, when not zero, replaces the scenario's seed.
	Seed uint64
	// Progress, when set, is called after every simulated second with
	// the virtual time reached and the scenario's duration. It adds no
	// event: the run is the same with or without it.
	Progress func(done, total time.Duration)
	// OnViolation is passed to World.OnViolation.
	OnViolation func(Violation)
}

// Dur is a duration that reads well in JSON ("1.25s").
type Dur time.Duration

// MarshalJSON writes d as a duration string.
func (d Dur) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// String formats d as time.Duration does.
func (d Dur) String() string { return time.Duration(d).String() }

// Failover summarizes recovery times.
type Failover struct {
	Faults      int `json:"faults"`
	Unrecovered int `json:"unrecovered"`
	P50         Dur `json:"p50"`
	P95         Dur `json:"p95"`
	Max         Dur `json:"max"`
}

// ExpectResult is the outcome of one expectation.
type ExpectResult struct {
	Line   int    `json:"line"`
	Text   string `json:"text"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// FaultReport is one fault in a report.
type FaultReport struct {
	Kind        string `json:"kind"`
	Desc        string `json:"desc"`
	At          Dur    `json:"at"`
	Recovered   bool   `json:"recovered"`
	Recovery    Dur    `json:"recovery"`
	BrokenPairs int    `json:"broken_pairs"`
}

// Report is what a scenario run measured and checked.
type Report struct {
	Scenario    string         `json:"scenario"`
	File        string         `json:"file"`
	Seed        uint64         `json:"seed"`
	Nodes       int            `json:"nodes"`
	Duration    Dur            `json:"duration"`
	Converged   bool           `json:"converged"`
	ConvergeIn  Dur            `json:"converge_in"`
	Faults      []FaultReport  `json:"faults"`
	Failover    Failover       `json:"failover"`
	Frames      FrameStats     `json:"frames"`
	Health      HealthStats    `json:"health"`
	ControlMsgs float64        `json:"control_msgs_per_node_s"`
	ControlB    float64        `json:"control_bytes_per_node_s"`
	DataMsgs    float64        `json:"data_msgs_per_node_s"`
	QueueDrops  uint64         `json:"queue_drops"`
	Closes      uint64         `json:"closes"`
	DialFails   uint64         `json:"dial_failures"`
	Links       uint64         `json:"links_created"`
	SeedLinks   uint64         `json:"seed_protocol_links"`
	MaxDegree   int            `json:"max_degree"`
	MeanDegree  float64        `json:"mean_degree"`
	Totals      Totals         `json:"totals"`
	Hash        string         `json:"trace_hash"`
	Violations  []Violation    `json:"violations"`
	ViolationN  int            `json:"violation_count"`
	Expect      []ExpectResult `json:"expectations"`
	OK          bool           `json:"ok"`
}

// World builds the world a scenario describes, with its faults and
// traffic scheduled, without running it.
func (s *Scenario) World(opt RunOptions) (*World, error) {
	seed := s.Seed
	if opt.Seed != 0 {
		seed = opt.Seed
	}
	t := s.Topology
	cfg := Config{Seed: seed, Timers: s.Timers, LAN: s.LAN, WAN: s.WAN, QueueLimit: s.QueueLimit,
		Detect: s.Detect, DialTimeout: s.DialTimeout, SeedProtocol: s.SeedProtocol, ClockSkew: s.ClockSkew,
		Relink: t.Kind != "organic", ProbeStep: s.ProbeStep, FloodWindow: s.FloodWindow, RecoveryTimeout: s.Recovery}
	for _, f := range s.Faults {
		// A skew at 0 s is how the node's clock runs from its start: a
		// skew applied later is a step of the clock (see Jump).
		if f.Action == "skew" && f.At == 0 && f.Every == 0 && f.Target != "random" {
			if cfg.Offsets == nil {
				cfg.Offsets = map[int]time.Duration{}
			}
			cfg.Offsets[nodeIndex(f.Target)] = f.By
		}
	}
	w := New(cfg)
	w.OnViolation = opt.OnViolation
	var topo Topology
	switch t.Kind {
	case "line":
		topo = Line(t.Nodes)
	case "ring":
		topo = Ring(t.Nodes)
	case "star":
		topo = Star(t.Nodes)
	case "grid":
		topo = Grid(t.Rows, t.Cols)
	case "mesh":
		topo = FullMesh(t.Nodes)
	case "random":
		topo = Random(t.Nodes, t.Degree, w.Rand())
	case "multisite":
		topo = MultiSite(t.Sites, t.PerSite, t.WANLinks, w.Rand())
	case "organic":
		topo = Organic(t.Nodes)
	default:
		return nil, fmt.Errorf("%s: unknown topology %q", s.File, t.Kind)
	}
	if err := w.Build(topo); err != nil {
		return nil, fmt.Errorf("%s: %w", s.File, err)
	}
	if topo.Organic {
		every := t.JoinEvery
		if every <= 0 {
			every = 100 * time.Millisecond
		}
		for i := 1; i < topo.N; i++ {
			w.At(time.Duration(i)*every, func() { w.Restart(i) })
		}
		w.At(time.Duration(topo.N-1)*every, w.MeasureRecovery)
	} else {
		w.MeasureRecovery()
	}
	for _, f := range s.Faults {
		if _, ok := cfg.Offsets[nodeIndex(f.Target)]; ok && f.Action == "skew" && f.At == 0 && f.Every == 0 {
			continue
		}
		s.scheduleFault(w, topo, f)
	}
	for _, tr := range s.Traffic {
		s.scheduleTraffic(w, tr)
	}
	return w, nil
}

// times returns the firing times of a schedule entry.
func times(at, every, until time.Duration, count int, end time.Duration) []time.Duration {
	if every <= 0 {
		return []time.Duration{at}
	}
	if until <= 0 || until > end {
		until = end
	}
	var out []time.Duration
	for t := at; t <= until && (count == 0 || len(out) < count); t += every {
		out = append(out, t)
	}
	return out
}

func nodeIndex(name string) int {
	k, _ := strconv.Atoi(strings.TrimPrefix(name, "n"))
	return k
}

func nodeRange(s string) []int {
	lo, hi, ok := strings.Cut(s, "..")
	if !ok {
		return []int{nodeIndex(s)}
	}
	var out []int
	for i := nodeIndex(lo); i <= nodeIndex(hi); i++ {
		out = append(out, i)
	}
	return out
}

// randomUp returns a random node that is up, or -1.
func (w *World) randomUp() int {
	var up []int
	for i := range w.nodes {
		if w.Up(i) {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return -1
	}
	return up[w.rng.IntN(len(up))]
}

func (s *Scenario) scheduleFault(w *World, topo Topology, f FaultSpec) {
	for _, at := range times(f.At, f.Every, f.Until, f.Count, s.Duration) {
		w.At(at, func() { s.fireFault(w, topo, f) })
	}
}

func (s *Scenario) fireFault(w *World, topo Topology, f FaultSpec) {
	switch f.Action {
	case "cut":
		var cands []*edge
		for _, e := range w.edgeSeq {
			if e.cut || (!e.static && !w.allPair) {
				continue
			}
			live := false
			for _, c := range e.conns {
				live = live || !c.broken
			}
			switch {
			case f.Target == "random" && live:
				cands = append(cands, e)
			case strings.HasPrefix(f.Target, "wan") && e.wan:
				cands = append(cands, e)
			}
		}
		var e *edge
		switch {
		case strings.HasPrefix(f.Target, "wan:"):
			k, _ := strconv.Atoi(strings.TrimPrefix(f.Target, "wan:"))
			n := 0
			for _, x := range w.edgeSeq {
				if x.wan {
					if n == k {
						e = x
					}
					n++
				}
			}
		case f.Target == "random" || f.Target == "wan":
			if len(cands) > 0 {
				e = cands[w.rng.IntN(len(cands))]
			}
		default:
			a, b, _ := strings.Cut(f.Target, "-")
			e = w.edges[pairKey(nodeIndex(a), nodeIndex(b))]
			if e == nil {
				w.violate("scenario", fmt.Sprintf("%s:%d: cut %s: no such edge", s.File, f.Line, f.Target))
				return
			}
		}
		if e == nil || e.cut {
			return
		}
		a, b := e.a, e.b
		_ = w.Cut(a, b)
		if f.For > 0 {
			w.After(f.For, func() { w.Heal(a, b) })
		}
	case "partition":
		var groups [][]int
		switch {
		case f.Groups != nil:
			for _, g := range f.Groups {
				var idx []int
				for _, name := range g {
					idx = append(idx, nodeRange(name)...)
				}
				groups = append(groups, idx)
			}
		case f.Target == "half":
			perm := w.rng.Perm(len(w.nodes))
			groups = [][]int{perm[:len(perm)/2]}
			slices.Sort(groups[0])
		case f.Target == "sites":
			for i, site := range topo.Site {
				for len(groups) <= site {
					groups = append(groups, nil)
				}
				groups[site] = append(groups[site], i)
			}
		default:
			groups = [][]int{nodeRange(f.Target)}
		}
		w.Partition(groups)
		if f.For > 0 {
			w.After(f.For, w.HealPartition)
		}
	case "crash":
		i := w.randomUp()
		if f.Target != "random" {
			i = nodeIndex(f.Target)
		}
		if i < 0 || !w.Up(i) {
			return
		}
		w.Crash(i)
		if f.For > 0 {
			w.After(f.For, func() { w.Restart(i) })
		}
	case "skew", "jump":
		i := w.rng.IntN(len(w.nodes))
		if f.Target != "random" {
			i = nodeIndex(f.Target)
		}
		if f.Action == "jump" {
			w.Jump(i, f.By)
		} else {
			old := w.nodes[i].offset
			w.Skew(i, f.By)
			if f.For > 0 {
				w.After(f.For, func() { w.Skew(i, old) })
			}
		}
	}
}

func (s *Scenario) scheduleTraffic(w *World, tr TrafficSpec) {
	for _, at := range times(tr.At, tr.Every, tr.Until, 0, s.Duration) {
		w.At(at, func() {
			src, dst := -1, -1
			if tr.Target == "random" {
				src = w.randomUp()
				if tr.Kind == "unicast" || tr.Kind == "arp" {
					for range 10 {
						if dst = w.randomUp(); dst != src {
							break
						}
					}
				}
			} else if a, b, ok := strings.Cut(tr.Target, "-"); ok {
				src, dst = nodeIndex(a), nodeIndex(b)
			} else {
				src = nodeIndex(tr.Target)
			}
			if src < 0 || !w.Up(src) {
				return
			}
			switch tr.Kind {
			case "broadcast":
				w.Broadcast(src)
			case "unicast":
				if dst >= 0 && dst != src {
					w.Unicast(src, dst)
				}
			case "arp":
				if dst >= 0 && dst != src {
					w.ARP(src, dst)
				}
			case "health":
				w.StartHealth(src)
			}
		})
	}
}

// Run plays the scenario and checks its expectations.
func (s *Scenario) Run(opt RunOptions) (*Report, error) {
	w, err := s.World(opt)
	if err != nil {
		return nil, err
	}
	for t := time.Second; ; t += time.Second {
		t = min(t, s.Duration)
		w.RunUntil(t)
		if opt.Progress != nil {
			opt.Progress(t, s.Duration)
		}
		if t >= s.Duration {
			break
		}
	}
	return s.report(w), nil
}

// report summarizes a finished run.
func (s *Scenario) report(w *World) *Report {
	r := &Report{Scenario: s.Name, File: s.File, Seed: w.cfg.Seed, Nodes: w.N(), Duration: Dur(s.Duration),
		Frames: w.Frames(), Health: w.HealthChecks(), Totals: w.Totals(), Hash: fmt.Sprintf("%016x", w.Hash())}
	var recov []time.Duration
	for _, f := range w.Recoveries() {
		if f.Kind == "start" {
			r.Converged, r.ConvergeIn = f.Recovered, Dur(f.Recovery)
			continue
		}
		r.Faults = append(r.Faults, FaultReport{Kind: f.Kind, Desc: f.Desc, At: Dur(f.At), Recovered: f.Recovered,
			Recovery: Dur(f.Recovery), BrokenPairs: f.BrokenPairs})
		r.Failover.Faults++
		if f.Recovered {
			recov = append(recov, f.Recovery)
		} else {
			r.Failover.Unrecovered++
		}
	}
	r.Failover.P50, r.Failover.P95, r.Failover.Max = percentiles(recov)
	secs := s.Duration.Seconds() * float64(w.N())
	for i := range w.N() {
		st := w.NodeStats(i)
		r.ControlMsgs += float64(st.ControlMsgs) / secs
		r.ControlB += float64(st.ControlBytes) / secs
		r.DataMsgs += float64(st.DataMsgs) / secs
		r.QueueDrops += st.QueueDrops
		r.Closes += st.Closes
		r.DialFails += st.DialFailures
	}
	r.Links, r.SeedLinks = r.Totals.LinksCreated, r.Totals.SeedLinks
	links := w.LiveLinks()
	total := 0
	for _, l := range links {
		r.MaxDegree = max(r.MaxDegree, len(l))
		total += len(l)
	}
	r.MeanDegree = float64(total) / float64(max(1, len(links)))
	r.Violations, r.ViolationN = w.Violations()
	r.OK = true
	for _, e := range s.Expect {
		res := s.check(e, r, w)
		r.OK = r.OK && res.OK
		r.Expect = append(r.Expect, res)
	}
	if w.ViolationCounts()["scenario"] > 0 {
		r.OK = false
	}
	return r
}

// percentiles returns the 50th and 95th percentiles (nearest rank) and
// the maximum of ds.
func percentiles(ds []time.Duration) (p50, p95, mx Dur) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) Dur {
		k := int(p*float64(len(s))+0.999999) - 1
		return Dur(s[max(0, min(k, len(s)-1))])
	}
	return rank(0.50), rank(0.95), Dur(s[len(s)-1])
}

func (s *Scenario) check(e Expectation, r *Report, w *World) ExpectResult {
	res := ExpectResult{Line: e.Line, Text: e.Text, OK: true}
	cats := w.ViolationCounts()
	fail := func(format string, args ...any) {
		res.OK = false
		res.Detail = fmt.Sprintf(format, args...)
	}
	switch e.kind {
	case "converged":
		switch {
		case !r.Converged:
			fail("never converged")
		case time.Duration(r.ConvergeIn) > e.dur:
			fail("converged in %v", r.ConvergeIn)
		default:
			res.Detail = fmt.Sprintf("converged in %v", r.ConvergeIn)
		}
	case "reconnected":
		n, worst := 0, time.Duration(0)
		for _, f := range r.Faults {
			if e.arg != "fault" && f.Kind != e.arg {
				continue
			}
			n++
			if !f.Recovered {
				fail("%s at %v never recovered", f.Desc, f.At)
				return res
			}
			worst = max(worst, time.Duration(f.Recovery))
		}
		switch {
		case n == 0:
			fail("no %s happened", e.arg)
		case worst > e.dur:
			fail("worst recovery %v over %d faults", worst, n)
		default:
			res.Detail = fmt.Sprintf("worst recovery %v over %d faults", worst, n)
		}
	case "broadcast", "unicast":
		checked := r.Frames.BroadcastChecked
		if e.kind == "unicast" {
			checked = r.Frames.UnicastChecked
		}
		switch {
		case cats[e.kind] > 0:
			fail("%d %s violations (see below)", cats[e.kind], e.kind)
		case checked == 0:
			fail("no %s frame was sent while the mesh was quiet: nothing checked", e.kind)
		default:
			res.Detail = fmt.Sprintf("%d frames checked in a quiet mesh", checked)
		}
	case "loops":
		if cats["loop"] > 0 {
			fail("%d unicast loops", cats["loop"])
		}
	case "health":
		switch {
		case cats["health"] > 0:
			fail("%d health violations", cats["health"])
		case r.Health.Checked == 0:
			fail("no health answer checked (%d requests)", r.Health.Requests)
		default:
			res.Detail = fmt.Sprintf("%d answers checked", r.Health.Checked)
		}
	case "violations":
		if cats["protocol"] > 0 {
			fail("%d protocol violations", cats["protocol"])
		}
	case "lost":
		pct := 0.0
		if r.Frames.Expected > 0 {
			pct = 100 * float64(r.Frames.Lost) / float64(r.Frames.Expected)
		}
		res.Detail = fmt.Sprintf("%.2f%% lost (%d of %d)", pct, r.Frames.Lost, r.Frames.Expected)
		if pct > e.pct {
			res.OK = false
		}
	}
	return res
}

// Text formats the report for people.
func (r *Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario  %s (%s)\n", r.Scenario, r.File)
	fmt.Fprintf(&b, "seed      %d   nodes %d   simulated %v   trace hash %s\n", r.Seed, r.Nodes, r.Duration, r.Hash)
	if r.Converged {
		fmt.Fprintf(&b, "converged in %v\n", r.ConvergeIn)
	} else {
		fmt.Fprintf(&b, "never converged\n")
	}
	fmt.Fprintf(&b, "failover  %d faults: p50 %v  p95 %v  max %v", r.Failover.Faults, r.Failover.P50, r.Failover.P95, r.Failover.Max)
	if r.Failover.Unrecovered > 0 {
		fmt.Fprintf(&b, "  (%d never recovered)", r.Failover.Unrecovered)
	}
	b.WriteByte('\n')
	const maxShown = 12
	for i, f := range r.Faults {
		if i == maxShown {
			fmt.Fprintf(&b, "  ... %d more\n", len(r.Faults)-maxShown)
			break
		}
		rec := "not recovered"
		if f.Recovered {
			rec = "recovered in " + f.Recovery.String()
		}
		fmt.Fprintf(&b, "  %10v  %-34s %s (%d pairs broken)\n", f.At, f.Desc, rec, f.BrokenPairs)
	}
	fr := r.Frames
	fmt.Fprintf(&b, "frames    %d sent, %d deliveries expected: %d delivered, %d lost, %d duplicated, %d loops\n",
		fr.Sent, fr.Expected, fr.Delivered, fr.Lost, fr.Duplicated, fr.Loops)
	fmt.Fprintf(&b, "          checked in a quiet mesh: %d broadcasts, %d unicasts\n", fr.BroadcastChecked, fr.UnicastChecked)
	if r.Health.Requests > 0 {
		fmt.Fprintf(&b, "health    %d requests, %d answers, %d checked\n", r.Health.Requests, r.Health.Answers, r.Health.Checked)
	}
	fmt.Fprintf(&b, "control   %.2f msgs/node/s, %.0f bytes/node/s; data %.2f msgs/node/s\n", r.ControlMsgs, r.ControlB, r.DataMsgs)
	fmt.Fprintf(&b, "links     %d created (%d seed protocol), %d closed by nodes, %d dial failures, %d queue drops; degree mean %.1f max %d\n",
		r.Links, r.SeedLinks, r.Closes, r.DialFails, r.QueueDrops, r.MeanDegree, r.MaxDegree)
	fmt.Fprintf(&b, "events    %d (%d messages delivered, %d lost in flight)\n", r.Totals.Events, r.Totals.Messages, r.Totals.Lost)
	for _, e := range r.Expect {
		mark := "ok  "
		if !e.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s  %s:%d %s", mark, r.File, e.Line, e.Text)
		if e.Detail != "" {
			fmt.Fprintf(&b, ": %s", e.Detail)
		}
		b.WriteByte('\n')
	}
	if r.ViolationN > 0 {
		fmt.Fprintf(&b, "%d violations; the first:\n", r.ViolationN)
		for i, v := range r.Violations {
			if i == 3 {
				break
			}
			fmt.Fprintf(&b, "  %s\n  recent events:\n%s", v, v.Trace)
		}
	}
	return b.String()
}
