package sim

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/scenarios"
)

// TestMalformedScenarios: a malformed scenario gives an error naming the
// file, the line and the field.
func TestMalformedScenarios(t *testing.T) {
	base := "name: x\nduration: 30s\ntopology:\n  kind: ring\n  nodes: 5\n"
	cases := []struct {
		name, src string
		line      int
		field     string
		msg       string
	}{
		{"unknown top field", base + "colour: blue\n", 6, "colour", `unknown field "colour"`},
		{"bad duration", "name: x\nduration: soon\ntopology:\n  kind: ring\n  nodes: 5\n", 2, "duration", `want a duration like 500ms`},
		{"unknown topology", "topology:\n  kind: rign\n  nodes: 5\n", 2, "topology.kind", `unknown topology "rign"`},
		{"missing size", "topology:\n  kind: grid\n", 2, "topology", "needs rows and cols"},
		{"bad latency range", base + "links:\n  latency: 20ms..2ms\n", 7, "links.latency", "range like 2ms..20ms"},
		{"bad bandwidth", base + "links:\n  bandwidth: fast\n", 7, "links.bandwidth", "want a bandwidth"},
		{"unknown timer", base + "timers:\n  announce: 5s\n  anounce_jitter: 1s\n", 8, "timers.anounce_jitter", "unknown field"},
		{"no action", base + "faults:\n  - at: 3s\n", 7, "faults[0]", "want exactly one of cut"},
		{"no such node", base + "faults:\n  - crash: n7\n    at: 3s\n", 7, "faults[0].crash", "node n7 does not exist"},
		{"fault after end", base + "faults:\n  - crash: n1\n    at: 3m\n", 8, "faults[0].at", "after the end"},
		{"wan without sites", base + "faults:\n  - cut: wan\n", 7, "faults[0].cut", "needs a multisite topology"},
		{"bad traffic pair", base + "traffic:\n  - unicast: n1\n", 7, "traffic[0].unicast", "takes nA-nB or random"},
		{"unknown expectation", base + "expect:\n  - everything fine\n", 7, "expect[0]", `unknown expectation "everything fine"`},
		{"bad expectation duration", base + "expect:\n  - converged within soon\n", 7, "expect[0]", "want a duration"},
		{"hop limit", base + "timers:\n  hop_limit: 300\n", 7, "timers.hop_limit", "between 2 and 255"},
		{"the detection oracle is gone", base + "links:\n  latency: 1ms\n  detect: 500ms\n", 8, "links.detect", "was an oracle"},
		{"dead_after below heartbeat", base + "timers:\n  heartbeat: 1s\n", 7, "timers", "must be above the heartbeat interval"},
		{"loss without rate", base + "faults:\n  - loss: n1-n2\n    at: 3s\n", 7, "faults[0]", "loss needs rate"},
		{"loss rate too high", base + "faults:\n  - loss: n1-n2\n    rate: 100%\n", 8, "faults[0].rate", "below 100%"},
		{"rate on a cut", base + "faults:\n  - cut: n1-n2\n    rate: 5%\n", 8, "faults[0].rate", "rate is for loss"},
		{"stall without for", base + "faults:\n  - stall: n1\n    at: 3s\n", 7, "faults[0]", "stall needs for"},
		{"bad relay", base + "faults:\n  - halt: relay:n1\n", 7, "faults[0].halt", "relay:nA-nB"},
		{"relay for a jump", base + "faults:\n  - jump: relay:n1-n2\n    by: 1h\n", 7, "faults[0].jump", "takes nK or random"},
		{"custom without edges", "topology:\n  kind: custom\n  nodes: 3\n", 2, "topology", "needs nodes >= 2 and edges"},
		{"custom edge to nowhere", "topology:\n  kind: custom\n  nodes: 3\n  edges: [n0-n1, n1-n5]\n", 4, "topology.edges[1]", "node n5 does not exist"},
		{"custom edge twice", "topology:\n  kind: custom\n  nodes: 3\n  edges: [n0-n1, n1-n0]\n", 4, "topology.edges[1]", "a second edge"},
		{"custom edge latency", "topology:\n  kind: custom\n  nodes: 3\n  edges: [n0-n1 fast]\n", 4, "topology.edges[0]", "want a latency"},
		{"cut of a missing custom edge", "topology:\n  kind: custom\n  nodes: 3\n  edges: [n0-n1, n1-n2]\nfaults:\n  - cut: n0-n2\n", 6, "faults[0].cut", "no edge n0-n2"},
		{"edges on a ring", base + "  edges: [n0-n1]\n", 6, "topology.edges", "edges are for a custom topology"},
		{"syntax", "name: [x\n", 1, "", "scen.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseScenario("scen.yaml", []byte(c.src))
			if err == nil {
				t.Fatal("no error")
			}
			var se *ScenarioError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *ScenarioError", err)
			}
			if se.File != "scen.yaml" || (c.line > 0 && c.name != "syntax" && se.Line != c.line) || se.Field != c.field {
				t.Errorf("error %q: file %q line %d field %q, want scen.yaml line %d field %q", err, se.File, se.Line, se.Field, c.line, c.field)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q lacks %q", err, c.msg)
			}
		})
	}
}

func TestScenarioFilesParse(t *testing.T) {
	names, err := fs.Glob(scenarios.Files, "*.yaml")
	if err != nil || len(names) < 12 {
		t.Fatalf("scenario files: %v (%v)", names, err)
	}
	for _, name := range names {
		s := loadScenario(t, name)
		if s.Name == "" || len(s.Expect) == 0 {
			t.Errorf("%s: no name or no expectations", name)
		}
	}
}

// TestFaultsAndTrafficTyped: fault and traffic entries are parsed once,
// into typed values, when the scenario is loaded.
func TestFaultsAndTrafficTyped(t *testing.T) {
	src := `topology:
  kind: multisite
  sites: 2
  nodes_per_site: 4
faults:
  - cut: n1-n6
    at: 1s
    for: 2s
  - cut: wan:1
  - cut: wan
  - cut: random
    every: 5s
    count: 3
  - partition: [[n0, n2..n3], [n5]]
  - partition: n0..n3
  - partition: sites
  - partition: half
  - crash: random
  - crash: n7
  - skew: n5
    by: -30m
  - jump: random
    by: 1h
  - cut: route:n0-n7
  - one_way: n6-n1
    for: 10s
  - reset: wan:0
  - loss: route:n2-n5
    rate: 5%
    for: 1m
  - halt: relay:n0-n7
    for: 30s
  - halt: n3
  - stall: random
    for: 300ms
  - crash: relay:n4-n3
traffic:
  - broadcast: random
  - unicast: n1-n2
    every: 100ms
  - arp: random
  - health: n0
  - ping: n3-n4
    every: 50ms
`
	s, err := ParseScenario("typed.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	faults := []Fault{
		CutFault{EdgeRef{Pick: EdgePair, A: 1, B: 6}},
		CutFault{EdgeRef{Pick: EdgeWANIndex, K: 1}},
		CutFault{EdgeRef{Pick: EdgeRandomWAN}},
		CutFault{EdgeRef{Pick: EdgeRandom}},
		PartitionFault{Split: SplitGroups, Groups: [][]int{{0, 2, 3}, {5}}},
		PartitionFault{Split: SplitGroups, Groups: [][]int{{0, 1, 2, 3}}},
		PartitionFault{Split: SplitSites},
		PartitionFault{Split: SplitHalf},
		CrashFault{Node: RandomNode},
		CrashFault{Node: 7},
		SkewFault{Node: 5, By: -30 * time.Minute},
		JumpFault{Node: RandomNode, By: time.Hour},
		CutFault{EdgeRef{Pick: EdgeRoute, A: 0, B: 7}},
		OneWayFault{EdgeRef{Pick: EdgePair, A: 6, B: 1}},
		ResetFault{EdgeRef{Pick: EdgeWANIndex, K: 0}},
		LossFault{EdgeRef: EdgeRef{Pick: EdgeRoute, A: 2, B: 5}, Rate: 0.05},
		HaltFault{Node: RelayNode, Via: Route{From: 0, To: 7}},
		HaltFault{Node: 3},
		StallFault{Node: RandomNode},
		CrashFault{Node: RelayNode, Via: Route{From: 4, To: 3}},
	}
	if len(s.Faults) != len(faults) {
		t.Fatalf("%d faults, want %d", len(s.Faults), len(faults))
	}
	for k, want := range faults {
		if got := s.Faults[k].Fault; !reflect.DeepEqual(got, want) {
			t.Errorf("fault %d (line %d): %#v, want %#v", k, s.Faults[k].Line, got, want)
		}
	}
	if f := s.Faults[0]; f.At != time.Second || f.For != 2*time.Second || f.Line != 6 {
		t.Errorf("fault 0: %+v", f)
	}
	if f := s.Faults[3]; f.Every != 5*time.Second || f.Count != 3 {
		t.Errorf("fault 3: %+v", f)
	}
	traffic := []TrafficSpec{
		{Kind: TrafficBroadcast, Src: RandomNode, Dst: -1},
		{Kind: TrafficUnicast, Src: 1, Dst: 2, Schedule: Schedule{Every: 100 * time.Millisecond}},
		{Kind: TrafficARP, Src: RandomNode, Dst: RandomNode},
		{Kind: TrafficHealth, Src: 0, Dst: -1},
		{Kind: TrafficPing, Src: 3, Dst: 4, Schedule: Schedule{Every: 50 * time.Millisecond}},
	}
	if len(s.Traffic) != len(traffic) {
		t.Fatalf("%d traffic entries, want %d", len(s.Traffic), len(traffic))
	}
	for k, want := range traffic {
		got := s.Traffic[k]
		got.Line = 0
		if got != want {
			t.Errorf("traffic %d: %+v, want %+v", k, got, want)
		}
	}
}
