package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/meshlab"
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
  6. shows the route the frames take (each daemon's next hop, asked on its
     control socket), and runs invpn health and invpn status on node 1;
  7. kills the relay on that route while pinging every 50 ms, and shows how
     long the replies stopped and the new route;
  8. starts the killed relay again and waits for the mesh;
  9. cuts the underlay link node 1's route uses silently (ip link set down
     on both ends: no FIN, no reset, only the daemons' heartbeats can tell)
     while pinging every 50 ms, shows how long the replies stopped and when
     node 1 moved its route, and brings the link up again;
 10. stops the daemons and deletes the namespaces and the directory (unless
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
	d := &demo{n: *n, announce: *announce, bin: bin, out: stdout, keep: *keep, prefix: netns.RandomPrefix("ivdemo")}
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
	prefix   string
	dir      string
	mesh     *meshlab.Mesh
	killed   int // the relay failover killed
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) node(i int) *meshlab.Node { return d.mesh.Node(i) }

// next is the successor of node i on the ring.
func (d *demo) next(i int) int { return i%d.n + 1 }

// topology is the demo's ring: link k joins node k and its successor in
// 10.99.k.0/24, node k dials its successor.
func (d *demo) topology() meshlab.Topology {
	topo := meshlab.Topology{
		Nodes:    d.n,
		Dial:     map[int][]int{},
		MACBase:  wire.MAC{0x02, 0x1d, 0xe3, 0x00, 0x00, 0x00},
		IPv4:     netip.MustParsePrefix("10.77.0.0/24"),
		Timers:   meshlab.Timers{Announce: d.announce, LinkTimeout: 3 * d.announce, Connect: 5 * time.Second},
		LogLevel: "info",
	}
	for k := 1; k <= d.n; k++ {
		topo.Links = append(topo.Links, meshlab.Link{A: k, B: d.next(k), Net: k})
		topo.Dial[k] = []int{d.next(k)}
	}
	return topo
}

// run runs every step and always cleans up.
func (d *demo) run(ctx context.Context) (err error) {
	dir, err := os.MkdirTemp("", "invpn-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	if d.mesh, err = meshlab.New(meshlab.Options{Prefix: d.prefix, Dir: dir, Bin: d.bin}, d.topology()); err != nil {
		os.RemoveAll(dir)
		return err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			d.showLogs()
		}
		d.cleanup()
	}()
	target := d.n/2 + 1
	d.say("invpn demo: %d daemons in network namespaces %s-1 .. %s-%d, linked in a ring; node 1 and node %d are not neighbours.",
		d.n, d.prefix, d.prefix, d.n, target)

	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"creating a throwaway CA and member certificates in " + dir, d.makePKI},
		{"creating the namespaces and the underlay ring (one veth pair and /24 per link)", d.makeNetwork},
		{fmt.Sprintf("starting %d daemons (announce every %v)", d.n, d.announce), d.startDaemons},
		{"waiting for the mesh: pinging every node from node 1 over the overlay", d.waitMesh},
		{fmt.Sprintf("pinging node %d (%s) from node 1", target, d.node(target).Addr4()), func(ctx context.Context) error { return d.pingAcross(ctx, target) }},
		{"asking the mesh from node 1: invpn health, then invpn status", d.showHealth},
		{fmt.Sprintf("cutting the route: killing the relay between node 1 and node %d while pinging every %v", target, demoPingInterval),
			func(ctx context.Context) error { return d.failover(ctx, target) }},
		{"starting the killed relay again", d.restartKilled},
		{fmt.Sprintf("cutting a link silently: ip link set down on both ends of the link node 1's route to node %d uses, while pinging every %v", target, demoPingInterval),
			func(ctx context.Context) error { return d.silentCut(ctx, target) }},
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
	d.say("\nThe mesh routed around both failures. Cleaning up.")
	return nil
}

func (d *demo) makePKI(context.Context) error {
	if err := d.mesh.MakePKI(); err != nil {
		return err
	}
	d.say("    CA %s, %d certificates with Common Names %s .. %s", filepath.Join(d.mesh.CADir(meshlab.GroupCA), pki.CACertFile),
		d.n, d.node(1).MAC, d.node(d.n).MAC)
	return nil
}

func (d *demo) makeNetwork(context.Context) error {
	if err := d.mesh.MakeNetwork(); err != nil {
		return err
	}
	for k := 1; k <= d.n; k++ {
		j := d.next(k)
		d.say("    node %d %s <-> %s node %d", k, d.mesh.Underlay(k, j), d.mesh.Underlay(j, k), j)
	}
	return nil
}

func (d *demo) startDaemons(context.Context) error {
	if err := d.mesh.WriteConfigs(); err != nil {
		return err
	}
	for _, n := range d.mesh.Nodes() {
		if err := n.Start(); err != nil {
			return err
		}
		d.say("    node %d: pid %d, MAC %s, overlay %s, dials node %d", n.I, n.PID(), n.MAC, n.Addr4(), d.next(n.I))
	}
	return nil
}

func (d *demo) waitMesh(ctx context.Context) error {
	t0 := time.Now()
	n1 := d.node(1)
	for _, n := range d.mesh.Nodes()[1:] {
		left := demoMeshTimeout - time.Since(t0)
		r, err := netns.PingUntil(ctx, n1.NS, n.Addr4(), demoPingInterval, max(left, time.Second))
		if err != nil {
			return err
		}
		if !r.OK {
			return fmt.Errorf("node 1 did not reach node %d within %v", n.I, demoMeshTimeout)
		}
		for _, n := range d.mesh.Nodes() {
			if exited, err := n.Exited(); exited {
				return fmt.Errorf("node %d exited: %v", n.I, err)
			}
		}
		d.say("    node 1 -> node %d (%s): first reply %v after start, rtt %v", n.I, n.Addr4(), time.Since(t0).Round(time.Millisecond), r.RTT)
	}
	return nil
}

func (d *demo) pingAcross(ctx context.Context, target int) error {
	st, err := netns.Ping(ctx, d.node(1).NS, d.node(target).Addr4(), 5, 200*time.Millisecond)
	if err != nil {
		return err
	}
	d.say("    %d/%d replies, rtt min/avg/max %v / %v / %v", st.Received, st.Sent, st.Min, st.Avg, st.Max)
	if st.Received == 0 {
		return fmt.Errorf("no reply from node %d", target)
	}
	path, err := d.mesh.Path(ctx, 1, target)
	d.say("    route: %s", d.pathString(path, err))
	return nil
}

// showHealth runs `invpn health` and `invpn status` against node 1's
// control socket and prints what they print.
func (d *demo) showHealth(ctx context.Context) error {
	n1 := d.node(1)
	for _, args := range [][]string{{"health", "--timeout", "1s"}, {"status"}} {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n1.NS, d.bin}, append(args, "--socket", n1.Socket)...)...)
		out, err := cmd.CombinedOutput()
		d.say("    $ invpn %s --socket %s", strings.Join(args, " "), n1.Socket)
		for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
			d.say("    %s", line)
		}
		if err != nil {
			return fmt.Errorf("invpn %s: %w", args[0], err)
		}
	}
	return nil
}

// failoverPoll is how often the demo asks node 1's control socket for its
// route while the relay is killed.
const failoverPoll = 5 * time.Millisecond

func (d *demo) failover(ctx context.Context, target int) error {
	path, err := d.mesh.Path(ctx, 1, target)
	if err != nil || len(path) < 3 {
		return fmt.Errorf("no relayed route from node 1 to node %d to cut: %v", target, d.pathString(path, err))
	}
	n1, dst, relay := d.node(1), d.node(target), d.node(path[1])
	s, err := netns.StartStream(n1.NS, dst.Addr4(), demoPingInterval, demoFailoverTimeout+5*time.Second)
	if err != nil {
		return err
	}
	defer s.Stop()
	if !waitUntil(ctx, 5*time.Second, func() bool { return len(s.Replies()) >= 5 }) {
		return errors.New("the ping loop got no replies before the cut")
	}
	// Watch node 1's route to the target on its control socket from just
	// before the kill: when it leaves the relay.
	type move struct {
		at  time.Time
		via wire.MAC
		err error
	}
	moved := make(chan move, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		st, err := n1.WaitStatus(wctx, demoFailoverTimeout, failoverPoll, func(st *control.Status) bool {
			r, ok := meshlab.RouteTo(st, dst.MAC)
			return ok && r.NextHop != relay.MAC
		})
		if err != nil {
			moved <- move{err: err}
			return
		}
		r, _ := meshlab.RouteTo(st, dst.MAC)
		moved <- move{at: st.Now, via: r.NextHop}
	}()
	killAt := time.Now()
	d.say("    killing node %d (pid %d), the first relay on %s", relay.I, relay.PID(), d.pathString(path, nil))
	if err := relay.Kill(); err != nil {
		return err
	}
	d.killed = relay.I
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
	if mv := <-moved; mv.err == nil {
		via := mv.via.String()
		if n := d.mesh.ByMAC(mv.via); n != nil {
			via = fmt.Sprint("node ", n.I)
		}
		d.say("    node 1's control socket showed its route to node %d via %s %v after the kill (asked every %v)",
			target, via, mv.at.Sub(killAt).Round(time.Millisecond), failoverPoll)
	}
	// The whole path may settle a moment after node 1's next hop.
	var newPath []int
	waitUntil(ctx, 2*time.Second, func() bool {
		newPath, err = d.mesh.Path(ctx, 1, target)
		return err == nil && !slices.Contains(newPath, relay.I)
	})
	d.say("    new route: %s", d.pathString(newPath, err))
	return nil
}

// restartKilled starts the relay failover killed and waits until the
// mesh has every link and route again.
func (d *demo) restartKilled(ctx context.Context) error {
	n := d.node(d.killed)
	t0 := time.Now()
	if err := n.Start(); err != nil {
		return err
	}
	if err := d.mesh.WaitConverged(ctx, demoMeshTimeout); err != nil {
		return err
	}
	d.say("    node %d: pid %d; every node has its links and routes again after %v", n.I, n.PID(), time.Since(t0).Round(time.Millisecond))
	return nil
}

// demoCutTimeout bounds the wait for node 1 to notice the silent cut;
// the daemons' detection time is 750 ms by default.
const demoCutTimeout = 5 * time.Second

// silentCut sets both ends of the underlay link node 1's route to target
// uses down, measures the outage in a ping loop and when node 1's route
// moved, and brings the link up again.
func (d *demo) silentCut(ctx context.Context, target int) error {
	n1, dst := d.node(1), d.node(target)
	s, err := netns.StartStream(n1.NS, dst.Addr4(), demoPingInterval, demoFailoverTimeout+5*time.Second)
	if err != nil {
		return err
	}
	defer s.Stop()
	if !waitUntil(ctx, 5*time.Second, func() bool { return len(s.Replies()) >= 5 }) {
		return errors.New("the ping loop got no replies before the cut")
	}
	// The link to cut is the one node 1 routes over now: each announcement
	// round may pick the other way round the ring.
	via, err := d.mesh.NextHop(ctx, 1, target)
	if err != nil {
		return err
	}
	hop := d.node(via)
	type move struct {
		at  time.Time
		err error
	}
	moved := make(chan move, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		// Detected: node 1 failed its link to hop, and routes the other way.
		st, err := n1.WaitStatus(wctx, demoCutTimeout, failoverPoll, func(st *control.Status) bool {
			_, linked := meshlab.LinkTo(st, hop.MAC)
			r, ok := meshlab.RouteTo(st, dst.MAC)
			return !linked && ok && r.NextHop != hop.MAC
		})
		if err != nil {
			moved <- move{err: err}
			return
		}
		moved <- move{at: st.Now}
	}()
	cutAt := time.Now()
	d.say("    ip link set %s down in node 1's namespace and %s down in node %d's (the link %s <-> %s)",
		d.mesh.Iface(1, hop.I), d.mesh.Iface(hop.I, 1), hop.I, d.mesh.Underlay(1, hop.I), d.mesh.Underlay(hop.I, 1))
	if err := d.mesh.SetLink(1, hop.I, false); err != nil {
		return err
	}
	mv := <-moved
	if mv.err != nil {
		return fmt.Errorf("node 1 did not notice the silent cut within %v: %v", demoCutTimeout, mv.err)
	}
	if !waitUntil(ctx, demoFailoverTimeout, func() bool { return s.RepliesAfter(mv.at) >= 10 }) {
		return fmt.Errorf("no replies from node %d within %v of the cut", target, demoFailoverTimeout)
	}
	s.Stop()
	o, ok := s.OutageAround(cutAt)
	if !ok {
		return errors.New("no replies to measure")
	}
	plural := "s"
	if o.Lost == 1 {
		plural = ""
	}
	d.say("    failover: replies stopped for %v (%d ping%s lost); node 1's control socket showed the link failed and the new route %v after the cut",
		o.Gap.Round(time.Millisecond), o.Lost, plural, mv.at.Sub(cutAt).Round(time.Millisecond))
	d.say("    (nothing told the daemons: each end found the link silent for its detection time, 750 ms by default, and failed it)")
	var newPath []int
	waitUntil(ctx, 2*time.Second, func() bool {
		newPath, err = d.mesh.Path(ctx, 1, target)
		return err == nil && (len(newPath) < 2 || newPath[1] != hop.I)
	})
	d.say("    new route: %s", d.pathString(newPath, err))

	if err := d.mesh.SetLink(1, hop.I, true); err != nil {
		return err
	}
	upAt := time.Now()
	d.say("    link restored (ip link set up on both ends)")
	if _, err := n1.WaitStatus(ctx, 10*time.Second, 0, func(st *control.Status) bool {
		_, ok := meshlab.LinkTo(st, hop.MAC)
		return ok
	}); err != nil {
		d.say("    node 1 has not relinked to node %d within 10 s (its redial is backing off)", hop.I)
		return nil
	}
	d.say("    node 1 linked to node %d again %v after the restore (the next redial after the failed ones)", hop.I, time.Since(upAt).Round(time.Millisecond))
	return nil
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
	for _, n := range d.mesh.Nodes() {
		if len(n.Logs()) > 0 {
			d.say("\n%s", n.LogTail(1500))
		}
	}
}

// cleanup stops the daemons, deletes the namespaces and the directory.
func (d *demo) cleanup() {
	names := d.mesh.Namespaces()
	running := 0
	for _, n := range d.mesh.Nodes() {
		if n.Running() {
			running++
		}
	}
	err := d.mesh.Close()
	removed := "removed " + d.dir
	if d.keep {
		removed = "kept " + d.dir
	} else if rerr := os.RemoveAll(d.dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	left, _ := netns.List(d.mesh.Prefix())
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
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}
