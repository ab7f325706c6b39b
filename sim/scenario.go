package sim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Scenario is a story for the simulator: these nodes, these links, this
// fault at that time, this traffic, and what must hold. The YAML format
// is documented in scenarios/README.md.
type Scenario struct {
	File        string
	Name        string
	Description string
	Seed        uint64
	Duration    time.Duration
	Topology    TopologySpec
	// LAN and WAN are the link classes; WAN applies to the WAN edges of
	// a multi-site topology.
	LAN, WAN     LinkClass
	QueueLimit   int
	Detect       time.Duration
	DialTimeout  time.Duration
	SeedProtocol float64
	ClockSkew    time.Duration // each node's clock is off by up to ± this
	Timers       Timers
	ProbeStep    time.Duration
	FloodWindow  time.Duration
	Recovery     time.Duration // RecoveryTimeout
	Faults       []FaultSpec
	Traffic      []TrafficSpec
	Expect       []Expectation
}

// TopologySpec names a topology and its size.
type TopologySpec struct {
	Kind       string // line, ring, star, grid, mesh, random, multisite, organic
	Nodes      int
	Rows, Cols int     // grid
	Degree     float64 // random: mean degree
	Sites      int     // multisite
	PerSite    int     // multisite: nodes per site
	WANLinks   int     // multisite: WAN edges between each pair of sites
	JoinEvery  time.Duration
}

// FaultSpec is one entry of the fault schedule.
type FaultSpec struct {
	Line   int
	Action string // cut, partition, crash, skew, jump
	Target string // cut: "n1-n2", "wan", "wan:K", "random"; crash/skew/jump: "nK" or "random"; partition: "half", "sites", "n0..n9"
	Groups [][]string
	At     time.Duration
	Every  time.Duration // repeat from At until Until (or Count times)
	Until  time.Duration
	Count  int
	For    time.Duration // heal or restart after; 0: never
	By     time.Duration // skew and jump
}

// TrafficSpec is one entry of the traffic schedule.
type TrafficSpec struct {
	Line   int
	Kind   string // broadcast, unicast, arp, health
	Target string // "random", "nK" (source), "nA-nB" (unicast, arp)
	At     time.Duration
	Every  time.Duration
	Until  time.Duration
}

// Expectation is one line of a scenario's expect list.
type Expectation struct {
	Line int
	Text string
	kind string
	dur  time.Duration
	arg  string
	pct  float64
}

var expectPatterns = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"converged", regexp.MustCompile(`^converged within (\S+)$`)},
	{"reconnected", regexp.MustCompile(`^every pair reconnected within (\S+) of each (fault|cut|heal|crash|restart|partition|jump)$`)},
	{"broadcast", regexp.MustCompile(`^broadcast delivered exactly once$`)},
	{"unicast", regexp.MustCompile(`^unicast delivered exactly once after convergence$`)},
	{"loops", regexp.MustCompile(`^no loops$`)},
	{"health", regexp.MustCompile(`^health traceroute exact$`)},
	{"violations", regexp.MustCompile(`^no protocol violations$`)},
	{"lost", regexp.MustCompile(`^at most (\S+)% of frames lost$`)},
}

// ExpectationForms lists the expectation sentences a scenario may use.
var ExpectationForms = []string{
	"converged within DURATION",
	"every pair reconnected within DURATION of each fault|cut|heal|crash|restart|partition|jump",
	"broadcast delivered exactly once",
	"unicast delivered exactly once after convergence",
	"no loops",
	"health traceroute exact",
	"no protocol violations",
	"at most N% of frames lost",
}

var nodeName = regexp.MustCompile(`^n(\d+)$`)

// ParseScenario parses a YAML scenario. Errors name the file, line,
// column and field.
func ParseScenario(file string, src []byte) (*Scenario, error) {
	top, err := parseYAML(file, src)
	if err != nil {
		return nil, err
	}
	f, _, err := top.fields("name", "description", "seed", "duration", "topology", "links", "timers",
		"measure", "faults", "traffic", "expect")
	if err != nil {
		return nil, err
	}
	s := &Scenario{File: file, Seed: 1, Duration: time.Minute}
	if v, ok := f["name"]; ok {
		if s.Name, err = v.str(); err != nil {
			return nil, err
		}
	}
	if v, ok := f["description"]; ok {
		if s.Description, err = v.str(); err != nil {
			return nil, err
		}
	}
	if v, ok := f["seed"]; ok {
		str, err := v.str()
		if err != nil {
			return nil, err
		}
		if s.Seed, err = strconv.ParseUint(str, 10, 64); err != nil {
			return nil, v.errf("want an unsigned integer, got %q", str)
		}
	}
	if v, ok := f["duration"]; ok {
		if s.Duration, err = v.dur(); err != nil {
			return nil, err
		}
		if s.Duration <= 0 {
			return nil, v.errf("must be positive")
		}
	}
	tn, ok := f["topology"]
	if !ok {
		return nil, top.errf("missing field topology")
	}
	if err := s.parseTopology(tn); err != nil {
		return nil, err
	}
	if v, ok := f["links"]; ok {
		if err := s.parseLinks(v); err != nil {
			return nil, err
		}
	}
	if v, ok := f["timers"]; ok {
		if err := s.parseTimers(v); err != nil {
			return nil, err
		}
	}
	if v, ok := f["measure"]; ok {
		m, _, err := v.fields("probe", "flood_window", "recovery_timeout")
		if err != nil {
			return nil, err
		}
		for k, dst := range map[string]*time.Duration{"probe": &s.ProbeStep, "flood_window": &s.FloodWindow, "recovery_timeout": &s.Recovery} {
			if x, ok := m[k]; ok {
				if *dst, err = x.dur(); err != nil {
					return nil, err
				}
			}
		}
	}
	if v, ok := f["faults"]; ok {
		items, err := v.list()
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			fs, err := s.parseFault(it)
			if err != nil {
				return nil, err
			}
			s.Faults = append(s.Faults, fs)
		}
	}
	if v, ok := f["traffic"]; ok {
		items, err := v.list()
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			ts, err := s.parseTraffic(it)
			if err != nil {
				return nil, err
			}
			s.Traffic = append(s.Traffic, ts)
		}
	}
	if v, ok := f["expect"]; ok {
		items, err := v.list()
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			e, err := parseExpectation(it)
			if err != nil {
				return nil, err
			}
			s.Expect = append(s.Expect, e)
		}
	}
	return s, nil
}

func (s *Scenario) parseTopology(y ynode) error {
	f, _, err := y.fields("kind", "nodes", "rows", "cols", "degree", "sites", "nodes_per_site", "wan_links", "join_every")
	if err != nil {
		return err
	}
	t := &s.Topology
	kn, ok := f["kind"]
	if !ok {
		return y.errf("missing field kind")
	}
	if t.Kind, err = kn.str(); err != nil {
		return err
	}
	ints := map[string]*int{"nodes": &t.Nodes, "rows": &t.Rows, "cols": &t.Cols, "sites": &t.Sites,
		"nodes_per_site": &t.PerSite, "wan_links": &t.WANLinks}
	for k, dst := range ints {
		if v, ok := f[k]; ok {
			if *dst, err = v.int(); err != nil {
				return err
			}
		}
	}
	if v, ok := f["degree"]; ok {
		if t.Degree, err = v.float(); err != nil {
			return err
		}
	}
	if v, ok := f["join_every"]; ok {
		if t.JoinEvery, err = v.dur(); err != nil {
			return err
		}
	}
	need := func(field string, ok bool) error {
		if !ok {
			return y.errf("topology %s needs %s", t.Kind, field)
		}
		return nil
	}
	switch t.Kind {
	case "line", "ring", "star", "mesh", "organic":
		if err := need("nodes >= 2", t.Nodes >= 2); err != nil {
			return err
		}
	case "random":
		if err := need("nodes >= 2 and degree >= 1", t.Nodes >= 2 && t.Degree >= 1); err != nil {
			return err
		}
	case "grid":
		if err := need("rows and cols", t.Rows >= 1 && t.Cols >= 1 && t.Rows*t.Cols >= 2); err != nil {
			return err
		}
		t.Nodes = t.Rows * t.Cols
	case "multisite":
		if err := need("sites >= 2 and nodes_per_site >= 1", t.Sites >= 2 && t.PerSite >= 1); err != nil {
			return err
		}
		if t.WANLinks == 0 {
			t.WANLinks = 1
		}
		t.Nodes = t.Sites * t.PerSite
	default:
		return kn.errf("unknown topology %q (want line, ring, star, grid, mesh, random, multisite or organic)", t.Kind)
	}
	if t.Nodes > 100000 {
		return y.errf("%d nodes is too many", t.Nodes)
	}
	return nil
}

func (s *Scenario) parseLinks(y ynode) error {
	f, _, err := y.fields("latency", "bandwidth", "wan_latency", "wan_bandwidth", "queue", "detect",
		"dial_timeout", "seed_protocol", "clock_skew")
	if err != nil {
		return err
	}
	if v, ok := f["latency"]; ok {
		if s.LAN.Latency, err = v.rng(); err != nil {
			return err
		}
	}
	if v, ok := f["wan_latency"]; ok {
		if s.WAN.Latency, err = v.rng(); err != nil {
			return err
		}
	}
	if v, ok := f["bandwidth"]; ok {
		if s.LAN.Bandwidth, err = v.bandwidth(); err != nil {
			return err
		}
	}
	if v, ok := f["wan_bandwidth"]; ok {
		if s.WAN.Bandwidth, err = v.bandwidth(); err != nil {
			return err
		}
	}
	if v, ok := f["queue"]; ok {
		if s.QueueLimit, err = v.int(); err != nil {
			return err
		}
	}
	for k, dst := range map[string]*time.Duration{"detect": &s.Detect, "dial_timeout": &s.DialTimeout, "clock_skew": &s.ClockSkew} {
		if v, ok := f[k]; ok {
			if *dst, err = v.dur(); err != nil {
				return err
			}
		}
	}
	if v, ok := f["seed_protocol"]; ok {
		if s.SeedProtocol, err = v.float(); err != nil {
			return err
		}
		if s.SeedProtocol > 1 {
			return v.errf("a fraction between 0 and 1 (or a percentage)")
		}
	}
	return nil
}

func (s *Scenario) parseTimers(y ynode) error {
	f, _, err := y.fields("announce", "connect", "route_expiry", "link_timeout", "dedup_span", "min_links", "max_links", "hop_limit")
	if err != nil {
		return err
	}
	t := &s.Timers
	for k, dst := range map[string]*time.Duration{"announce": &t.Announce, "connect": &t.Connect,
		"route_expiry": &t.RouteExpiry, "link_timeout": &t.LinkTimeout, "dedup_span": &t.DedupSpan} {
		if v, ok := f[k]; ok {
			if *dst, err = v.dur(); err != nil {
				return err
			}
		}
	}
	for k, dst := range map[string]*int{"min_links": &t.MinLinks, "max_links": &t.MaxLinks, "hop_limit": &t.HopLimit} {
		if v, ok := f[k]; ok {
			if *dst, err = v.int(); err != nil {
				return err
			}
		}
	}
	if v, ok := f["hop_limit"]; ok && (t.HopLimit < 2 || t.HopLimit > 255) {
		return v.errf("want a hop limit between 2 and 255, got %d", t.HopLimit)
	}
	return nil
}

func (s *Scenario) parseFault(y ynode) (FaultSpec, error) {
	f, order, err := y.fields("cut", "partition", "crash", "skew", "jump", "at", "every", "until", "count", "for", "by")
	if err != nil {
		return FaultSpec{}, err
	}
	fs := FaultSpec{Line: y.line()}
	var actions []string
	for _, k := range order {
		switch k {
		case "cut", "partition", "crash", "skew", "jump":
			actions = append(actions, k)
		}
	}
	if len(actions) != 1 {
		return fs, y.errf("want exactly one of cut, partition, crash, skew, jump; got %v", actions)
	}
	fs.Action = actions[0]
	an := f[fs.Action]
	if fs.Action == "partition" {
		if items, err := an.list(); err == nil {
			for _, g := range items {
				members, err := g.list()
				if err != nil {
					return fs, err
				}
				var names []string
				for _, m := range members {
					name, err := m.str()
					if err != nil {
						return fs, err
					}
					if err := s.checkNodeRef(m, name, true); err != nil {
						return fs, err
					}
					names = append(names, name)
				}
				fs.Groups = append(fs.Groups, names)
			}
		} else if fs.Target, err = an.str(); err != nil {
			return fs, an.errf("want half, sites, a node range like n0..n9, or a list of groups")
		}
	} else if fs.Target, err = an.str(); err != nil {
		return fs, err
	}
	if err := s.checkTarget(an, fs); err != nil {
		return fs, err
	}
	for k, dst := range map[string]*time.Duration{"at": &fs.At, "every": &fs.Every, "until": &fs.Until, "for": &fs.For, "by": &fs.By} {
		if v, ok := f[k]; ok {
			if k == "by" {
				str, err := v.str()
				if err != nil {
					return fs, err
				}
				neg := strings.HasPrefix(str, "-")
				d, err := parseDuration(strings.TrimPrefix(strings.TrimPrefix(str, "-"), "+"))
				if err != nil {
					return fs, v.errf("%v", err)
				}
				if neg {
					d = -d
				}
				*dst = d
				continue
			}
			if *dst, err = v.dur(); err != nil {
				return fs, err
			}
		}
	}
	if v, ok := f["count"]; ok {
		if fs.Count, err = v.int(); err != nil {
			return fs, err
		}
	}
	if (fs.Action == "skew" || fs.Action == "jump") && fs.By == 0 {
		return fs, y.errf("%s needs by", fs.Action)
	}
	if fs.At > s.Duration {
		return fs, f["at"].errf("%v is after the end of the scenario (%v)", fs.At, s.Duration)
	}
	return fs, nil
}

// checkNodeRef checks that name is nK with K below the node count.
func (s *Scenario) checkNodeRef(y ynode, name string, allowRange bool) error {
	if allowRange {
		if lo, hi, ok := strings.Cut(name, ".."); ok {
			if err := s.checkNodeRef(y, lo, false); err != nil {
				return err
			}
			return s.checkNodeRef(y, hi, false)
		}
	}
	m := nodeName.FindStringSubmatch(name)
	if m == nil {
		return y.errf("want a node name like n3, got %q", name)
	}
	if k, _ := strconv.Atoi(m[1]); k >= s.Topology.Nodes {
		return y.errf("node %s does not exist (the topology has %d nodes, n0..n%d)", name, s.Topology.Nodes, s.Topology.Nodes-1)
	}
	return nil
}

func (s *Scenario) checkTarget(y ynode, fs FaultSpec) error {
	t := fs.Target
	switch fs.Action {
	case "cut":
		if t == "random" || t == "wan" || strings.HasPrefix(t, "wan:") {
			if strings.HasPrefix(t, "wan") && s.Topology.Kind != "multisite" {
				return y.errf("%q needs a multisite topology", t)
			}
			if k, ok := strings.CutPrefix(t, "wan:"); ok {
				if _, err := strconv.Atoi(k); err != nil {
					return y.errf("want wan:K with K a number, got %q", t)
				}
			}
			return nil
		}
		a, b, ok := strings.Cut(t, "-")
		if !ok {
			return y.errf("want nA-nB, wan, wan:K or random, got %q", t)
		}
		if err := s.checkNodeRef(y, a, false); err != nil {
			return err
		}
		return s.checkNodeRef(y, b, false)
	case "partition":
		if fs.Groups != nil || t == "half" {
			return nil
		}
		if t == "sites" {
			if s.Topology.Kind != "multisite" {
				return y.errf("partition by sites needs a multisite topology")
			}
			return nil
		}
		return s.checkNodeRef(y, t, true)
	default:
		if t == "random" {
			return nil
		}
		return s.checkNodeRef(y, t, false)
	}
}

func (s *Scenario) parseTraffic(y ynode) (TrafficSpec, error) {
	f, order, err := y.fields("broadcast", "unicast", "arp", "health", "at", "every", "until")
	if err != nil {
		return TrafficSpec{}, err
	}
	ts := TrafficSpec{Line: y.line()}
	var kinds []string
	for _, k := range order {
		switch k {
		case "broadcast", "unicast", "arp", "health":
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		return ts, y.errf("want exactly one of broadcast, unicast, arp, health; got %v", kinds)
	}
	ts.Kind = kinds[0]
	kn := f[ts.Kind]
	if ts.Target, err = kn.str(); err != nil {
		return ts, err
	}
	if ts.Target != "random" {
		a, b, pair := strings.Cut(ts.Target, "-")
		switch {
		case pair && (ts.Kind == "unicast" || ts.Kind == "arp"):
			if err := s.checkNodeRef(kn, a, false); err != nil {
				return ts, err
			}
			if err := s.checkNodeRef(kn, b, false); err != nil {
				return ts, err
			}
		case pair:
			return ts, kn.errf("%s takes one source node or random, got %q", ts.Kind, ts.Target)
		case ts.Kind == "unicast" || ts.Kind == "arp":
			return ts, kn.errf("%s takes nA-nB or random, got %q", ts.Kind, ts.Target)
		default:
			if err := s.checkNodeRef(kn, ts.Target, false); err != nil {
				return ts, err
			}
		}
	}
	for k, dst := range map[string]*time.Duration{"at": &ts.At, "every": &ts.Every, "until": &ts.Until} {
		if v, ok := f[k]; ok {
			if *dst, err = v.dur(); err != nil {
				return ts, err
			}
		}
	}
	return ts, nil
}

func parseExpectation(y ynode) (Expectation, error) {
	text, err := y.str()
	if err != nil {
		return Expectation{}, err
	}
	text = strings.Join(strings.Fields(text), " ")
	e := Expectation{Line: y.line(), Text: text}
	for _, p := range expectPatterns {
		m := p.re.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		e.kind = p.kind
		switch p.kind {
		case "converged", "reconnected":
			if e.dur, err = parseDuration(m[1]); err != nil {
				return e, y.errf("%v", err)
			}
			if len(m) > 2 {
				e.arg = m[2]
			}
		case "lost":
			if e.pct, err = strconv.ParseFloat(m[1], 64); err != nil {
				return e, y.errf("want a percentage, got %q", m[1])
			}
		}
		return e, nil
	}
	return e, y.errf("unknown expectation %q; want one of:\n  %s", text, strings.Join(ExpectationForms, "\n  "))
}

// String returns a one-line summary of the scenario.
func (s *Scenario) String() string {
	return fmt.Sprintf("%s: %d nodes (%s), %v", s.Name, s.Topology.Nodes, s.Topology.Kind, s.Duration)
}
