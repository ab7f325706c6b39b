package sim

import (
	"testing"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// TestCheckerCatches: the checker is not a no-op. Fed each kind of
// broken behaviour directly (as a broken node would produce it), it
// reports a violation of the matching kind. The property tests show the
// other half: that their runs check something (props_test.go).
func TestCheckerCatches(t *testing.T) {
	cases := []struct {
		name, kind string
		do         func(w *World)
	}{
		{"duplicate broadcast", "broadcast duplicate", func(w *World) {
			f := w.check.track(100, FlowBroadcast, 0, -1)
			fr := flowFrame(f.kind, f.id, w.MAC(0), wire.Broadcast, -1)
			w.check.tap(1, fr)
			w.check.tap(1, fr)
		}},
		{"broadcast to its source", "broadcast to source", func(w *World) {
			f := w.check.track(100, FlowBroadcast, 0, -1)
			w.check.tap(0, flowFrame(f.kind, f.id, w.MAC(0), wire.Broadcast, -1))
		}},
		{"broadcast lost in a quiet mesh", "broadcast lost", func(w *World) {
			w.check.settle(w.check.track(100, FlowBroadcast, 0, -1))
		}},
		{"unicast lost in a quiet mesh", "unicast lost", func(w *World) {
			w.check.settle(w.check.track(100, FlowUnicast, 0, 2))
		}},
		{"unicast to another node", "unicast misdelivered", func(w *World) {
			f := w.check.track(100, FlowUnicast, 0, 2)
			w.check.tap(1, flowFrame(f.kind, f.id, w.MAC(0), w.MAC(2), 2))
		}},
		{"unicast loop", "loop", func(w *World) {
			f := w.check.track(100, FlowUnicast, 0, 2)
			msg := append([]byte{byte(wire.TypeTargetedFrame)}, flowFrame(f.kind, f.id, w.MAC(0), w.MAC(2), 2)...)
			w.check.arrived(0, 1, msg)
			w.check.arrived(1, 0, msg) // back at the source: a detour so far
			if w.check.frames.Detours != 1 || w.check.frames.Loops != 0 {
				panic("a revisit was not counted as a detour")
			}
			w.check.arrived(0, 1, msg) // the same link again: a cycle
		}},
		{"health traceroute not the path travelled", "health traceroute", func(w *World) {
			w.check.healthStarted(0, 7)
			w.check.health(0, node.HealthResult{Response: wire.HealthResponse{Dest: w.MAC(0), Origin: w.MAC(2), ID: 7,
				Traceroute: []wire.MAC{w.MAC(0), w.MAC(2)}}})
		}},
		{"health answer to no request", "health unexpected answer", func(w *World) {
			w.check.health(0, node.HealthResult{Response: wire.HealthResponse{Dest: w.MAC(0), Origin: w.MAC(2), ID: 8}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := New(Config{Seed: 1})
			if err := w.Build(Line(3)); err != nil {
				t.Fatal(err)
			}
			w.RunUntil(10 * time.Second) // past the transient-loop window of the start's duplicate links
			if !w.Converged() {
				t.Fatalf("the line did not converge: %v", w.Unreachable(5))
			}
			if _, n := w.Violations(); n != 0 {
				t.Fatalf("%d violations before the broken behaviour", n)
			}
			c.do(w)
			vs, _ := w.Violations()
			for _, v := range vs {
				if v.Kind == c.kind {
					return
				}
			}
			t.Fatalf("the checker reported %v, want a violation of kind %q", vs, c.kind)
		})
	}
}
