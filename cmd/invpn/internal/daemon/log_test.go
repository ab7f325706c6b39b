package daemon

import (
	"testing"
	"time"
)

// rateLog lets one line a second through and counts the ones it held.
func TestRateLog(t *testing.T) {
	var r rateLog
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	if n, ok := r.allow(t0); !ok || n != 0 {
		t.Fatalf("first line: %d, %v", n, ok)
	}
	for i := 1; i <= 5; i++ {
		if _, ok := r.allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatalf("line %d within the second let through", i)
		}
	}
	if n, ok := r.allow(t0.Add(time.Second)); !ok || n != 5 {
		t.Errorf("a second later: %d held, %v; want 5, true", n, ok)
	}
}
