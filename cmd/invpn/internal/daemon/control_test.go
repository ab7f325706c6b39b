package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/invpn/invpn/cmd/invpn/internal/meshmap"
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

// ringWithChord starts five daemons linked 1-2-3-4-5-1 plus the chord 1-3;
// the larger index dials the smaller. It waits until every node has
// exactly its links and a route to every other node: in a bubble, before
// any timer fires.
func ringWithChord(m *mesh, mutate func(i int, o *Options)) (topology, []*testNode) {
	m.t.Helper()
	tp := topology{{1, 2}: true, {2, 3}: true, {3, 4}: true, {4, 5}: true, {1, 5}: true, {1, 3}: true}
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
		ns[i] = m.start(i, func(o *Options) {
			o.Node.MinLinks = 1
			o.Transport.Dialer = topoDialer{Dialer: o.Transport.Dialer, allowed: allowed}
			if mutate != nil {
				mutate(i, o)
			}
		}, seeds...)
	}
	for i := 1; i <= 5; i++ {
		n := ns[i]
		m.waitFor(settleRoutes, fmt.Sprintf("node %d: links to %v and routes to all", i, tp.neighbours(i)), func() bool {
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

// healthResult is the answer to one health request of a test.
type healthResult struct {
	requester int
	h         *control.Health
	err       error
}

// checkHealth checks the answers to health requests on the ring of tp
// (docs/protocol.md#health): every other node answered each
// request once, along paths of tp, with its links and routes; each
// requester's ids differ; the report counts the hops of those paths.
func checkHealth(t *testing.T, tp topology, results []healthResult) {
	t.Helper()
	ids := map[[2]uint64]bool{} // (requester, id)
	for _, r := range results {
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
}

// checkNoPendingHealth checks that no health request is left pending in
// any loop.
func checkNoPendingHealth(t *testing.T, ctx context.Context, ns []*testNode) {
	t.Helper()
	for _, n := range ns {
		n.d.call(ctx, func() {
			if len(n.d.health) != 0 {
				t.Errorf("node %s: %d health requests still pending", n.mac, len(n.d.health))
			}
		})
	}
}

// docs/protocol.md#health: a request floods to every node; each
// answers once with its links and routes, the traceroute the request
// took and the reverse traceroute of the answer. Here through the control
// socket's Handler, with several requests at once: two from node 1, one
// from each other node. The answers arrive with no time passing; each
// request waits its timeout.
func TestHealthRingWithChord(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		tp, ns := ringWithChord(m, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		const timeout = 500 * time.Millisecond
		start := time.Now()
		results := make(chan healthResult, 6)
		var wg sync.WaitGroup
		for _, n := range append([]*testNode{ns[0]}, ns...) {
			wg.Go(func() {
				h, err := n.d.Handler().Health(ctx, timeout)
				results <- healthResult{requester: macIndex(n.mac), h: h, err: err}
			})
		}
		wg.Wait()
		close(results)
		if took := time.Since(start); took != timeout {
			t.Errorf("health requests took %v, want their timeout %v", took, timeout)
		}
		var all []healthResult
		for r := range results {
			all = append(all, r)
		}
		checkHealth(t, tp, all)
		checkNoPendingHealth(t, ctx, ns)
		// A request to a stopped daemon fails.
		ns[0].stop()
		if _, err := ns[0].d.Handler().Health(ctx, time.Second); err != ErrStopped {
			t.Errorf("Health after stop = %v, want ErrStopped", err)
		}
	})
}

// checkStatus checks the status of node i on the ring of tp, as `invpn
// status` shows it: its links, each to a neighbour with traffic both ways,
// and a route to every other node via a neighbour, with backups among the
// neighbours.
func checkStatus(t *testing.T, tp topology, i int, st *control.Status, version string) {
	t.Helper()
	if st.Version != version || st.MAC != testMAC(i) || st.Now.Before(st.Started) {
		t.Errorf("status header: version %q mac %s started %v now %v", st.Version, st.MAC, st.Started, st.Now)
	}
	var peers []int
	for _, l := range st.Links {
		peers = append(peers, macIndex(l.Peer))
		// Node i dials its smaller neighbours and accepts the larger.
		if l.Dialed != (macIndex(l.Peer) < i) || !l.Extended || l.FramesIn == 0 || l.FramesOut == 0 ||
			l.BytesIn == 0 || l.BytesOut == 0 || l.Up.IsZero() {
			t.Errorf("link %+v", l)
		}
		if !strings.HasPrefix(l.Addr, fmt.Sprintf("10.0.0.%d:", macIndex(l.Peer))) {
			t.Errorf("link to %s: address %s", l.Peer, l.Addr)
		}
	}
	slices.Sort(peers)
	if !slices.Equal(peers, tp.neighbours(i)) {
		t.Errorf("node %d links %v, want %v", i, peers, tp.neighbours(i))
	}
	var targets, want []int
	for j := 1; j <= 5; j++ {
		if j != i {
			want = append(want, j)
		}
	}
	for _, r := range st.Routes {
		to, via := macIndex(r.Target), macIndex(r.NextHop)
		targets = append(targets, to)
		if !tp.linked(i, via) {
			t.Errorf("route to %d via %d: not a neighbour", to, via)
		}
		if r.Hops < tp.distance(i, to) || r.Hops > 4 {
			t.Errorf("route to %d: %d hops, distance %d", to, r.Hops, tp.distance(i, to))
		}
		if tp.linked(i, to) && via == to && r.Hops != 1 {
			t.Errorf("direct route to %d: %d hops", to, r.Hops)
		}
		for _, b := range r.Backups {
			if !tp.linked(i, macIndex(b)) || b == r.NextHop {
				t.Errorf("route to %d: backup %s", to, b)
			}
		}
		if r.Learned.IsZero() || r.Refreshed.Before(r.Learned) {
			t.Errorf("route to %d: learned %v refreshed %v", to, r.Learned, r.Refreshed)
		}
	}
	if !slices.Equal(targets, want) {
		t.Errorf("routes to %v, want %v", targets, want)
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
}

// `invpn status` through the control socket's Handler lists the node's
// links and a route to every node, each via a neighbour in the topology;
// here for every node of the ring, after a few announcement intervals.
func TestStatusRingWithChord(t *testing.T) {
	inBubble(t, func(t *testing.T, m *mesh) {
		tp, ns := ringWithChord(m, func(i int, o *Options) { o.Version = "v-test" })
		time.Sleep(3 * node.DefaultConfig().AnnounceInterval) // virtual: routes refreshed, nothing changed
		for i, n := range ns {
			st, err := n.d.Handler().Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkStatus(t, tp, i+1, st, "v-test")
		}
	})
}

// The control socket (real, so in real time): created root only in a
// directory 0700; status and concurrent health requests over it answer as
// the Handler does; stopping the daemon removes it.
func TestControlSocket(t *testing.T) {
	m := realTimeMesh(t)
	sock := filepath.Join(t.TempDir(), "run", "invpn.sock")
	tp, ns := ringWithChord(m, func(i int, o *Options) {
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

	resp, err := control.Call(ctx, sock, control.Request{Op: "status"})
	if err != nil {
		t.Fatal(err)
	}
	checkStatus(t, tp, 1, resp.Status, "test")

	// Concurrent requests: two from node 1 over the socket, one from each
	// other node through its Handler.
	results := make(chan healthResult, 6)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			resp, err := control.Call(ctx, sock, control.Request{Op: "health", TimeoutMS: 500})
			r := healthResult{requester: 1, err: err}
			if err == nil {
				r.h = resp.Health
			}
			results <- r
		})
	}
	for _, n := range ns[1:] {
		wg.Go(func() {
			h, err := n.d.Handler().Health(ctx, 500*time.Millisecond)
			results <- healthResult{requester: macIndex(n.mac), h: h, err: err}
		})
	}
	wg.Wait()
	close(results)
	var all []healthResult
	for r := range results {
		all = append(all, r)
	}
	checkHealth(t, tp, all)
	checkNoPendingHealth(t, ctx, ns)

	// Stopping the daemon removes its socket; requests then fail.
	ns[0].stop()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after stop: %v", err)
	}
	if _, err := ns[0].d.Handler().Health(ctx, time.Second); err != ErrStopped {
		t.Errorf("Health after stop = %v, want ErrStopped", err)
	}
	if _, err := control.Call(ctx, sock, control.Request{Op: "status"}); err == nil {
		t.Errorf("status over the socket of a stopped daemon succeeded")
	}
}

// The metrics endpoint serves the daemon's links, routes and health
// round-trip times in the Prometheus text format. Real TCP, so real time.
func TestMetricsEndpoint(t *testing.T) {
	m := realTimeMesh(t)
	_, ns := ringWithChord(m, func(i int, o *Options) {
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
	inBubble(t, func(t *testing.T, m *mesh) {
		blocker := filepath.Join(m.dir, "file")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(blocker, "invpn.sock") // its directory is a file
		n := m.start(1, func(o *Options) { o.ControlSocket = sock })
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
	})
}

// The live map on the metrics listener streams the mesh as health
// requests find it, and its stream ends when the daemon stops (a page
// left open does not hold the daemon up).
func TestLiveMapEndpoint(t *testing.T) {
	m := realTimeMesh(t)
	_, ns := ringWithChord(m, func(i int, o *Options) {
		if i == 1 {
			o.MetricsListen, o.Map = "127.0.0.1:0", true
		}
	})
	n := ns[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := n.d.MetricsAddr(ctx)
	if err != nil || addr == nil {
		t.Fatalf("metrics address %v, %v", addr, err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr.String()+"/map/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var g meshmap.Graph
	for len(g.Nodes) != 5 || g.Answered != 5 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v (last graph %+v)", err, g)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if err := json.Unmarshal([]byte(data), &g); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
		}
	}
	if g.Self != n.d.mac.String() || len(g.Links) != 6 || len(g.Routes) != 4 {
		t.Errorf("graph %+v, want node 1's view of the 5-node ring with a chord", g)
	}
	n.stop()
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Errorf("the stream ended with %v, want a clean end when the daemon stops", err)
	}
}
