package sim

import (
	"errors"
	"strings"
	"testing"
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
	for _, name := range []string{"wan-3site.yaml", "random-200.yaml", "partition-heal.yaml", "crash-storm.yaml", "organic-100.yaml", "ring-300.yaml"} {
		s := loadScenario(t, name)
		if s.Name == "" || len(s.Expect) == 0 {
			t.Errorf("%s: no name or no expectations", name)
		}
	}
}
