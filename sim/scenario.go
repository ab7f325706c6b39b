package sim

import (
	"fmt"
	"regexp"
	"strconv"
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
	if err := setDurs(f, durField{"detect", &s.Detect}, durField{"dial_timeout", &s.DialTimeout},
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
	f, _, err := y.fields("announce", "connect", "route_expiry", "link_timeout", "dedup_span", "min_links", "max_links", "hop_limit")
	if err != nil {
		return err
	}
	t := &s.Timers
	if err := setDurs(f, durField{"announce", &t.Announce}, durField{"connect", &t.Connect},
		durField{"route_expiry", &t.RouteExpiry}, durField{"link_timeout", &t.LinkTimeout},
		durField{"dedup_span", &t.DedupSpan}); err != nil {
		return err
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
