package sim

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/invpn/invpn/scenarios"
)

// loadScenario parses one embedded scenario file.
func loadScenario(t testing.TB, name string) *Scenario {
	t.Helper()
	src, err := fs.ReadFile(scenarios.Files, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseScenario(name, src)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestScenarios runs every embedded scenario and fails on a broken
// expectation (docs/design.md#scenarios-read-like-stories).
func TestScenarios(t *testing.T) {
	files, err := fs.Glob(scenarios.Files, "*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, name := range files {
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			s := loadScenario(t, name)
			if testing.Short() && s.Topology.Nodes > 100 {
				t.Skipf("%d nodes: skipped in -short", s.Topology.Nodes)
			}
			r, err := s.Run(RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", r.Text())
			if !r.OK {
				t.Errorf("scenario %s (seed %d) broke an expectation:\n%s", name, r.Seed, r.Text())
			}
		})
	}
}
