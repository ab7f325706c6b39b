package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/wire"
)

// e2eSkip skips the end-to-end test when the machine cannot run it, or
// fails it when INVPN_REQUIRE_E2E=1.
func e2eSkip(t *testing.T) {
	t.Helper()
	var why string
	switch {
	case testing.Short():
		why = "-short"
	case os.Geteuid() != 0:
		why = "not root (network namespaces and TAP devices need CAP_NET_ADMIN)"
	default:
		if _, err := os.Stat("/dev/net/tun"); err != nil {
			why = "/dev/net/tun is missing"
		}
		for _, tool := range []string{"ip", "ping"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = tool + " is not installed (iproute2, iputils-ping)"
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("INVPN_REQUIRE_E2E") == "1" {
		t.Fatalf("end-to-end test cannot run: %s (INVPN_REQUIRE_E2E=1)", why)
	}
	t.Skipf("end-to-end test skipped: %s (set INVPN_REQUIRE_E2E=1 to make this an error)", why)
}

// e2eNode is one real daemon in its own network namespace.
type e2eNode struct {
	i    int
	ns   string
	mac  wire.MAC
	dir  string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
}

func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nsRun runs a command in namespace ns and reports whether it succeeded.
func nsRun(ns string, args ...string) (string, bool) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err == nil
}

// TestE2EMesh runs four real daemons in network namespaces linked 1-2, 1-3,
// 2-4, 3-4 over veth pairs: node 1 reaches node 4 only through the mesh.
// PROTOCOL.md "Behaviour" end to end: ARP and IPv6 neighbour discovery
// (defect 5) cross the mesh, unicast is routed through a relay, and killing
// the relay in use moves the route to the other one (defect 8).
func TestE2EMesh(t *testing.T) {
	e2eSkip(t)
	start := time.Now()
	dir := t.TempDir()
	bin := filepath.Join(dir, "invpn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))

	prefix := fmt.Sprintf("ivd%04d", rand.IntN(10000))
	nodes := make([]*e2eNode, 5) // 1-based
	for i := 1; i <= 4; i++ {
		n := &e2eNode{i: i, ns: fmt.Sprintf("%s-%d", prefix, i), mac: wire.MAC{0x02, 0x50, 0x56, 0, 0, byte(i)},
			dir: filepath.Join(dir, fmt.Sprint("n", i))}
		n.log = filepath.Join(n.dir, "log")
		nodes[i] = n
		ipCmd(t, "netns", "add", n.ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n.ns).Run() })
		ipCmd(t, "-n", n.ns, "link", "set", "lo", "up")
	}
	// Underlay: one /24 per link, 10.99.AB.A and 10.99.AB.B; no routing
	// between links, so 1 and 4 cannot reach each other outside the mesh.
	under := func(a, b int) string { return fmt.Sprintf("10.99.%d%d.%d", a, b, a) }
	for _, p := range [][2]int{{1, 2}, {1, 3}, {2, 4}, {3, 4}} {
		a, b := nodes[p[0]], nodes[p[1]]
		ea, eb := fmt.Sprintf("u%d%d", a.i, b.i), fmt.Sprintf("u%d%d", b.i, a.i)
		ipCmd(t, "link", "add", ea, "netns", a.ns, "type", "veth", "peer", "name", eb, "netns", b.ns)
		ipCmd(t, "-n", a.ns, "addr", "add", under(a.i, b.i)+"/24", "dev", ea)
		ipCmd(t, "-n", b.ns, "addr", "add", fmt.Sprintf("10.99.%d%d.%d/24", a.i, b.i, b.i), "dev", eb)
		ipCmd(t, "-n", a.ns, "link", "set", ea, "up")
		ipCmd(t, "-n", b.ns, "link", "set", eb, "up")
	}

	caDir := filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	seedOf := func(n *e2eNode, addr string) string { return fmt.Sprintf("%s@%s:41744", n.mac, addr) }
	inits := map[int]string{
		1: "",
		2: seedOf(nodes[1], under(1, 2)),
		3: seedOf(nodes[1], under(1, 3)),
		4: seedOf(nodes[2], "10.99.24.2") + ", " + seedOf(nodes[3], "10.99.34.3"),
	}
	for i := 1; i <= 4; i++ {
		n := nodes[i]
		if err := pki.IssueNode(caDir, n.mac, n.dir); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`[ssl]
key = node.key
cert = node.crt
ca = ca.crt
[network]
cache = cache.json
init = %s
[timers]
announce = 1s
link_timeout = 3s
connect = 5s
[tap]
name = invpn0
address = 10.78.0.%d/24, fd00:78::%d/64
[log]
level = debug
[control]
socket = %s
`, inits[i], i, i, filepath.Join(n.dir, "invpn.sock"))
		if err := os.WriteFile(filepath.Join(n.dir, "invpn.conf"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 4; i++ {
		startE2E(t, bin, nodes[i])
	}

	// Wait (bounded) until node 1 reaches node 4's overlay address.
	ns1 := nodes[1].ns
	waitPing := func(args ...string) time.Duration {
		t.Helper()
		t0 := time.Now()
		for {
			if _, ok := nsRun(ns1, append([]string{"ping", "-c", "1", "-W", "1"}, args...)...); ok {
				return time.Since(t0)
			}
			if time.Since(t0) > 20*time.Second {
				dumpLogs(t, nodes[1:])
				t.Fatalf("ping %v from node 1 failed for 20 s", args)
			}
		}
	}
	t.Logf("first IPv4 ping after %v", waitPing("10.78.0.4").Round(time.Millisecond))
	if out, ok := nsRun(ns1, "ping", "-c", "3", "-W", "1", "10.78.0.4"); !ok {
		t.Fatalf("ping 10.78.0.4: %s", out)
	}
	// ARP resolved across the mesh: node 4's TAP MAC is its identity.
	if out, _ := nsRun(ns1, "ip", "neigh", "show", "10.78.0.4"); !strings.Contains(out, nodes[4].mac.String()) {
		t.Errorf("ARP entry for 10.78.0.4 = %q, want lladdr %s", out, nodes[4].mac)
	}
	t.Logf("first IPv6 ping after %v", waitPing("-6", "fd00:78::4").Round(time.Millisecond))
	if out, ok := nsRun(ns1, "ping", "-6", "-c", "3", "-W", "1", "fd00:78::4"); !ok {
		t.Fatalf("ping fd00:78::4: %s", out)
	}
	if out, _ := nsRun(ns1, "ip", "-6", "neigh", "show", "fd00:78::4"); !strings.Contains(out, nodes[4].mac.String()) {
		t.Errorf("ND entry for fd00:78::4 = %q, want lladdr %s", out, nodes[4].mac)
	}

	for i := 1; i <= 4; i++ {
		t.Logf("node %d RSS: %s", i, rss(nodes[i].cmd.Process.Pid))
	}

	checkHealthAndStatus(t, bin, nodes)

	// Kill the relay node 1's route to node 4 goes through.
	relay := relayOf(t, nodes[1], nodes[4].mac, nodes[2], nodes[3])
	t.Logf("killing relay node %d (pid %d)", relay.i, relay.cmd.Process.Pid)
	relay.cmd.Process.Kill()
	<-relay.done
	failover := waitPing("10.78.0.4")
	t.Logf("pings succeed again %v after the relay was killed", failover.Round(time.Millisecond))
	if failover > 5*time.Second {
		t.Errorf("failover took %v", failover)
	}
	if out, ok := nsRun(ns1, "ping", "-c", "3", "-W", "1", "10.78.0.4"); !ok {
		t.Fatalf("ping after failover: %s", out)
	}
	logs, _ := os.ReadFile(nodes[1].log)
	if !bytes.Contains(logs, []byte("msg=\"link down\" peer="+relay.mac.String())) {
		t.Errorf("node 1 did not log the relay's link going down")
	}
	t.Logf("end-to-end test took %v", time.Since(start).Round(time.Millisecond))
}

// checkHealthAndStatus runs `invpn health` and `invpn status` against
// node 1's control socket, in its namespace. PROTOCOL.md "Behaviour",
// Health: every node answers, nodes 2 and 3 over one link each way and
// node 4 over two; status lists node 1's links to nodes 2 and 3.
func checkHealthAndStatus(t *testing.T, bin string, nodes []*e2eNode) {
	t.Helper()
	n1 := nodes[1]
	sock := filepath.Join(n1.dir, "invpn.sock")
	out, ok := nsRun(n1.ns, bin, "health", "--socket", sock, "--timeout", "1s")
	if !ok {
		t.Fatalf("invpn health: %s", out)
	}
	t.Logf("invpn health on node 1:\n%s", out)
	out, ok = nsRun(n1.ns, bin, "health", "--socket", sock, "--timeout", "1s", "--json")
	if !ok {
		t.Fatalf("invpn health --json: %s", out)
	}
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
	for i := 1; i <= 4; i++ {
		index[nodes[i].mac.String()] = i
	}
	linked := func(a, b int) bool {
		switch [2]int{min(a, b), max(a, b)} {
		case [2]int{1, 2}, [2]int{1, 3}, [2]int{2, 4}, [2]int{3, 4}:
			return true
		}
		return false
	}
	isPath := func(p []string, from, to int) bool {
		if len(p) < 2 || index[p[0]] != from || index[p[len(p)-1]] != to {
			return false
		}
		seen := map[string]bool{}
		for i, m := range p {
			if seen[m] || index[m] == 0 || i > 0 && !linked(index[p[i-1]], index[m]) {
				return false
			}
			seen[m] = true
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
	if len(distance) != 0 || len(rep.Missing) != 0 || rep.Requester != n1.mac.String() {
		t.Errorf("health: no answer from nodes %v; missing %v; requester %s", distance, rep.Missing, rep.Requester)
	}

	out, ok = nsRun(n1.ns, bin, "status", "--socket", sock)
	if !ok {
		t.Fatalf("invpn status: %s", out)
	}
	t.Logf("invpn status on node 1:\n%s", out)
	for _, want := range []string{
		"node " + n1.mac.String(),
		nodes[2].mac.String() + "  10.99.12.2:",
		nodes[3].mac.String() + "  10.99.13.3:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("invpn status lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(nodes[4].mac.String()) + `\s+02:50:56:00:00:0[23]\s+2\s`).MatchString(out) {
		t.Errorf("invpn status: no 2-hop route to node 4 via node 2 or 3")
	}
}

// startE2E starts n's daemon in its namespace; cleanup stops it with
// SIGTERM (then SIGKILL) and checks a clean exit.
func startE2E(t *testing.T, bin string, n *e2eNode) {
	t.Helper()
	logf, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs the daemon: the PID is the daemon's.
	n.cmd = exec.Command("ip", "netns", "exec", n.ns, bin, "run", "-c", filepath.Join(n.dir, "invpn.conf"))
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	var waitErr error
	go func() {
		waitErr = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		select {
		case <-n.done:
			return // exited or killed by the test
		default:
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
			if waitErr != nil {
				t.Errorf("node %d: exit after SIGTERM: %v", n.i, waitErr)
			}
		case <-time.After(5 * time.Second):
			n.cmd.Process.Kill()
			<-n.done
			t.Errorf("node %d did not stop within 5 s of SIGTERM", n.i)
		}
		if t.Failed() {
			b, _ := os.ReadFile(n.log)
			t.Logf("log of node %d (last 3000 bytes):\n%s", n.i, tail(b, 3000))
		}
	})
}

// relayOf returns the relay of the last route n logged to target.
func relayOf(t *testing.T, n *e2eNode, target wire.MAC, relays ...*e2eNode) *e2eNode {
	t.Helper()
	b, _ := os.ReadFile(n.log)
	re := regexp.MustCompile(`msg="route (?:learned|changed|failover)" target=` + regexp.QuoteMeta(target.String()) + ` via=(\S+)`)
	m := re.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		t.Fatalf("node %d logged no route to %s", n.i, target)
	}
	via := string(m[len(m)-1][1])
	for _, r := range relays {
		if r.mac.String() == via {
			return r
		}
	}
	t.Fatalf("node %d routes to %s via %s, not a relay", n.i, target, via)
	return nil
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

func dumpLogs(t *testing.T, nodes []*e2eNode) {
	for _, n := range nodes {
		b, _ := os.ReadFile(n.log)
		t.Logf("log of node %d (last 3000 bytes):\n%s", n.i, tail(b, 3000))
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
