package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/invpn/invpn/cmd/invpn/internal/meshlab"
	"github.com/invpn/invpn/cmd/invpn/internal/netns"
)

// chromiumPath is Debian's Chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// ipPath is iproute2's ip, which starts Chromium in a namespace.
var ipPath, _ = exec.LookPath("ip")

// TestE2EMap opens node 1's live map in a real headless Chromium and
// checks what an operator sees: the page loads with no console error, it
// draws every node of a 4-node mesh and every link, and a link cut
// silently on the underlay leaves the map within the heartbeats'
// detection time plus a few health requests, without a reload.
//
// Chromium runs inside node 1's namespace, where the map listens on
// loopback.
// With INVPN_MAP_SCREENSHOT=FILE it saves the map of the whole mesh as a
// PNG (docs/map.png is made so).
func TestE2EMap(t *testing.T) {
	e2eSkip(t)
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("INVPN_REQUIRE_E2E") == "1" {
			t.Fatalf("the live map's browser test needs %s (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("the live map's browser test needs %s (apt-get install chromium)", chromiumPath)
	}
	m := newMesh(t, "ivmap", meshlab.Topology{
		Nodes:   4,
		Links:   []meshlab.Link{{A: 1, B: 2, Net: 12}, {A: 1, B: 3, Net: 13}, {A: 2, B: 4, Net: 24}, {A: 3, B: 4, Net: 34}},
		Dial:    map[int][]int{2: {1}, 3: {1}, 4: {2, 3}},
		MACBase: e2eMACs,
		IPv4:    netip.MustParsePrefix("10.78.0.0/24"),
		Timers:  meshlab.Timers{Announce: time.Second, LinkTimeout: 3 * time.Second, Connect: 5 * time.Second},
		Metrics: map[int]bool{1: true},
	})
	n1 := m.Node(1)
	if r, err := netns.PingUntil(context.Background(), n1.NS, m.Node(4).Addr4(), 50*time.Millisecond, 20*time.Second); err != nil || !r.OK {
		t.Fatalf("node 1 does not reach node 4 through the mesh: %v", err)
	}

	browser := startChromium(t, m)
	// Every console message, exception and browser-log entry from the
	// start of the page on; errors and warnings fail the test.
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(browser)
	go func() {
		for msg, err := range messages {
			if err != nil {
				return // the browser ended with the test
			}
			switch msg.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s:%d)", msg, msg.URL, msg.Line))
				mu.Unlock()
			}
		}
	}()
	url := "http://" + meshlab.MetricsAddr + "/map/"
	if err := chromedp.Do(browser, chromedp.EmulateViewport(1280, 720), chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}

	var macs []string
	for i := 1; i <= 4; i++ {
		macs = append(macs, m.Node(i).MAC.String())
	}
	edge := func(i, j int) string { return macs[i-1] + "|" + macs[j-1] }
	all := []string{edge(1, 2), edge(1, 3), edge(2, 4), edge(3, 4)}
	seen := waitMap(t, browser, 20*time.Second, "every node answered and every link drawn, listed by both ends", func(v mapView) bool {
		return v.Answered == 4 && len(v.Nodes) == 4 && strings.Join(v.Edges, " ") == strings.Join(all, " ") && v.OneSided == 0
	})
	for _, n := range seen.Nodes {
		if want := "answered"; n.ID == macs[0] {
			if n.State != "self" {
				t.Errorf("node 1 drawn as %q, want self", n.State)
			}
		} else if n.State != want {
			t.Errorf("node %s drawn as %q, want %s", n.ID, n.State, want)
		}
	}
	for _, want := range []string{macs[3], "00:00:02 — 00:00:04", "tls"} {
		if !strings.Contains(seen.Text, want) {
			t.Errorf("the page's tables lack %q:\n%s", want, seen.Text)
		}
	}
	// Links between other nodes get their RTT from the answers' 0x8B.
	waitMap(t, browser, 10*time.Second, "an RTT on every link", func(v mapView) bool {
		for _, e := range all {
			if v.RTTs[e] <= 0 {
				return false
			}
		}
		return true
	})
	if path := os.Getenv("INVPN_MAP_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("map saved to %s (%d bytes)", path, len(png))
	}

	// Cut 2-4 silently: both ends down, no FIN. The heartbeats fail the
	// link, the next health answers leave it out, the page drops it.
	cut := time.Now()
	for _, end := range [][2]int{{2, 4}, {4, 2}} {
		if err := m.SetLink(end[0], end[1], false); err != nil {
			t.Fatal(err)
		}
	}
	after := waitMap(t, browser, 15*time.Second, "link 2-4 gone", func(v mapView) bool {
		return !strings.Contains(strings.Join(v.Edges, " "), edge(2, 4)) && len(v.Nodes) == 4
	})
	t.Logf("link 2-4 left the map %v after the cut (%d updates)", time.Since(cut).Round(10*time.Millisecond), after.Updates)
	if strings.Contains(after.Text, "00:00:02 — 00:00:04") {
		t.Errorf("the links table still lists 2-4 after the cut:\n%s", after.Text)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(problems, "\n"))
	}
}

// mapView is what the page shows, read from its cytoscape instance and
// its tables.
type mapView struct {
	Answered int
	Updates  int
	Nodes    []struct{ ID, State string }
	Edges    []string           // sorted ids "A|B"
	OneSided int                // links only one end listed
	RTTs     map[string]float64 // each link's RTT in ms, by id "A|B"
	Text     string             // the tables' text
}

const readMap = `(function () {
  const m = window.meshMap;
  if (!m || !m.graph) return '';
  return JSON.stringify({
    Answered: m.graph.answered, Updates: m.updates,
    Nodes: m.cy.nodes().map(n => ({ID: n.id(), State: n.data('state')})),
    Edges: m.cy.edges().map(e => e.id()).sort(),
    OneSided: m.graph.links.filter(l => l.one_sided).length,
    RTTs: Object.fromEntries(m.graph.links.map(l => [l.a + '|' + l.b, l.rtt_ms || 0])),
    Text: document.querySelector('aside').innerText,
  });
})()`

// waitMap reads the page every 100 ms until ok holds, for at most limit.
func waitMap(t *testing.T, browser context.Context, limit time.Duration, what string, ok func(mapView) bool) mapView {
	t.Helper()
	deadline := time.Now().Add(limit)
	var v mapView
	for {
		s, err := chromedp.Run(browser, chromedp.Evaluate[string](readMap))
		if err != nil {
			t.Fatalf("reading the map: %v", err)
		}
		if s != "" {
			v = mapView{}
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				t.Fatalf("the map's state %q: %v", s, err)
			}
			if ok(v) {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the map did not show %s within %v; it shows %+v", what, limit, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startChromium starts headless Chromium in node 1's namespace, where the
// map listens on loopback, and returns a browser context driving it over
// the DevTools pipe (file descriptors, which cross namespaces; no port is
// opened). Chromium ends with the test: chromedp kills the process it
// started, and the kernel kills it if the test dies (Pdeathsig).
func startChromium(t *testing.T, m *meshlab.Mesh) context.Context {
	t.Helper()
	ns := m.Node(1).NS
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	// The flags keep Chromium off the network beyond the page: no
	// background requests, updates, sync or QUIC probes.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("mute-audio", true),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// ip netns exec execs Chromium: the PID chromedp kills is
			// Chromium's.
			cmd.Args = append([]string{"ip", "netns", "exec", ns}, cmd.Args...)
			cmd.Path = ipPath
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}))
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	return browser
}
