package sim

import "testing"

// TestDeterminism runs a scenario twice with one seed and compares the
// hashes of the event traces, then once with another seed
// (docs/design.md#deterministic-iteration: map order never reaches output order).
func TestDeterminism(t *testing.T) {
	s := loadScenario(t, "wan-3site.yaml")
	s.Duration /= 2
	run := func(seed uint64) (*Report, uint64) {
		w, err := s.World(RunOptions{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		w.RunUntil(s.Duration)
		return s.report(w), w.Hash()
	}
	r1, h1 := run(7)
	r2, h2 := run(7)
	if h1 != h2 {
		t.Fatalf("seed 7 gave trace hashes %016x and %016x: the run is not deterministic", h1, h2)
	}
	if r1.Totals.Events != r2.Totals.Events || r1.Frames != r2.Frames {
		t.Fatalf("seed 7 gave different runs: %+v vs %+v", r1.Totals, r2.Totals)
	}
	if r1.Totals.Events < 10000 {
		t.Fatalf("only %d events: the scenario did not run", r1.Totals.Events)
	}
	_, h3 := run(8)
	if h3 == h1 {
		t.Fatalf("seeds 7 and 8 gave the same trace hash %016x", h1)
	}
}
