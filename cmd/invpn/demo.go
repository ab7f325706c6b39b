package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/netns"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/wire"
)

const demoUsage = `Usage: invpn demo [-n N] [-announce 1s]

Runs a real mesh on this machine and shows what it does, then removes every
trace of it. Needs root: it uses Linux network namespaces and TAP devices.

  1. makes a throwaway group CA and N member certificates in a temporary
     directory;
  2. creates N network namespaces (ivdemoNNNNN-1 .. -N) joined in a ring by
     veth pairs, so node 1 and node N/2+1 are not directly linked and cannot
     reach each other outside the mesh;
  3. starts N real daemons (this binary's "invpn run"), one per namespace,
     each TAP device with 10.77.0.I/24;
  4. waits until node 1 reaches every node through the mesh;
  5. pings node N/2+1 from node 1 and shows the round-trip times;
  6. shows the route the frames take (from the daemons' logs);
  7. kills the relay on that route while pinging every 50 ms, and shows how
     long the replies stopped and the new route;
  8. stops the daemons and deletes the namespaces and the directory (unless
     -keep), also on an error and on Ctrl-C.

Everything stays inside the namespaces it creates. Without root, try
"invpn sim", which simulates a mesh in memory.
`

// demoCheck reports whether this machine can run the demo (a variable
// for tests).
var demoCheck = netns.Check

// Bounds of the demo's waits.
const (
	demoMeshTimeout     = 30 * time.Second
	demoFailoverTimeout = 15 * time.Second
	demoPingInterval    = 50 * time.Millisecond
)

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	n := fs.Int("n", 4, "the number of daemons, 4 to 16")
	announce := fs.Duration("announce", time.Second, "the daemons' announce interval")
	keep := fs.Bool("keep", false, "keep the temporary directory (certificates, configurations, daemon logs); the namespaces are always deleted")
	if err := parseFlags(fs, args, stderr, demoUsage); err != nil {
		return err
	}
	if *n < 4 || *n > 16 {
		fmt.Fprintf(stderr, "invpn demo: -n %d: want 4 to 16 daemons (a ring with two nodes not directly linked)\n", *n)
		return errUsage
	}
	if *announce < 100*time.Millisecond || *announce > time.Minute {
		fmt.Fprintf(stderr, "invpn demo: -announce %v: want 100ms to 1m\n", *announce)
		return errUsage
	}
	if err := demoCheck(); err != nil {
		return fmt.Errorf("cannot run here: %v.\nThe demo needs root, /dev/net/tun, ip and ping (run it with sudo), "+
			"or try `invpn sim` to simulate a mesh without root", err)
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to start the daemons: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	d := &demo{n: *n, announce: *announce, bin: bin, out: stdout, keep: *keep, lab: netns.NewLab(netns.RandomPrefix("ivdemo"))}
	err = d.run(ctx)
	if ctx.Err() != nil && err != nil {
		err = errors.New("interrupted; cleaned up")
	}
	return err
}

// demo is one run of `invpn demo`.
type demo struct {
	n        int
	announce time.Duration
	bin      string
	keep     bool
	out      io.Writer
	lab      *netns.Lab
	dir      string
	nodes    []*demoNode // 1-based
}

type demoNode struct {
	i    int
	mac  wire.MAC
	ns   string
	dir  string
	log  string
	proc *netns.Proc
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) overlay(i int) string { return fmt.Sprintf("10.77.0.%d", i) }

// run runs every step and always cleans up.
func (d *demo) run(ctx context.Context) (err error) {
	dir, err := os.MkdirTemp("", "invpn-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	defer func() {
		if err != nil && ctx.Err() == nil {
			d.showLogs()
		}
		d.cleanup()
	}()
	target := d.n/2 + 1
	d.say("invpn demo: %d daemons in network namespaces %s-1 .. %s-%d, linked in a ring; node 1 and node %d are not neighbours.",
		d.n, d.lab.Prefix(), d.lab.Prefix(), d.n, target)

	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"creating a throwaway CA and member certificates in " + dir, d.makePKI},
		{"creating the namespaces and the underlay ring (one veth pair and /24 per link)", d.makeNetwork},
		{fmt.Sprintf("starting %d daemons (announce every %v)", d.n, d.announce), d.startDaemons},
		{"waiting for the mesh: pinging every node from node 1 over the overlay", d.waitMesh},
		{fmt.Sprintf("pinging node %d (%s) from node 1", target, d.overlay(target)), func(ctx context.Context) error { return d.pingAcross(ctx, target) }},
		{"asking the mesh from node 1: invpn health, then invpn status", d.showHealth},
		{fmt.Sprintf("cutting the route: killing the relay between node 1 and node %d while pinging every %v", target, demoPingInterval),
			func(ctx context.Context) error { return d.failover(ctx, target) }},
	}
	for k, s := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.say("\n[%d/%d] %s", k+1, len(steps), s.what)
		if err := s.fn(ctx); err != nil {
			return err
		}
	}
	d.say("\nThe mesh routed around the failure. Cleaning up.")
	return nil
}

func (d *demo) makePKI(context.Context) error {
	caDir := filepath.Join(d.dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		return err
	}
	d.nodes = make([]*demoNode, d.n+1)
	for i := 1; i <= d.n; i++ {
		n := &demoNode{i: i, mac: wire.MAC{0x02, 0x1d, 0xe3, 0x00, 0x00, byte(i)}, dir: filepath.Join(d.dir, fmt.Sprint("node", i))}
		n.log = filepath.Join(n.dir, "daemon.log")
		if err := pki.IssueNode(caDir, n.mac, n.dir); err != nil {
			return err
		}
		d.nodes[i] = n
	}
	d.say("    CA %s, %d certificates with Common Names %s .. %s", filepath.Join(caDir, pki.CACertFile), d.n, d.nodes[1].mac, d.nodes[d.n].mac)
	return nil
}

// next is the successor of node i on the ring.
func (d *demo) next(i int) int { return i%d.n + 1 }

// underlay returns the address of node i on ring link k (between k and
// next(k)): 10.99.k.1 for k, 10.99.k.2 for its successor.
func underlay(k, i int) string {
	if k == i {
		return fmt.Sprintf("10.99.%d.1", k)
	}
	return fmt.Sprintf("10.99.%d.2", k)
}

func (d *demo) makeNetwork(context.Context) error {
	for i := 1; i <= d.n; i++ {
		ns, err := d.lab.AddNamespace(fmt.Sprint(i))
		if err != nil {
			return err
		}
		d.nodes[i].ns = ns
	}
	for k := 1; k <= d.n; k++ {
		a, b := d.nodes[k], d.nodes[d.next(k)]
		if err := d.lab.Veth(a.ns, fmt.Sprint("to", b.i), underlay(k, a.i)+"/24", b.ns, fmt.Sprint("to", a.i), underlay(k, b.i)+"/24"); err != nil {
			return err
		}
		d.say("    node %d %s <-> %s node %d", a.i, underlay(k, a.i), underlay(k, b.i), b.i)
	}
	return nil
}

func (d *demo) startDaemons(context.Context) error {
	for i := 1; i <= d.n; i++ {
		n := d.nodes[i]
		k := i // the ring link to the successor
		cfg := fmt.Sprintf(`[ssl]
key = node.key
cert = node.crt
ca = ca.crt
[network]
cache = cache.json
init = %s@%s:41744
[timers]
announce = %v
link_timeout = %v
connect = 5s
[tap]
name = invpn0
address = %s/24
[log]
level = info
[control]
socket = %s
`, d.nodes[d.next(i)].mac, underlay(k, d.next(i)), d.announce, 3*d.announce, d.overlay(i), filepath.Join(n.dir, "invpn.sock"))
		conf := filepath.Join(n.dir, "invpn.conf")
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			return err
		}
		p, err := d.lab.Start(fmt.Sprint("node ", i), n.ns, n.log, d.bin, "run", "-c", conf)
		if err != nil {
			return err
		}
		n.proc = p
		d.say("    node %d: pid %d, MAC %s, overlay %s, dials node %d", i, p.PID(), n.mac, d.overlay(i), d.next(i))
	}
	return nil
}

func (d *demo) waitMesh(ctx context.Context) error {
	t0 := time.Now()
	for i := 2; i <= d.n; i++ {
		left := demoMeshTimeout - time.Since(t0)
		r, err := netns.PingUntil(ctx, d.nodes[1].ns, d.overlay(i), demoPingInterval, max(left, time.Second))
		if err != nil {
			return err
		}
		if !r.OK {
			return fmt.Errorf("node 1 did not reach node %d within %v", i, demoMeshTimeout)
		}
		for _, n := range d.nodes[1:] {
			select {
			case <-n.proc.Done():
				return fmt.Errorf("node %d exited: %v", n.i, n.proc.Err())
			default:
			}
		}
		d.say("    node 1 -> node %d (%s): first reply %v after start, rtt %v", i, d.overlay(i), time.Since(t0).Round(time.Millisecond), r.RTT)
	}
	return nil
}

func (d *demo) pingAcross(ctx context.Context, target int) error {
	st, err := netns.Ping(ctx, d.nodes[1].ns, d.overlay(target), 5, 200*time.Millisecond)
	if err != nil {
		return err
	}
	d.say("    %d/%d replies, rtt min/avg/max %v / %v / %v", st.Received, st.Sent, st.Min, st.Avg, st.Max)
	if st.Received == 0 {
		return fmt.Errorf("no reply from node %d", target)
	}
	path, err := d.route(1, target)
	d.say("    route: %s", d.pathString(path, err))
	return nil
}

// showHealth runs `invpn health` and `invpn status` against node 1's
// control socket and prints what they print.
func (d *demo) showHealth(ctx context.Context) error {
	sock := filepath.Join(d.nodes[1].dir, "invpn.sock")
	for _, args := range [][]string{{"health", "--timeout", "1s"}, {"status"}} {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", d.nodes[1].ns, d.bin}, append(args, "--socket", sock)...)...)
		out, err := cmd.CombinedOutput()
		d.say("    $ invpn %s --socket %s", strings.Join(args, " "), sock)
		for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
			d.say("    %s", line)
		}
		if err != nil {
			return fmt.Errorf("invpn %s: %w", args[0], err)
		}
	}
	return nil
}

func (d *demo) failover(ctx context.Context, target int) error {
	path, err := d.route(1, target)
	if err != nil || len(path) < 3 {
		return fmt.Errorf("no relayed route from node 1 to node %d to cut: %v", target, d.pathString(path, err))
	}
	relay := d.nodes[path[1]]
	s, err := netns.StartStream(d.nodes[1].ns, d.overlay(target), demoPingInterval, demoFailoverTimeout+5*time.Second)
	if err != nil {
		return err
	}
	defer s.Stop()
	if !waitUntil(ctx, 5*time.Second, func() bool { return len(s.Replies()) >= 5 }) {
		return errors.New("the ping loop got no replies before the cut")
	}
	killAt := time.Now()
	d.say("    killing node %d (pid %d), the first relay on %s", relay.i, relay.proc.PID(), d.pathString(path, nil))
	if err := relay.proc.Kill(); err != nil {
		return err
	}
	if !waitUntil(ctx, demoFailoverTimeout, func() bool { return s.RepliesAfter(killAt.Add(100*time.Millisecond)) >= 10 }) {
		return fmt.Errorf("no replies from node %d within %v of the cut", target, demoFailoverTimeout)
	}
	s.Stop()
	o, ok := s.OutageAround(killAt)
	if !ok {
		return errors.New("no replies to measure")
	}
	if o.Lost == 0 {
		d.say("    failover: no ping lost (largest gap between replies %v)", o.Gap.Round(time.Millisecond))
	} else {
		plural := "s"
		if o.Lost == 1 {
			plural = ""
		}
		d.say("    failover: replies stopped for %v (%d ping%s lost), then came back", o.Gap.Round(time.Millisecond), o.Lost, plural)
	}
	if at, ev, ok := d.routeEventAfter(1, target, killAt); ok {
		d.say("    node 1 logged \"%s\" for node %d %v after the kill", ev, target, at.Sub(killAt).Round(time.Millisecond))
	}
	// The logs may lag the data path by a moment.
	var newPath []int
	waitUntil(ctx, 2*time.Second, func() bool {
		newPath, err = d.route(1, target)
		return err == nil && !containsInt(newPath, relay.i)
	})
	d.say("    new route: %s", d.pathString(newPath, err))
	return nil
}

// route follows the next hops from node from to node to, as each
// daemon last logged them.
func (d *demo) route(from, to int) ([]int, error) {
	path := []int{from}
	for cur := from; cur != to; {
		via, err := d.nextHop(cur, to)
		if err != nil {
			return path, err
		}
		if containsInt(path, via) || len(path) > d.n {
			return path, fmt.Errorf("loop at node %d", via)
		}
		path = append(path, via)
		cur = via
	}
	return path, nil
}

func (d *demo) nextHop(from, to int) (int, error) {
	b, err := os.ReadFile(d.nodes[from].log)
	if err != nil {
		return 0, err
	}
	re := regexp.MustCompile(`msg="route (learned|changed|failover|withdrawn|expired)" target=` + regexp.QuoteMeta(d.nodes[to].mac.String()) + `(?: via=(\S+))?`)
	m := re.FindAllSubmatch(b, -1)
	if len(m) == 0 || m[len(m)-1][2] == nil {
		return 0, fmt.Errorf("node %d has no route to node %d", from, to)
	}
	via := string(m[len(m)-1][2])
	for _, n := range d.nodes[1:] {
		if n.mac.String() == via {
			return n.i, nil
		}
	}
	return 0, fmt.Errorf("node %d routes to node %d via unknown %s", from, to, via)
}

// routeEventAfter returns the first route event node from logged for node
// to after t, and its time.
func (d *demo) routeEventAfter(from, to int, t time.Time) (time.Time, string, bool) {
	b, err := os.ReadFile(d.nodes[from].log)
	if err != nil {
		return time.Time{}, "", false
	}
	re := regexp.MustCompile(`^time=(\S+) .*msg="(route [a-z]+)" target=` + regexp.QuoteMeta(d.nodes[to].mac.String()))
	for _, line := range strings.Split(string(b), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err == nil && !at.Before(t.Truncate(time.Millisecond)) {
			return at, m[2], true
		}
	}
	return time.Time{}, "", false
}

func (d *demo) pathString(path []int, err error) string {
	var parts []string
	for _, i := range path {
		parts = append(parts, fmt.Sprint("node ", i))
	}
	s := strings.Join(parts, " -> ")
	if err != nil {
		s += fmt.Sprintf(" (%v)", err)
	}
	return s
}

// showLogs prints the end of each daemon's log after a failure.
func (d *demo) showLogs() {
	for _, n := range d.nodes {
		if n == nil {
			continue
		}
		b, err := os.ReadFile(n.log)
		if err != nil || len(b) == 0 {
			continue
		}
		if len(b) > 1500 {
			b = b[len(b)-1500:]
		}
		d.say("\n--- end of node %d's log ---\n%s", n.i, b)
	}
}

// cleanup stops the daemons, deletes the namespaces and the directory.
func (d *demo) cleanup() {
	names := d.lab.Namespaces()
	running := 0
	for _, n := range d.nodes {
		if n != nil && n.proc != nil {
			select {
			case <-n.proc.Done():
			default:
				running++
			}
		}
	}
	err := d.lab.Close()
	removed := "removed " + d.dir
	if d.keep {
		removed = "kept " + d.dir
	} else if rerr := os.RemoveAll(d.dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	left, _ := netns.List(d.lab.Prefix())
	d.say("\ncleanup: stopped %d daemons, deleted %d namespaces, %s", running, len(names)-len(left), removed)
	if err != nil {
		d.say("cleanup problems: %v", err)
	}
	if len(left) > 0 {
		d.say("WARNING: namespaces left behind: %s (remove with: ip netns del NAME)", strings.Join(left, " "))
	}
}

// waitUntil polls cond every 20 ms until it holds, ctx ends or limit passes.
func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
