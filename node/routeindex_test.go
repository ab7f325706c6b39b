package node

import (
	"testing"

	"github.com/invpn/invpn/wire"
	"pgregory.net/rapid"
)

// TestRouteTableAgainstAMap adds, removes and looks up routes in random
// order, with few distinct MACs so that probes collide and removals shift
// runs, and checks every lookup and the count against a map of what was
// added. A removal that cut a probe run would lose a route added after it.
func TestRouteTableAgainstAMap(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var tab routeTable
		tab.index.seed = rapid.Uint64().Draw(rt, "seed")
		model := map[wire.MAC]uint64{} // target -> the id stored in its route
		macOf := rapid.Custom(func(rt *rapid.T) wire.MAC {
			// Keys differ in one byte or two: neighbours in the hash's input.
			return wire.MAC{0x02, 0, 0, 0, byte(rapid.IntRange(0, 3).Draw(rt, "hi")), byte(rapid.IntRange(1, 60).Draw(rt, "lo"))}
		})
		for step := range rapid.IntRange(1, 400).Draw(rt, "steps") {
			mac := macOf.Draw(rt, "mac")
			switch op := rapid.IntRange(0, 2).Draw(rt, "op"); {
			case op == 0 && tab.get(mac) == nil:
				tab.add(mac).id = uint64(step + 1)
				model[mac] = uint64(step + 1)
			case op == 1:
				tab.remove(mac)
				delete(model, mac)
			}
			for m, id := range model {
				r := tab.get(m)
				if r == nil || r.id != id || r.key != keyOf(m) {
					rt.Fatalf("step %d: route to %s is %+v, want id %d", step, m, r, id)
				}
			}
			if r := tab.get(mac); (r != nil) != (model[mac] != 0) {
				rt.Fatalf("step %d: get(%s) = %v, the model has id %d", step, mac, r, model[mac])
			}
			if tab.len() != len(model) {
				rt.Fatalf("step %d: %d routes, the model has %d", step, tab.len(), len(model))
			}
			if 2*tab.index.count > len(tab.index.cells) {
				rt.Fatalf("step %d: index %d of %d cells full, more than half", step, tab.index.count, len(tab.index.cells))
			}
		}
	})
}

// TestRouteIndexGrows fills a table with 5000 routes of consecutive MACs
// (a simulator's), removes every other one, and finds each that is left.
func TestRouteIndexGrows(t *testing.T) {
	var tab routeTable
	mac := func(i int) wire.MAC { return wire.MAC{0x02, 0, 0, 0, byte(i >> 8), byte(i)} }
	for i := range 5000 {
		tab.add(mac(i)).id = uint64(i)
	}
	for i := 0; i < 5000; i += 2 {
		tab.remove(mac(i))
	}
	if tab.len() != 2500 {
		t.Fatalf("%d routes after removing half of 5000, want 2500", tab.len())
	}
	for i := range 5000 {
		r := tab.get(mac(i))
		if i%2 == 0 && r != nil {
			t.Fatalf("route %d was removed but is found: %+v", i, r)
		}
		if i%2 == 1 && (r == nil || r.id != uint64(i)) {
			t.Fatalf("route %d: %+v", i, r)
		}
	}
	if len(tab.index.cells) != 16384 {
		t.Fatalf("index of %d cells for 5000 routes at most half full, want 16384", len(tab.index.cells))
	}
}
