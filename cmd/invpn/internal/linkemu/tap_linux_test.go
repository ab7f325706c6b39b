//go:build linux

package linkemu

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/netns"
)

// Two namespaces joined by TAP devices this process created and moved
// there, bridged by the emulator with 20 ms each way: ping sees 40 ms more,
// and nothing is left afterwards. Needs root (skipped otherwise, failed
// with INVPN_REQUIRE_E2E=1).
func TestTAPsAcrossNamespaces(t *testing.T) {
	if err := netns.Check(); err != nil || testing.Short() {
		if os.Getenv("INVPN_REQUIRE_E2E") == "1" && !testing.Short() {
			t.Fatalf("cannot run: %v (INVPN_REQUIRE_E2E=1)", err)
		}
		t.Skipf("needs root, /dev/net/tun, ip and ping: %v", err)
	}
	prefix := netns.RandomPrefix("ivle")
	lab := netns.NewLab(prefix)
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	var nss [2]string
	var taps [2]*TAP
	for e, cidr := range []string{"10.98.1.1/24", "10.98.1.2/24"} {
		ns, err := lab.AddNamespace(string(rune('a' + e)))
		if err != nil {
			t.Fatal(err)
		}
		nss[e] = ns
		tap, err := OpenTAP(strings.Replace(prefix, "ivle", "ivlt", 1) + string(rune('a'+e)))
		if err != nil {
			t.Fatal(err)
		}
		taps[e] = tap
		t.Cleanup(func() { tap.Close() })
		for _, step := range [][]string{
			{"link", "set", "dev", tap.Name(), "netns", ns},
			{"-n", ns, "link", "set", "dev", tap.Name(), "name", "emu0"},
			{"-n", ns, "addr", "add", cidr, "dev", "emu0"},
			{"-n", ns, "link", "set", "dev", "emu0", "up"},
		} {
			if _, err := netns.IP(step...); err != nil {
				t.Fatal(err)
			}
		}
	}
	e, err := New(taps[0], taps[1], Params{Delay: 20 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ctx := context.Background()
	st, err := netns.Ping(ctx, nss[0], "10.98.1.2", 10, 50*time.Millisecond)
	if err != nil || st.Received < 8 {
		t.Fatalf("ping across the emulator: %v\n%s", err, st.Output)
	}
	if st.Min < 40*time.Millisecond || st.Avg > 200*time.Millisecond {
		t.Errorf("rtt min/avg %v/%v, want 40 ms and a little more", st.Min, st.Avg)
	}
	ab, ba := e.Stats()
	t.Logf("rtt min/avg/max %v/%v/%v; A→B %v; B→A %v", st.Min, st.Avg, st.Max, ab, ba)
	if ab.Delivered < 10 || ba.Delivered < 10 {
		t.Errorf("too few frames forwarded: %v / %v", ab, ba)
	}
	// An interface set down: frames to it are lost (write errors), the
	// emulator keeps running.
	if err := netns.SetLink(nss[1], "emu0", false); err != nil {
		t.Fatal(err)
	}
	if st, _ := netns.Ping(ctx, nss[0], "10.98.1.2", 3, 50*time.Millisecond); st.Received != 0 {
		t.Errorf("ping crossed a link that is down: %d replies", st.Received)
	}
	if err := netns.SetLink(nss[1], "emu0", true); err != nil {
		t.Fatal(err)
	}
	if r, err := netns.PingUntil(ctx, nss[0], "10.98.1.2", 50*time.Millisecond, 5*time.Second); err != nil || !r.OK {
		t.Errorf("no ping after the interface came up again: %v", err)
	}
	// Deleting the namespaces ends the devices: the readers see ErrClosed
	// and Close returns at once.
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := e.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(t1); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if out, _ := netns.IP("-o", "link", "show"); strings.Contains(out, "ivlt") {
		t.Errorf("a TAP device is left in this namespace:\n%s", out)
	}
}
