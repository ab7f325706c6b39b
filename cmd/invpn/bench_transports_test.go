package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/linkemu"
	"github.com/invpn/invpn/cmd/invpn/internal/meshlab"
	"github.com/invpn/invpn/cmd/invpn/internal/netns"
)

// TestBenchTransports is the measurement that says when to pick QUIC
// (docs/protocol.md#choosing-a-transport, README "Transports"): two
// daemons in namespaces, over TLS/TCP and over QUIC, on a clean veth and
// on an impaired underlay (a linkemu link with 10 ms each way, so 20 ms
// of round trip, and 0, 1 or 3 % random loss each way by an nftables
// rule in each namespace). Per row: iperf3 TCP throughput through the
// overlay, and the ping RTT p50/p99 through the overlay while that bulk
// transfer runs (pings every 10 ms), and each daemon's peak RSS.
//
// It is a benchmark, not a test: it runs only with
// INVPN_BENCH_TRANSPORTS=1 (cmd/invpn/bench/netns.sh transports runs it),
// as root with iperf3 installed. INVPN_BENCH_SECS sets the seconds per
// transfer (default 10).
func TestBenchTransports(t *testing.T) {
	if os.Getenv("INVPN_BENCH_TRANSPORTS") != "1" {
		t.Skip("a benchmark: run with INVPN_BENCH_TRANSPORTS=1 (cmd/invpn/bench/netns.sh transports)")
	}
	e2eSkip(t)
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatal("iperf3 is not installed (apt-get install iperf3)")
	}
	secs := 10
	if s, err := strconv.Atoi(os.Getenv("INVPN_BENCH_SECS")); err == nil && s > 0 {
		secs = s
	}
	type condition struct {
		name  string
		delay time.Duration // one way
		loss  int           // percent, each way
	}
	conds := []condition{{"clean veth", 0, 0}, {"20 ms RTT, 0% loss", 10 * time.Millisecond, 0},
		{"20 ms RTT, 1% loss", 10 * time.Millisecond, 1}, {"20 ms RTT, 3% loss", 10 * time.Millisecond, 3}}
	var rows []benchRow
	for _, c := range conds {
		for _, tr := range []string{"tls", "quic"} {
			if only := os.Getenv("INVPN_BENCH_ONLY"); only != "" && !strings.Contains(c.name+" "+tr, only) {
				continue
			}
			r := benchTransport(t, tr, c.delay, c.loss, secs)
			r.cond = c.name
			t.Logf("%-20s %-5s %8.3f Gbit/s  ping p50 %7.2f ms  p99 %7.2f ms  lost %d/%d  RSS %s", r.cond, tr, r.gbps, r.p50, r.p99, r.lost, r.sent, r.rss)
			rows = append(rows, r)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invpn transports benchmark, %s, %d cores, iperf3 %d s per row, ping every 10 ms during the transfer\n",
		time.Now().UTC().Format("2006-01-02"), numCPU(), secs)
	fmt.Fprintf(&b, "| underlay | transport | TCP Gbit/s | QUIC/TLS | ping p50 ms | ping p99 ms | p99 QUIC/TLS | pings lost | peak RSS MiB |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	for i, r := range rows {
		ratio, p99ratio := "", ""
		if r.transport == "quic" && i > 0 && rows[i-1].cond == r.cond {
			tls := rows[i-1]
			ratio = fmt.Sprintf("%.2f", r.gbps/tls.gbps)
			p99ratio = fmt.Sprintf("%.2f", r.p99/tls.p99)
		}
		fmt.Fprintf(&b, "| %s | %s | %.3f | %s | %.2f | %.2f | %s | %d/%d | %s |\n", r.cond, r.transport, r.gbps, ratio, r.p50, r.p99, p99ratio, r.lost, r.sent, r.rss)
	}
	fmt.Println(b.String())
}

type benchRow struct {
	cond, transport string
	gbps            float64
	p50, p99        float64
	lost, sent      int
	rss             string
}

func numCPU() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// benchTransport measures one row: a 2-node mesh over transport.
func benchTransport(t *testing.T, transport string, delay time.Duration, loss, secs int) benchRow {
	link := meshlab.Link{A: 1, B: 2, Net: 12}
	if delay > 0 {
		link.Emulated = &linkemu.Params{Delay: delay, Limit: 10000, Seed: 20261202}
	}
	m := newMesh(t, "ivbt", meshlab.Topology{
		Nodes:      2,
		Links:      []meshlab.Link{link},
		Dial:       map[int][]int{2: {1}},
		MACBase:    e2eMACs,
		IPv4:       netip.MustParsePrefix("10.78.0.0/24"),
		LogLevel:   benchLogLevel(),
		Transports: map[int]string{1: transport, 2: transport},
		MTU:        benchMTU(),
	})
	defer m.Close()
	ctx := context.Background()
	n1, n2 := m.Node(1), m.Node(2)
	if r, err := netns.PingUntil(ctx, n1.NS, n2.Addr4(), 50*time.Millisecond, 20*time.Second); err != nil || !r.OK {
		t.Fatalf("%s: node 1 does not reach node 2: %v", transport, err)
	}
	if loss > 0 {
		for _, p := range [][2]int{{1, 2}, {2, 1}} {
			rules := fmt.Sprintf("table inet ivloss {\n\tchain in {\n\t\ttype filter hook input priority -300; policy accept;\n\t\tip saddr %s numgen random mod 100 < %d counter drop\n\t\tip saddr %[1]s counter\n\t}\n}\n",
				m.Underlay(p[1], p[0]), loss)
			cmd := exec.Command("ip", "netns", "exec", m.Node(p[0]).NS, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(rules)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft: %v: %s", err, out)
			}
		}
	}
	srv := exec.Command("ip", "netns", "exec", n2.NS, "iperf3", "-s", "-1")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond) // the server's listen; a benchmark, not a unit test
	pctx, cancel := context.WithTimeout(ctx, time.Duration(secs+20)*time.Second)
	defer cancel()
	// -c, not -w: ping ends after its last reply (or 2 s), so replies
	// still in flight at the end are not counted lost.
	ping := exec.CommandContext(pctx, "ip", "netns", "exec", n1.NS, "ping", "-n", "-i", "0.01", "-W", "2", "-c", strconv.Itoa(secs*100), n2.Addr4())
	pout, _ := ping.StdoutPipe()
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	rtts, transmitted := make(chan []float64, 1), make(chan int, 1)
	go func() {
		var v []float64
		sent := 0
		sc := bufio.NewScanner(pout)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "time="); i >= 0 {
				f, _ := strconv.ParseFloat(strings.Fields(line[i+5:])[0], 64)
				v = append(v, f)
			}
			if f := strings.Fields(line); len(f) > 3 && f[1] == "packets" && f[2] == "transmitted," {
				sent, _ = strconv.Atoi(f[0])
			}
		}
		rtts <- v
		transmitted <- sent
	}()
	var t0 []float64
	for _, n := range m.Nodes() {
		t0 = append(t0, cpuSeconds(n.PID()))
	}
	var perf *exec.Cmd
	if dir := os.Getenv("INVPN_BENCH_PERF"); dir != "" {
		perf = exec.Command("perf", "record", "-q", "-g", "-p", fmt.Sprintf("%d,%d", n1.PID(), n2.PID()), "-o", fmt.Sprintf("%s/%s.data", dir, transport), "--", "sleep", strconv.Itoa(secs))
		if err := perf.Start(); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.CommandContext(pctx, "ip", "netns", "exec", n1.NS, "iperf3", "-c", n2.Addr4(), "-t", strconv.Itoa(secs), "-J").Output()
	if err != nil {
		t.Fatalf("%s: iperf3: %v\n%s", transport, err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("iperf3 output: %v", err)
	}
	if perf != nil {
		perf.Wait()
	}
	var cpu []string
	for i, n := range m.Nodes() {
		cpu = append(cpu, fmt.Sprintf("%.1f", cpuSeconds(n.PID())-t0[i]))
	}
	t.Logf("%s: daemons' CPU seconds during the transfer: %s; inner TCP retransmits %d", transport, strings.Join(cpu, " "), res.End.SumSent.Retransmits)
	ping.Wait()
	v := <-rtts
	if os.Getenv("INVPN_BENCH_DEBUG") == "1" {
		for _, n := range m.Nodes() {
			rules, _ := netns.Exec(ctx, n.NS, "nft", "list", "ruleset")
			t.Logf("node %d nft:\n%s", n.I, rules)
			snmp, _ := netns.Exec(ctx, n.NS, "cat", "/proc/net/snmp")
			for _, l := range strings.Split(snmp, "\n") {
				if strings.HasPrefix(l, "Udp:") {
					t.Logf("node %d %s", n.I, l)
				}
			}
			st, _ := netns.Exec(ctx, n.NS, invpnBinary(t), "status", "--socket", n.Socket)
			t.Logf("node %d status:\n%s", n.I, st)
		}
	}
	slices.Sort(v)
	q := func(p float64) float64 {
		if len(v) == 0 {
			return math.NaN()
		}
		return v[min(len(v)-1, int(p*float64(len(v))))]
	}
	var rss []string
	for _, n := range m.Nodes() {
		rss = append(rss, peakRSS(n.PID()))
	}
	sent := <-transmitted
	return benchRow{transport: transport, gbps: res.End.SumReceived.BitsPerSecond / 1e9, p50: q(0.5), p99: q(0.99),
		lost: max(0, sent-len(v)), sent: sent, rss: strings.Join(rss, " ")}
}

// peakRSS returns a process's VmHWM in MiB.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return fmt.Sprintf("%.1f", float64(kb)/1024)
		}
	}
	return "?"
}

// benchLogLevel is the daemons' log level: warn, or info with
// INVPN_BENCH_DEBUG=1.
func benchLogLevel() string {
	if os.Getenv("INVPN_BENCH_DEBUG") == "1" {
		return "info"
	}
	return "warn"
}

// benchMTU is the TAP MTU of the benchmark's daemons: INVPN_BENCH_MTU, or
// the default.
func benchMTU() int {
	n, _ := strconv.Atoi(os.Getenv("INVPN_BENCH_MTU"))
	return n
}

// cpuSeconds returns a process's user and system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return float64(u+s) / 100 // USER_HZ
}
