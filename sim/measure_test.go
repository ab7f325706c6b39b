package sim

import (
	"slices"
	"testing"
)

// TestOwnBrokenLeavesInheritedPairsOut: a fault's own broken pairs are
// those broken now that were not already broken by an earlier fault; an
// inherited pair counts again once it has recovered and breaks anew.
func TestOwnBrokenLeavesInheritedPairsOut(t *testing.T) {
	inherited := []bool{true, true, false, false}
	// Pairs 0 and 2 broken: 0 is inherited, 2 is the fault's own; pair 1
	// recovered, so it is forgotten.
	if got := ownBroken([]bool{true, false, true, false}, inherited); got != 1 {
		t.Errorf("own broken %d, want 1 (pair 2)", got)
	}
	if want := []bool{true, false, false, false}; !slices.Equal(inherited, want) {
		t.Errorf("inherited %v after the probe, want %v", inherited, want)
	}
	// Pair 1 breaks again: now it is the fault's own.
	if got := ownBroken([]bool{true, true, false, false}, inherited); got != 1 {
		t.Errorf("own broken %d after pair 1 broke anew, want 1", got)
	}
	// The earlier fault's pair 0 alone is left: this fault has recovered.
	if got := ownBroken([]bool{true, false, false, false}, inherited); got != 0 {
		t.Errorf("own broken %d with only the inherited pair broken, want 0", got)
	}
}
