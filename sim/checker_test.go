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

// TestCheckerFindsWhereUnicastWasLost: a lost unicast frame counts as lost
// in a link when its last hop put it on one and it had not crossed it when
// it settled, and in a closed link when a node closed that link, before or
// after the frame settled; a frame that crossed its link and went no
// further was dropped by a node.
func TestCheckerFindsWhereUnicastWasLost(t *testing.T) {
	w := New(Config{Seed: 1})
	if err := w.Build(Line(3)); err != nil {
		t.Fatal(err)
	}
	w.RunUntil(10 * time.Second)
	msgOf := func(f *flow) []byte {
		return append([]byte{byte(wire.TypeTargetedFrame)}, flowFrame(f.kind, f.id, w.MAC(0), w.MAC(2), 2)...)
	}
	closedBefore, closedAfter, open := &conn{id: 1001}, &conn{id: 1002}, &conn{id: 1003}
	for i, c := range []*conn{closedBefore, closedAfter, open, open} {
		f := w.check.track(uint64(100+i), FlowUnicast, 0, 2)
		w.check.onWire(c, msgOf(f))
		if i == 3 {
			w.check.arrived(0, 1, msgOf(f)) // crossed: node 1 dropped it
		}
		if c == closedBefore {
			c.closed = true
		}
		w.check.settle(f)
	}
	if fr := w.Frames(); fr.UnicastLost != 4 || fr.LostInLinks != 3 || fr.LostInClosedLinks != 1 {
		t.Fatalf("before the second link closed: %d lost, %d in links, %d in closed links; want 4, 3 and 1", fr.UnicastLost, fr.LostInLinks, fr.LostInClosedLinks)
	}
	closedAfter.closed = true // failed by liveness seconds into its stall, after the frame settled
	if fr := w.Frames(); fr.UnicastLost != 4 || fr.LostInLinks != 3 || fr.LostInClosedLinks != 2 {
		t.Fatalf("after it closed: %d lost, %d in links, %d in closed links; want 4, 3 and 2", fr.UnicastLost, fr.LostInLinks, fr.LostInClosedLinks)
	}
}
