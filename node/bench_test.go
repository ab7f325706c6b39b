package node

import (
	"testing"

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
