package sim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
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
	DialTimeout  time.Duration
	UserTimeout  time.Duration
	SeedProtocol float64
	ClockSkew    time.Duration // each node's clock is off by up to ± this
	Timers       Timers
	// Signatures makes the nodes sign and check announcements
	// (Config.Signatures).
	Signatures bool
	// Datagrams gives links the QUIC transport's datagram semantics
	// (Config.Datagrams): the scenario key `transport: datagram`, or
	// `stream` (the default, TLS over TCP).
	Datagrams   bool
	ProbeStep   time.Duration
	FloodWindow time.Duration
	Recovery    time.Duration // RecoveryTimeout
	Faults      []FaultSpec
	Traffic     []TrafficSpec
	Expect      []Expectation
}

// TopologySpec names a topology and its size.
type TopologySpec struct {
	Kind       string // line, ring, star, grid, mesh, random, multisite, organic, custom
	Nodes      int
	Rows, Cols int     // grid
	Degree     float64 // random: mean degree
	Sites      int     // multisite
	PerSite    int     // multisite: nodes per site
	WANLinks   int     // multisite: WAN edges between each pair of sites
	JoinEvery  time.Duration
	JoinWith   string // organic: "init" (node 0 is every node's seed, the default) or "bootstrap"
	Edges      []Edge // custom
}

// hasEdge reports whether a custom topology has an edge between a and b.
func (t TopologySpec) hasEdge(a, b int) bool {
	for _, e := range t.Edges {
		if e.A == a && e.B == b || e.A == b && e.B == a {
			return true
		}
	}
	return false
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
		"signatures", "transport", "measure", "faults", "traffic", "expect")
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
	if v, ok := f["signatures"]; ok {
		str, err := v.str()
		if err != nil {
			return nil, err
		}
		if s.Signatures, err = strconv.ParseBool(str); err != nil {
			return nil, v.errf("want true or false, got %q", str)
		}
	}
	if v, ok := f["transport"]; ok {
		str, err := v.str()
		if err != nil {
			return nil, err
		}
		if s.Datagrams, err = ParseTransport(str); err != nil {
			return nil, v.errf("%v", err)
		}
	}
	if v, ok := f["measure"]; ok {
		m, _, err := v.fields("probe", "flood_window", "recovery_timeout")
		if err != nil {
			return nil, err
		}
		if err := setDurs(m, durField{"probe", &s.ProbeStep}, durField{"flood_window", &s.FloodWindow},
			durField{"recovery_timeout", &s.Recovery}); err != nil {
			return nil, err
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
	f, _, err := y.fields("kind", "nodes", "rows", "cols", "degree", "sites", "nodes_per_site", "wan_links", "join_every", "join_with", "edges")
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
	if err := setInts(f, intField{"nodes", &t.Nodes}, intField{"rows", &t.Rows}, intField{"cols", &t.Cols},
		intField{"sites", &t.Sites}, intField{"nodes_per_site", &t.PerSite}, intField{"wan_links", &t.WANLinks}); err != nil {
		return err
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
	if v, ok := f["join_with"]; ok {
		if t.JoinWith, err = v.str(); err != nil {
			return err
		}
		if t.JoinWith != "init" && t.JoinWith != "bootstrap" {
			return v.errf("join_with %q (want init or bootstrap)", t.JoinWith)
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
	case "custom":
		en, ok := f["edges"]
		if err := need("nodes >= 2 and edges", t.Nodes >= 2 && ok); err != nil {
			return err
		}
		if err := s.parseEdges(en); err != nil {
			return err
		}
	default:
		return kn.errf("unknown topology %q (want line, ring, star, grid, mesh, random, multisite, organic or custom)", t.Kind)
	}
	if v, ok := f["edges"]; ok && t.Kind != "custom" {
		return v.errf("edges are for a custom topology")
	}
	if t.Nodes > 100000 {
		return y.errf("%d nodes is too many", t.Nodes)
	}
	return nil
}

// parseEdges parses the edges of a custom topology: each "nA-nB",
// optionally followed by "wan" (the WAN link class) and by its one-way
// latency ("nA-nB 50ms", "nA-nB wan 30ms"), else drawn from its class.
func (s *Scenario) parseEdges(y ynode) error {
	items, err := y.list()
	if err != nil {
		return err
	}
	for _, it := range items {
		str, err := it.str()
		if err != nil {
			return err
		}
		fields := strings.Fields(str)
		if len(fields) == 0 || len(fields) > 3 {
			return it.errf("want nA-nB, optionally followed by wan and a latency, got %q", str)
		}
		a, b, ok := strings.Cut(fields[0], "-")
		if !ok {
			return it.errf("want nA-nB, got %q", fields[0])
		}
		var e Edge
		for k, name := range []string{a, b} {
			m := nodeName.FindStringSubmatch(name)
			n, err := 0, error(nil)
			if m != nil {
				n, err = strconv.Atoi(m[1])
			}
			if m == nil || err != nil || n >= s.Topology.Nodes {
				return it.errf("node %s does not exist (the topology has %d nodes, n0..n%d)", name, s.Topology.Nodes, s.Topology.Nodes-1)
			}
			if k == 0 {
				e.A = n
			} else {
				e.B = n
			}
		}
		if e.A == e.B || s.Topology.hasEdge(e.A, e.B) {
			return it.errf("edge %s: a loop or a second edge between the same nodes", fields[0])
		}
		rest := fields[1:]
		if len(rest) > 0 && rest[0] == "wan" {
			e.WAN, rest = true, rest[1:]
		}
		if len(rest) > 1 {
			return it.errf("want nA-nB, optionally followed by wan and a latency, got %q", str)
		}
		if len(rest) == 1 {
			if e.Latency, err = parseDuration(rest[0]); err != nil || e.Latency <= 0 {
				return it.errf("want a latency like 50ms (or wan, then a latency) after the edge, got %q", rest[0])
			}
		}
		s.Topology.Edges = append(s.Topology.Edges, e)
	}
	return nil
}

func (s *Scenario) parseLinks(y ynode) error {
	if m, ok := y.n.(*ast.MappingNode); ok {
		for _, mv := range m.Values {
			if mv.Key.GetToken().Value == "detect" {
				kn := ynode{file: y.file, path: y.path + ".detect", n: mv.Key}
				return kn.errf("links.detect is gone: it was an oracle that told both ends of a cut; nodes now " +
					"find dead links themselves (timers.heartbeat, timers.dead_after) or the transport's user timeout does (links.user_timeout)")
			}
		}
	}
	f, _, err := y.fields("latency", "bandwidth", "wan_latency", "wan_bandwidth", "queue",
		"dial_timeout", "user_timeout", "seed_protocol", "clock_skew")
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
	if err := setDurs(f, durField{"dial_timeout", &s.DialTimeout}, durField{"user_timeout", &s.UserTimeout},
		durField{"clock_skew", &s.ClockSkew}); err != nil {
		return err
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
	f, _, err := y.fields("announce", "refresh", "batch_delay", "change_delay", "ask_window", "connect", "route_expiry", "link_timeout", "dedup_span", "heartbeat", "dead_after",
		"min_links", "max_links", "hop_limit")
	if err != nil {
		return err
	}
	t := &s.Timers
	if err := setDurs(f, durField{"announce", &t.Announce}, durField{"refresh", &t.Refresh},
		durField{"batch_delay", &t.BatchDelay}, durField{"change_delay", &t.ChangeDelay},
		durField{"ask_window", &t.AskWindow}, durField{"connect", &t.Connect},
		durField{"route_expiry", &t.RouteExpiry}, durField{"link_timeout", &t.LinkTimeout},
		durField{"dedup_span", &t.DedupSpan}, durField{"heartbeat", &t.Heartbeat},
		durField{"dead_after", &t.DeadAfter}); err != nil {
		return err
	}
	if _, ok := f["refresh"]; ok && t.Refresh == 0 {
		t.Refresh = -1 // refresh: 0 floods every round each announce interval
	}
	if _, ok := f["change_delay"]; ok && t.ChangeDelay == 0 {
		t.ChangeDelay = -1 // change_delay: 0 sends changes at the end of the input
	}
	if _, ok := f["ask_window"]; ok && t.AskWindow == 0 {
		t.AskWindow = -1 // ask_window: 0 asks for the peer's routes at once
	}
	if _, ok := f["heartbeat"]; ok && t.Heartbeat == 0 {
		t.Heartbeat = -1 // heartbeat: 0 turns them off
	}
	if cfg := t.nodeConfig(); cfg.HeartbeatInterval > 0 && cfg.DeadAfter <= cfg.HeartbeatInterval {
		return y.errf("dead_after %v must be above the heartbeat interval %v", cfg.DeadAfter, cfg.HeartbeatInterval)
	}
	if err := setInts(f, intField{"min_links", &t.MinLinks}, intField{"max_links", &t.MaxLinks},
		intField{"hop_limit", &t.HopLimit}); err != nil {
		return err
	}
	if v, ok := f["hop_limit"]; ok && (t.HopLimit < 2 || t.HopLimit > 255) {
		return v.errf("want a hop limit between 2 and 255, got %d", t.HopLimit)
	}
	return nil
}

// String returns a one-line summary of the scenario.
func (s *Scenario) String() string {
	return fmt.Sprintf("%s: %d nodes (%s), %v", s.Name, s.Topology.Nodes, s.Topology.Kind, s.Duration)
}
