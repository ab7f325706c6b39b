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
