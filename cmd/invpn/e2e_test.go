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
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/meshlab"
	"github.com/invpn/invpn/cmd/invpn/internal/netns"
	"github.com/invpn/invpn/wire"
)

// The end-to-end tests run real daemons in network namespaces, built by
// meshlab (the harness `invpn demo` uses too), and read the daemons'
// state from their control sockets.

// TestMain removes the binary the end-to-end tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// bin is the invpn binary, built once per test process.
var bin struct {
	once      sync.Once
	dir, path string
	err       error
}

// invpnBinary builds the command on first use and returns its path.
func invpnBinary(t *testing.T) string {
	t.Helper()
	bin.once.Do(func() {
		t0 := time.Now()
		if bin.dir, bin.err = os.MkdirTemp("", "invpn-e2e-bin-"); bin.err != nil {
			return
		}
		path := filepath.Join(bin.dir, "invpn")
		if out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput(); err != nil {
			bin.err = fmt.Errorf("go build: %v: %s", err, out)
			return
		}
		bin.path = path
		t.Logf("built %s in %v (shared by the tests of this process)", path, time.Since(t0).Round(time.Millisecond))
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.path
}

// buildInvpn returns the shared binary (dir is not used; the name and
// signature stay for the tests that call it).
func buildInvpn(t *testing.T, dir string) string {
	t.Helper()
	return invpnBinary(t)
}

// e2eSkip skips the end-to-end test when the machine cannot run it, or
// fails it when INVPN_REQUIRE_E2E=1.
func e2eSkip(t *testing.T) {
	t.Helper()
	var why string
	if testing.Short() {
		why = "-short"
	} else if err := netns.Check(); err != nil {
		why = err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("INVPN_REQUIRE_E2E") == "1" {
		t.Fatalf("end-to-end test cannot run: %s (INVPN_REQUIRE_E2E=1)", why)
	}
	t.Skipf("end-to-end test skipped: %s (set INVPN_REQUIRE_E2E=1 to make this an error)", why)
}

// e2eMACs is the MAC of node 0 of the tests' meshes: node I is 02:50:56:00:00:0I.
var e2eMACs = wire.MAC{0x02, 0x50, 0x56, 0, 0, 0}

// newMesh builds topo in namespaces named base plus random digits and
// starts its daemons. Cleanup stops them (an unclean exit on SIGTERM fails
// the test), deletes the namespaces, and prints the daemons' logs if the
// test failed.
func newMesh(t *testing.T, base string, topo meshlab.Topology) *meshlab.Mesh {
	t.Helper()
	m := buildMesh(t, base, topo)
	if err := m.StartAll(); err != nil {
		t.Fatal(err)
	}
	return m
}

// buildMesh is newMesh without starting the daemons: the caller may add
// to the lab first (an attacker's host) and start them itself.
func buildMesh(t *testing.T, base string, topo meshlab.Topology) *meshlab.Mesh {
	t.Helper()
	m, err := meshlab.New(meshlab.Options{Prefix: netns.RandomPrefix(base), Dir: t.TempDir(), Bin: invpnBinary(t)}, topo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("stopping the mesh: %v", err)
		}
		if t.Failed() || os.Getenv("INVPN_E2E_DUMP") == "1" {
			for _, n := range m.Nodes() {
				t.Logf("%s", n.LogTail(4000))
			}
		}
	})
	if err := m.Build(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestE2EMesh runs four real daemons in network namespaces linked 1-2, 1-3,
// 2-4, 3-4 over veth pairs: node 1 reaches node 4 only through the mesh.
// docs/protocol.md#behaviour end to end: ARP and IPv6 neighbour discovery
// (defect 5) cross the mesh, unicast is routed through a relay, and killing
// the relay in use moves the route to the other one (defect 8).
func TestE2EMesh(t *testing.T) {
	e2eSkip(t)
	start := time.Now()
	// Underlay: one /24 per link, 10.99.AB.A and 10.99.AB.B; no routing
	// between links, so 1 and 4 cannot reach each other outside the mesh.
	m := newMesh(t, "ivd", meshlab.Topology{
		Nodes:   4,
		Links:   []meshlab.Link{{A: 1, B: 2, Net: 12}, {A: 1, B: 3, Net: 13}, {A: 2, B: 4, Net: 24}, {A: 3, B: 4, Net: 34}},
		Dial:    map[int][]int{2: {1}, 3: {1}, 4: {2, 3}},
		MACBase: e2eMACs,
		IPv4:    netip.MustParsePrefix("10.78.0.0/24"),
		IPv6:    netip.MustParsePrefix("fd00:78::/64"),
		Timers:  meshlab.Timers{Announce: time.Second, LinkTimeout: 3 * time.Second, Connect: 5 * time.Second},
	})
	ctx := context.Background()
	n1, n4 := m.Node(1), m.Node(4)

	// Wait (bounded) until node 1 reaches node 4's overlay address.
	waitPing := func(addr string) time.Duration {
		t.Helper()
		r, err := netns.PingUntil(ctx, n1.NS, addr, 50*time.Millisecond, 20*time.Second)
		if err != nil || !r.OK {
			t.Fatalf("ping %s from node 1 failed for 20 s: %v", addr, err)
		}
		return r.After
	}
	ping3 := func(addr string) {
		t.Helper()
		if st, err := netns.Ping(ctx, n1.NS, addr, 3, 200*time.Millisecond); err != nil || st.Received == 0 {
			t.Fatalf("ping %s: %v\n%s", addr, err, st.Output)
		}
	}
	t.Logf("first IPv4 ping after %v", waitPing(n4.Addr4()).Round(time.Millisecond))
	ping3(n4.Addr4())
	// ARP resolved across the mesh: node 4's TAP MAC is its identity.
	if out, _ := netns.Exec(ctx, n1.NS, "ip", "neigh", "show", n4.Addr4()); !strings.Contains(out, n4.MAC.String()) {
		t.Errorf("ARP entry for %s = %q, want lladdr %s", n4.Addr4(), out, n4.MAC)
	}
	t.Logf("first IPv6 ping after %v", waitPing(n4.Addr6()).Round(time.Millisecond))
	ping3(n4.Addr6())
	if out, _ := netns.Exec(ctx, n1.NS, "ip", "-6", "neigh", "show", n4.Addr6()); !strings.Contains(out, n4.MAC.String()) {
		t.Errorf("ND entry for %s = %q, want lladdr %s", n4.Addr6(), out, n4.MAC)
	}

	for _, n := range m.Nodes() {
		t.Logf("node %d RSS: %s", n.I, rss(n.PID()))
	}

	checkHealthAndStatus(t, m)

	// Kill the relay node 1's route to node 4 goes through.
	hop, err := m.NextHop(ctx, 1, 4)
	if err != nil || hop != 2 && hop != 3 {
		t.Fatalf("node 1's route to node 4: next hop %d, %v; want node 2 or 3", hop, err)
	}
	relay, other := m.Node(hop), m.Node(5-hop)
	t.Logf("killing relay node %d (pid %d)", relay.I, relay.PID())
	if err := relay.Kill(); err != nil {
		t.Fatal(err)
	}
	failover := waitPing(n4.Addr4())
	t.Logf("pings succeed again %v after the relay was killed", failover.Round(time.Millisecond))
	if failover > 5*time.Second {
		t.Errorf("failover took %v", failover)
	}
	ping3(n4.Addr4())
	// Node 1 took the relay's link down and routes through the other one.
	if _, err := n1.WaitStatus(ctx, 5*time.Second, 0, func(st *control.Status) bool {
		_, linked := meshlab.LinkTo(st, relay.MAC)
		r, routed := meshlab.RouteTo(st, n4.MAC)
		return !linked && routed && r.NextHop == other.MAC
	}); err != nil {
		t.Errorf("node 1 did not drop the link to the killed relay %d and route to node 4 via node %d: %v", relay.I, other.I, err)
	}
	t.Logf("end-to-end test took %v", time.Since(start).Round(time.Millisecond))
}

// checkHealthAndStatus runs `invpn health` and `invpn status` against
// node 1's control socket, in its namespace. docs/protocol.md#health:
// every node answers, nodes 2 and 3 over one link each way and
// node 4 over two; status lists node 1's links to nodes 2 and 3 and a
// 2-hop route to node 4.
func checkHealthAndStatus(t *testing.T, m *meshlab.Mesh) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n1 := m.Node(1)
	bin := invpnBinary(t)
	cli := func(args ...string) string {
		t.Helper()
		out, err := netns.Exec(ctx, n1.NS, append([]string{bin}, append(args, "--socket", n1.Socket)...)...)
		if err != nil {
			t.Fatalf("invpn %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	t.Logf("invpn health on node 1:\n%s", cli("health", "--timeout", "1s"))
	out := cli("health", "--timeout", "1s", "--json")
	var rep struct {
		Requester string `json:"requester"`
		Answers   []struct {
			Node     string   `json:"node"`
			HopsOut  int      `json:"hops_out"`
			HopsBack int      `json:"hops_back"`
			PathOut  []string `json:"path_out"`
			PathBack []string `json:"path_back"`
		} `json:"answers"`
		Missing []string `json:"missing"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("invpn health --json: %v\n%s", err, out)
	}
	// First-path routing takes whichever path delivered first, so a path
	// may be longer than the shortest one (1-3-4-2 to node 2, say); it
	// must still be a path over the square's links, and the hop counts
	// must be its length.
	index := map[string]int{}
	for _, n := range m.Nodes() {
		index[n.MAC.String()] = n.I
	}
	isPath := func(p []string, from, to int) bool {
		if len(p) < 2 || index[p[0]] != from || index[p[len(p)-1]] != to {
			return false
		}
		seen := map[string]bool{}
		for i, mac := range p {
			if seen[mac] || index[mac] == 0 || i > 0 && !m.Linked(index[p[i-1]], index[mac]) {
				return false
			}
			seen[mac] = true
		}
		return true
	}
	distance := map[int]int{2: 1, 3: 1, 4: 2}
	for _, a := range rep.Answers {
		i := index[a.Node]
		d := distance[i]
		if d == 0 {
			t.Errorf("health: answer from unknown or repeated node %s", a.Node)
			continue
		}
		delete(distance, i)
		if !isPath(a.PathOut, 1, i) || !isPath(a.PathBack, i, 1) || a.HopsOut != len(a.PathOut)-1 || a.HopsBack != len(a.PathBack)-1 ||
			a.HopsOut < d || a.HopsBack < d {
			t.Errorf("health: node %d answered over %d hops out (%v) and %d back (%v)", i, a.HopsOut, a.PathOut, a.HopsBack, a.PathBack)
		}
	}
	if len(distance) != 0 || len(rep.Missing) != 0 || rep.Requester != n1.MAC.String() {
		t.Errorf("health: no answer from nodes %v; missing %v; requester %s", distance, rep.Missing, rep.Requester)
	}

	text := cli("status")
	t.Logf("invpn status on node 1:\n%s", text)
	if !strings.Contains(text, "node "+n1.MAC.String()) {
		t.Errorf("invpn status lacks %q", "node "+n1.MAC.String())
	}
	var st control.Status
	if out := cli("status", "--json"); json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("invpn status --json: not a status:\n%s", out)
	}
	if st.MAC != n1.MAC {
		t.Errorf("invpn status --json: node %s, want %s", st.MAC, n1.MAC)
	}
	for _, j := range []int{2, 3} {
		l, ok := meshlab.LinkTo(&st, m.Node(j).MAC)
		if want := m.Underlay(j, 1) + ":"; !ok || !strings.HasPrefix(l.Addr, want) {
			t.Errorf("invpn status --json: link to node %d = %+v (found %v), want one from %s*", j, l, ok, want)
		}
	}
	if r, ok := meshlab.RouteTo(&st, m.Node(4).MAC); !ok || r.Hops != 2 || r.NextHop != m.Node(2).MAC && r.NextHop != m.Node(3).MAC {
		t.Errorf("invpn status --json: route to node 4 = %+v (found %v), want 2 hops via node 2 or 3", r, ok)
	}
}

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
		}
	}
	return "?"
}

// waitLog waits up to d for the current log of n to contain s. It is for
// events that leave no state to ask the control socket about (a refused
// handshake, a failed dial); links and routes are read from the socket.
func waitLog(t *testing.T, n *meshlab.Node, d time.Duration, s string) {
	t.Helper()
	logs := n.Logs()
	if len(logs) == 0 {
		t.Fatalf("node %d has no log", n.I)
	}
	for deadline := time.Now().Add(d); ; {
		b, _ := os.ReadFile(logs[len(logs)-1])
		if strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d did not log %q within %v", n.I, s, d)
		}
		time.Sleep(50 * time.Millisecond) // polling a file
	}
}
