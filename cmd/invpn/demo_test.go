package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/netns"
)

// `invpn demo --help` explains the demo and names the simulator.
func TestDemoHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"network namespaces", "kills the relay", "Ctrl-C", "invpn sim", "-n"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, errb.String())
		}
	}
	if code := run([]string{"demo", "-n", "2"}, &out, &errb); code != 2 {
		t.Errorf("-n 2: exit %d, want 2", code)
	}
}

// Without root the demo stops before touching anything and suggests the
// simulator.
func TestDemoNotRoot(t *testing.T) {
	old := demoCheck
	demoCheck = func() error { return errors.New("not root") }
	defer func() { demoCheck = old }()
	var out, errb bytes.Buffer
	if code := run([]string{"demo"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "not root") || !strings.Contains(errb.String(), "invpn sim") {
		t.Errorf("message: %s", errb.String())
	}
	if out.Len() != 0 {
		t.Errorf("output before the check: %s", out.String())
	}
}

var demoPrefixRE = regexp.MustCompile(`network namespaces (ivdemo\d+)-1`)

// TestDemo runs `invpn demo -n 4` as root and checks that it pinged across
// the mesh, measured a failover after a relay kill and one after a silent
// cut, and left no namespace behind.
func TestDemo(t *testing.T) {
	e2eSkip(t)
	bin := invpnBinary(t)
	before, _ := netns.List("ivdemo")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "demo", "-n", "4").CombinedOutput()
	t.Logf("invpn demo -n 4:\n%s", out)
	if err != nil {
		t.Fatalf("invpn demo: %v", err)
	}
	s := string(out)
	for _, re := range []string{
		`node 1 -> node 3 \(10\.77\.0\.3\): first reply`,
		`\n    [1-9]\d*/5 replies, rtt min/avg/max`,
		`route: node 1 -> node [24] -> node 3`,
		`\$ invpn health --timeout 1s --socket `,
		`3 nodes answered\n`,
		`ROUTE TO +NEXT HOP`,
		`failover: (no ping lost|replies stopped for \S+ \(\d+ pings? lost\))`,
		`new route: node 1 -> node [24] -> node 3`,
		`every node has its links and routes again after `,
		`ip link set to[24] down in node 1's namespace and to1 down in node [24]'s`,
		`failover: replies stopped for \S+ \(\d+ pings? lost\); node 1's control socket showed the link failed and the new route \S+ after the cut`,
		`link restored`,
		`The mesh routed around both failures`,
		`cleanup: stopped 4 daemons, deleted 4 namespaces, removed `,
	} {
		if !regexp.MustCompile(re).MatchString(s) {
			t.Errorf("output lacks %q", re)
		}
	}
	checkDemoGone(t, s, before)
}

// TestDemoInterrupt sends SIGINT to the demo once its daemons run and
// checks that it stops them and deletes its namespaces.
func TestDemoInterrupt(t *testing.T) {
	e2eSkip(t)
	bin := invpnBinary(t)
	before, _ := netns.List("ivdemo")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo", "-n", "4")
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	var pids []int
	pidRE := regexp.MustCompile(`node \d+: pid (\d+),`)
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		if m := pidRE.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[1])
			pids = append(pids, pid)
		}
		if strings.Contains(line, "[4/") {
			cmd.Process.Signal(syscall.SIGINT) // the demo's own PID
			break
		}
	}
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	t.Logf("interrupted demo:\n%s", all.String())
	if err == nil {
		t.Errorf("interrupted demo exited 0")
	}
	if len(pids) != 4 {
		t.Fatalf("saw %d daemon pids, want 4", len(pids))
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if bytes.Contains(b, []byte("invpn")) {
				t.Errorf("daemon pid %d still runs after the interrupt", pid)
			}
		}
	}
	if !strings.Contains(all.String(), "interrupted; cleaned up") {
		t.Errorf("no interruption message")
	}
	checkDemoGone(t, all.String(), before)
}

// checkDemoGone checks that the demo whose output is out left no
// namespace, and that no ivdemo namespace appeared meanwhile.
func checkDemoGone(t *testing.T, out string, before []string) {
	t.Helper()
	m := demoPrefixRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no namespace prefix in the output")
	}
	if left, _ := netns.List(m[1]); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
		for _, n := range left {
			netns.IP("netns", "del", n) // ours: named by this demo
		}
	}
	after, _ := netns.List("ivdemo")
	for _, n := range after {
		if !strings.HasPrefix(n, m[1]) && !contains(before, n) {
			t.Logf("note: namespace %s appeared meanwhile (another demo?)", n)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
