package node

import (
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// benchForward measures one 1500-byte targeted frame through a relay b
// (a -> b -> c), from Receive to the Send that leaves b, with Advance.
func benchForward(b *testing.B, seed bool) { benchForwardWith(b, seed, false) }

// benchForwardWith forwards through Receive, or through Step with a
// Receive value when step is set.
func benchForwardWith(b *testing.B, seed, step bool) {
	tn := newNet(b, "a", "b", "c")
	tn.link("a", "b", seed)
	tn.link("b", "c", seed)
	tn.run()
	relay := tn.nodes["b"]
	in := tn.linkID("b", "a")
	f := make([]byte, 1500)
	copy(f, frame(macOf("c"), macOf("a")))
	var msg []byte
	if seed {
		msg = (&wire.TargetedFrame{Frame: f}).Append(nil)
	} else {
		msg = (&wire.LimitedFrame{Hops: 64, Frame: f}).Append(nil)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	now := tn.now
	for b.Loop() {
		if step {
			relay.Step(now, Receive{Link: in, Msg: msg})
		} else {
			relay.Receive(now, in, msg)
		}
		if len(relay.Ready().Sends) != 1 {
			b.Fatal("frame not forwarded")
		}
		relay.Advance()
	}
}

// BenchmarkForward0x80 forwards a seed-protocol 0x80 between two
// seed-protocol links: the bytes are passed on as they are.
func BenchmarkForward0x80(b *testing.B) { benchForward(b, true) }

// BenchmarkForward0x84 forwards a 0x84 between extended links: the hop
// limit is decremented into a new message in the node's arena.
func BenchmarkForward0x84(b *testing.B) { benchForward(b, false) }

// BenchmarkStepForward0x84 is BenchmarkForward0x84 through Step: the
// Input value does not escape, so it costs no allocation either.
func BenchmarkStepForward0x84(b *testing.B) { benchForwardWith(b, false, true) }

func TestForwardDoesNotAllocate(t *testing.T) {
	for _, seed := range []bool{true, false} {
		for _, step := range []bool{false, true} {
			res := testing.Benchmark(func(b *testing.B) { benchForwardWith(b, seed, step) })
			if a := res.AllocsPerOp(); a != 0 {
				t.Errorf("seed=%v step=%v: %d allocations per forwarded frame, want 0", seed, step, a)
			}
		}
	}
}

// BenchmarkBatchCopies measures the commonest entry of a quiet mesh: a
// later copy of a round a node already has, one of 100 in a 0x88 from a
// neighbour that is not the next hop (it becomes a backup). Per entry,
// with everything in cache: the simulator's cost per entry at 1000 nodes
// is this plus its memory misses.
func BenchmarkBatchCopies(b *testing.B) {
	n := quietNode(b)
	now := t0.Add(10 * time.Millisecond)
	const targets = 1000
	entries := func(peer string, id uint64, from, to int) []byte {
		msg := wire.AppendBatchHeader(nil, to-from)
		for k := from; k < to; k++ {
			e := wire.BatchEntry{Refresh: true, InfoPath: wire.InfoPath{PathKnown: true,
				Info: wire.Info{ID: id, MAC: wire.MAC{2, 1, 0, 0, byte(k >> 8), byte(k)}, Port: 41744, Addr: addrOf("t").Addr()},
				Path: []wire.MAC{{2, 9, 9, 9, 9, 9}, macOf(peer)}}}
			msg = e.Append(msg)
		}
		return msg
	}
	for k := 0; k < targets; k += 100 {
		n.Receive(now, 1, entries("p", 5, k, k+100))
		n.Advance()
	}
	batches := make([][]byte, targets/100)
	for i := range batches {
		batches[i] = entries("q", 5, 100*i, 100*i+100)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		n.Receive(now, 2, batches[i%len(batches)])
		n.Advance()
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/entry")
	if r := n.routes.get(wire.MAC{2, 1, 0, 0, 0, 7}); r == nil || r.via != 1 || r.backupIndex(n.links.byID[2].ref) < 0 {
		b.Fatalf("route %+v: want via p (1) with q as a backup", r)
	}
}
