package sim

import (
	"os"
	"testing"
	"time"
)

func TestZZWindows(t *testing.T) {
	src, _ := os.ReadFile("../scenarios/random-1000.yaml")
	s, _ := ParseScenario("r", src)
	s.Duration = 10 * time.Minute
	w, err := s.World(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for at := 5 * time.Second; at <= 10*time.Minute; at += 5 * time.Second {
		t0 := time.Now()
		w.RunUntil(at)
		e := w.Totals().Events
		t.Logf("%v %d events %.1fs", at, e-last, time.Since(t0).Seconds())
		last = e
	}
	for _, f := range w.Recoveries() {
		t.Logf("%v %s %s links %d broken %d", f.At, f.Kind, f.Desc, f.Links, f.BrokenPairs)
	}
}
