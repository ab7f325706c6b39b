package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/healthreport"
	"github.com/invpn/invpn/cmd/invpn/internal/metrics"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/transporttest"
	"github.com/invpn/invpn/wire"
)

// topology is an undirected graph of test nodes by index.
type topology map[[2]int]bool

func (tp topology) linked(a, b int) bool { return tp[[2]int{min(a, b), max(a, b)}] }

// neighbours returns the sorted neighbours of i.
func (tp topology) neighbours(i int) []int {
	var out []int
	for e := range tp {
		switch i {
		case e[0]:
			out = append(out, e[1])
		case e[1]:
			out = append(out, e[0])
		}
	}
	slices.Sort(out)
	return out
}

// distance is the length of the shortest path from a to b.
func (tp topology) distance(a, b int) int {
	dist := map[int]int{a: 0}
	queue := []int{a}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, y := range tp.neighbours(x) {
			if _, ok := dist[y]; !ok {
				dist[y] = dist[x] + 1
				queue = append(queue, y)
			}
		}
	}
	return dist[b]
}

// topoDialer dials only the given peers, so the mesh keeps its shape
// although every node learns every address from announcements.
type topoDialer struct {
	transport.Dialer
	allowed map[wire.MAC]bool
}

func (d topoDialer) Dial(ctx context.Context, want wire.MAC, addr netip.AddrPort) (transport.Link, error) {
	if !d.allowed[want] {
		return nil, fmt.Errorf("topology: %s is not a neighbour: %w", want, transporttest.ErrRefused)
	}
	return d.Dialer.Dial(ctx, want, addr)
}

func macIndex(m wire.MAC) int { return int(m[5]) }

// ringWithChord starts five daemons linked 1-2-3-4-5-1 plus the chord 1-3;
// the larger index dials the smaller. It waits until every node has
// exactly its links and a route to every other node.
func ringWithChord(t *testing.T, mutate func(i int, o *Options)) (topology, []*testNode) {
	t.Helper()
	tp := topology{{1, 2}: true, {2, 3}: true, {3, 4}: true, {4, 5}: true, {1, 5}: true, {1, 3}: true}
	dir := t.TempDir()
	nw := transporttest.NewNetwork()
	ns := make([]*testNode, 6) // 1-based
	for i := 1; i <= 5; i++ {
		var seeds []int
		allowed := map[wire.MAC]bool{}
		for _, j := range tp.neighbours(i) {
			if j < i {
				seeds = append(seeds, j)
				allowed[testMAC(j)] = true
			}
		}
		cfg := testConfig(dir, i, seeds...)
		cfg.Network.MinLinks = 1
		ns[i] = startNode(t, nw, i, cfg, func(o *Options) {
			o.Transport.Dialer = topoDialer{Dialer: o.Transport.Dialer, allowed: allowed}
			if mutate != nil {
				mutate(i, o)
			}
		})
	}
	for i := 1; i <= 5; i++ {
		n := ns[i]
		waitFor(t, 10*time.Second, fmt.Sprintf("node %d: links to %v and routes to all", i, tp.neighbours(i)), func() bool {
			s := n.d.Status()
			var peers []int
			for _, l := range s.Links {
				peers = append(peers, macIndex(l.Peer))
			}
			slices.Sort(peers)
			return slices.Equal(peers, tp.neighbours(i)) && len(s.Routes) == 4
		})
	}
	return tp, ns[1:]
}

// checkPath fails t unless path is a walk over links of tp that starts at
// from and ends at to and visits no node twice.
func checkPath(t *testing.T, tp topology, what string, path []wire.MAC, from, to wire.MAC) {
	t.Helper()
	if len(path) < 2 || path[0] != from || path[len(path)-1] != to {
		t.Errorf("%s %v: want a path from %s to %s", what, path, from, to)
		return
	}
	seen := map[wire.MAC]bool{}
	for i, m := range path {
		if seen[m] {
			t.Errorf("%s %v visits %s twice", what, path, m)
		}
		seen[m] = true
		if i > 0 && !tp.linked(macIndex(path[i-1]), macIndex(m)) {
			t.Errorf("%s %v: %s and %s are not linked", what, path, path[i-1], m)
		}
	}
}

// PROTOCOL.md "Behaviour", Health: a request floods to every node; each
// answers once with its links and routes, the traceroute the request
// took and the reverse traceroute of the answer. Here through the control
// socket's Handler and a real socket, with several requests at once.
func TestHealthRingWithChord(t *testing.T) {
	checkLeaks(t)
	sock := filepath.Join(t.TempDir(), "run", "invpn.sock")
	tp, ns := ringWithChord(t, func(i int, o *Options) {
		o.Version = "test"
		if i == 1 {
			o.ControlSocket = sock
		}
	})
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, %v; want mode 0600", fi, err)
	}
	if di, err := os.Stat(filepath.Dir(sock)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("control socket directory: %v, %v; want mode 0700", di, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Concurrent requests: two from node 1 over the socket, one from each
	// other node through its Handler.
	type result struct {
		requester int
		h         *control.Health
		err       error
	}
	results := make(chan result, 6)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			resp, err := control.Call(ctx, sock, control.Request{Op: "health", TimeoutMS: 500})
			r := result{requester: 1, err: err}
			if err == nil {
				r.h = resp.Health
			}
			results <- r
		})
	}
	for _, n := range ns[1:] {
		wg.Go(func() {
			h, err := n.d.Handler().Health(ctx, 500*time.Millisecond)
			results <- result{requester: macIndex(n.mac), h: h, err: err}
		})
	}
	wg.Wait()
	close(results)
	ids := map[[2]uint64]bool{} // (requester, id)
	for r := range results {
		if r.err != nil {
			t.Errorf("health from node %d: %v", r.requester, r.err)
			continue
		}
		h := r.h
		req := testMAC(r.requester)
		key := [2]uint64{uint64(r.requester), h.ID}
		if h.Requester != req || ids[key] {
			t.Errorf("health from node %d: requester %s id %d, seen before: %v", r.requester, h.Requester, h.ID, ids[key])
		}
		ids[key] = true
		if len(h.Routes) != 4 {
			t.Errorf("health from node %d: %d own routes, want 4", r.requester, len(h.Routes))
		}
		answered := map[int]bool{}
		for _, a := range h.Answers {
			resp := a.Response
			from := macIndex(resp.Origin)
			what := fmt.Sprintf("node %d's answer to node %d", from, r.requester)
			if resp.ID != h.ID || resp.Dest != req || answered[from] || from == r.requester {
				t.Errorf("%s: id %d dest %s (request %d), duplicate %v", what, resp.ID, resp.Dest, h.ID, answered[from])
			}
			answered[from] = true
			checkPath(t, tp, what+": traceroute", resp.Traceroute, req, resp.Origin)
			checkPath(t, tp, what+": reverse traceroute", append(slices.Clone(resp.Reverse), req), resp.Origin, req)
			var links []int
			for _, l := range resp.Links {
				links = append(links, macIndex(l))
			}
			if !slices.Equal(links, tp.neighbours(from)) {
				t.Errorf("%s: links %v, want %v", what, links, tp.neighbours(from))
			}
			if len(resp.Routes) != 4 {
				t.Errorf("%s: %d routes, want 4", what, len(resp.Routes))
			}
			// The answer left along the route it lists to the requester
			// (each forwarder then follows its own route).
			back := append(slices.Clone(resp.Reverse), req)
			for _, rt := range resp.Routes {
				if rt.Target == req && len(back) > 1 && back[1] != rt.NextHop {
					t.Errorf("%s: left via %s, its route to %s is via %s", what, back[1], req, rt.NextHop)
				}
			}
			if a.At.Before(h.Start) {
				t.Errorf("%s: arrived at %v, before the request at %v", what, a.At, h.Start)
			}
		}
		for j := 1; j <= 5; j++ {
			if j != r.requester && !answered[j] {
				t.Errorf("health from node %d: no answer from node %d", r.requester, j)
			}
		}
		// The report counts the hops of the paths checked above.
		rep := healthreport.Build(h.Requester, h.ID, h.Start, h.Answers, h.Routes)
		if len(rep.Rows) != 4 || len(rep.Missing) != 0 {
			t.Errorf("report from node %d: %d rows, missing %v", r.requester, len(rep.Rows), rep.Missing)
		}
		for _, row := range rep.Rows {
			d := tp.distance(r.requester, macIndex(row.Node))
			if row.HopsOut != len(row.PathOut)-1 || row.HopsBack != len(row.PathBack)-1 || row.HopsOut < d || row.HopsBack < d {
				t.Errorf("report from node %d: row %s: hops %d out %d back over %v and %v; distance %d",
					r.requester, row.Node, row.HopsOut, row.HopsBack, row.PathOut, row.PathBack, d)
			}
		}
		if r.requester == 1 && len(rep.Rows) > 0 {
			var buf bytes.Buffer
			rep.WriteTable(&buf)
			t.Logf("invpn health on node 1:\n%s", buf.String())
		}
	}

	// No request is left pending in any loop.
	for _, n := range ns {
		n.d.call(ctx, func() {
			if len(n.d.health) != 0 {
				t.Errorf("node %s: %d health requests still pending", n.mac, len(n.d.health))
			}
		})
	}
	// Stopping the daemon removes its socket; requests then fail.
	ns[0].stop()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after stop: %v", err)
	}
	if _, err := ns[0].d.Handler().Health(ctx, time.Second); err != ErrStopped {
		t.Errorf("Health after stop = %v, want ErrStopped", err)
	}
}

// `invpn status` over the socket lists the node's links and a route to
// every node, each via a neighbour in the topology.
func TestStatusRingWithChord(t *testing.T) {
	checkLeaks(t)
	sock := filepath.Join(t.TempDir(), "invpn.sock")
	tp, ns := ringWithChord(t, func(i int, o *Options) {
		o.Version = "v-test"
		if i == 3 {
			o.ControlSocket = sock
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, sock, control.Request{Op: "status"})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.Status
	if st.Version != "v-test" || st.MAC != testMAC(3) || st.Now.Before(st.Started) {
		t.Errorf("status header: version %q mac %s started %v now %v", st.Version, st.MAC, st.Started, st.Now)
	}
	var peers []int
	for _, l := range st.Links {
		peers = append(peers, macIndex(l.Peer))
		// Node 3 dials its smaller neighbours and accepts the larger.
		if l.Dialed != (macIndex(l.Peer) < 3) || !l.Extended || l.FramesIn == 0 || l.FramesOut == 0 ||
			l.BytesIn == 0 || l.BytesOut == 0 || l.Up.IsZero() {
			t.Errorf("link %+v", l)
		}
		if !strings.HasPrefix(l.Addr, fmt.Sprintf("10.0.0.%d:", macIndex(l.Peer))) {
			t.Errorf("link to %s: address %s", l.Peer, l.Addr)
		}
	}
	slices.Sort(peers)
	if !slices.Equal(peers, tp.neighbours(3)) {
		t.Errorf("node 3 links %v, want %v", peers, tp.neighbours(3))
	}
	var targets []int
	for _, r := range st.Routes {
		to, via := macIndex(r.Target), macIndex(r.NextHop)
		targets = append(targets, to)
		if !tp.linked(3, via) {
			t.Errorf("route to %d via %d: not a neighbour", to, via)
		}
		if r.Hops < tp.distance(3, to) || r.Hops > 4 {
			t.Errorf("route to %d: %d hops, distance %d", to, r.Hops, tp.distance(3, to))
		}
		if tp.linked(3, to) && via == to && r.Hops != 1 {
			t.Errorf("direct route to %d: %d hops", to, r.Hops)
		}
		for _, b := range r.Backups {
			if !tp.linked(3, macIndex(b)) || b == r.NextHop {
				t.Errorf("route to %d: backup %s", to, b)
			}
		}
		if r.Learned.IsZero() || r.Refreshed.Before(r.Learned) {
			t.Errorf("route to %d: learned %v refreshed %v", to, r.Learned, r.Refreshed)
		}
	}
	if !slices.Equal(targets, []int{1, 2, 4, 5}) {
		t.Errorf("routes to %v, want 1 2 4 5", targets)
	}
	for _, reason := range node.DropReasons() {
		if _, ok := st.Drops[reason.String()]; !ok {
			t.Errorf("drops lack %q", reason)
		}
	}
	for _, name := range []string{metrics.CounterRouteChanges, metrics.CounterFailovers, metrics.CounterWithdrawals, metrics.CounterViolations} {
		if _, ok := st.Counters[name]; !ok {
			t.Errorf("counters lack %q", name)
		}
	}
	_ = ns
}

// The metrics endpoint serves the daemon's links, routes and health
// round-trip times in the Prometheus text format.
func TestMetricsEndpoint(t *testing.T) {
	checkLeaks(t)
	_, ns := ringWithChord(t, func(i int, o *Options) {
		if i == 1 {
			o.MetricsListen = "127.0.0.1:0"
		}
	})
	n := ns[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := n.d.MetricsAddr(ctx)
	if err != nil || addr == nil {
		t.Fatalf("metrics address %v, %v", addr, err)
	}
	if _, err := n.d.Handler().Health(ctx, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	for name, want := range map[string]float64{"invpn_links": 3, "invpn_routes": 4, "invpn_scrape_ok": 1} {
		f := fams[name]
		if f == nil || len(f.Metric) != 1 {
			t.Errorf("metric %s missing", name)
			continue
		}
		if got := f.Metric[0].GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if h := fams["invpn_health_rtt_seconds"]; h == nil || h.Metric[0].GetHistogram().GetSampleCount() != 4 {
		t.Errorf("health RTT histogram: %v, want 4 samples", h)
	}
	if f := fams["invpn_link_frames_total"]; f == nil || len(f.Metric) != 2 {
		t.Errorf("invpn_link_frames_total: %v", f)
	}
}

// A control socket that cannot be created stops Run with an error naming
// it, and leaves nothing running.
func TestControlSocketError(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(blocker, "invpn.sock") // its directory is a file
	nw := transporttest.NewNetwork()
	n := startNode(t, nw, 1, testConfig(dir, 1), func(o *Options) { o.ControlSocket = sock })
	select {
	case err := <-n.errc:
		if err == nil || !strings.Contains(err.Error(), "control socket "+sock) {
			t.Fatalf("Run = %v, want an error naming the control socket", err)
		}
		n.errc <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not fail")
	}
	select {
	case <-n.tap.Closed():
	default:
		t.Error("TAP device not closed")
	}
	if _, err := n.d.Handler().Status(context.Background()); err != ErrStopped {
		t.Errorf("Status after a failed Run = %v, want ErrStopped", err)
	}
}
