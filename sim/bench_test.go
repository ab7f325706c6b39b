package sim

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkMesh500 simulates 500 nodes in a random graph of mean degree
// 4 for 10 minutes with default timers and a little traffic, and
// reports simulated seconds per wall second, events per second and the
// peak heap. Run it with
//
//	go test ./sim -run '^$' -bench Mesh500 -benchtime 1x
func BenchmarkMesh500(b *testing.B) {
	const (
		nodes     = 500
		simulated = 10 * time.Minute
	)
	var peak, events uint64
	var ms runtime.MemStats
	for b.Loop() {
		w := New(Config{Seed: 1, LAN: LinkClass{Latency: Range{time.Millisecond, 10 * time.Millisecond}}})
		if err := w.Build(Random(nodes, 4, w.Rand())); err != nil {
			b.Fatal(err)
		}
		for t := 10 * time.Second; t < simulated; t += 500 * time.Millisecond {
			w.At(t, func() { w.Broadcast(w.Rand().IntN(nodes)) })
			w.At(t+250*time.Millisecond, func() { w.Unicast(w.Rand().IntN(nodes), w.Rand().IntN(nodes)) })
		}
		start := time.Duration(0)
		for start < simulated {
			start += 10 * time.Second
			w.RunUntil(start)
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		events += uint64(w.Totals().Events)
		if v, n := w.Violations(); n > 0 {
			b.Fatalf("%d violations: %v", n, v[0])
		}
	}
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(simulated.Seconds()*float64(b.N)/b.Elapsed().Seconds(), "sim-s/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// mesh1000 is the fleet-size scenario (1000 nodes, random mesh of mean
// degree 4, LAN latencies, traffic, a silent cut a minute) shortened to
// 20 simulated seconds.
const mesh1000 = `
name: 1000-node random mesh, one cut a minute
seed: 1
duration: 20s
topology:
  kind: random
  nodes: 1000
  degree: 4
links:
  latency: 200us..5ms
measure:
  probe: 1s
faults:
  - cut: random
    at: 10.3s
    every: 60s
    for: 30s
traffic:
  - broadcast: random
    every: 1s
    at: 5s
  - unicast: random
    every: 100ms
    at: 5s
expect:
  - converged within 5s
  - no protocol violations
`

// benchWorld keeps the last world of BenchmarkMesh1000 alive until the
// test binary writes its heap profile, so that -memprofile shows what a
// running world holds (inuse_space), not only what it allocated.
var benchWorld *World

// BenchmarkMesh1000 plays mesh1000 and reports events per second, the
// peak heap and the trace hash (which must not change with the
// simulator's speed). Run it with
//
//	go test ./sim -run '^$' -bench Mesh1000 -benchtime 1x
func BenchmarkMesh1000(b *testing.B) {
	s, err := ParseScenario("mesh1000", []byte(mesh1000))
	if err != nil {
		b.Fatal(err)
	}
	var peak, events, hash uint64
	var ms runtime.MemStats
	for b.Loop() {
		w, err := s.World(RunOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for t := time.Second; t <= s.Duration; t += time.Second {
			w.RunUntil(t)
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		events += w.Totals().Events
		hash = w.Hash()
		benchWorld = w
		if v, n := w.Violations(); n > 0 {
			b.Fatalf("%d violations: %v", n, v[0])
		}
	}
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.Logf("trace hash %016x", hash)
}
