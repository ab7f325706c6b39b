package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/daemon"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/cmd/invpn/internal/revocation"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev/taptest"
	"github.com/invpn/invpn/wire"
)

// The file's keys reach the node: port, flags, timers, link counts and
// the `init` seeds in the file's order; the trigger gap and the longest
// redial backoff follow the announce and connect intervals; the rest are
// the node's defaults.
func TestNodeConfig(t *testing.T) {
	mac := wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	a, b := wire.MAC{0x02, 0, 0, 0, 0, 0xa}, wire.MAC{0x02, 0, 0, 0, 0, 0xb}
	cfg := config.Default()
	cfg.Network.Port = 4000
	cfg.Network.NoIncoming, cfg.Network.NoRelay = true, true
	cfg.Network.MinLinks, cfg.Network.MaxLinks = 3, 5
	cfg.Network.Init = []config.Seed{
		{MAC: b, Addr: netip.MustParseAddrPort("192.0.2.2:41744")},
		{MAC: a, Addr: netip.MustParseAddrPort("[2001:db8::1]:7")},
	}
	cfg.Timers = config.Timers{Announce: 2 * time.Second, Connect: 30 * time.Second, RouteExpiry: time.Minute, LinkTimeout: 6 * time.Second,
		Heartbeat: 100 * time.Millisecond, DeadAfter: 400 * time.Millisecond, Refresh: 30 * time.Second, BatchDelay: 100 * time.Millisecond,
		ChangeDelay: 2 * time.Millisecond, AskWindow: 3 * time.Millisecond}

	want := node.DefaultConfig()
	want.MAC, want.Port, want.NoIncoming, want.NoRelay = mac, 4000, true, true
	want.MinLinks, want.MaxLinks = 3, 5
	want.AnnounceInterval, want.ConnectInterval = 2*time.Second, 30*time.Second
	want.RouteExpiry, want.LinkTimeout = time.Minute, 6*time.Second
	want.TriggerGap, want.DialBackoffMax = 200*time.Millisecond, 30*time.Second
	want.HeartbeatInterval, want.DeadAfter = 100*time.Millisecond, 400*time.Millisecond
	want.RefreshInterval, want.BatchDelay, want.ChangeDelay, want.AskWindow = 30*time.Second, 100*time.Millisecond, 2*time.Millisecond, 3*time.Millisecond
	want.Seeds = []node.Peer{{MAC: b, Addr: cfg.Network.Init[0].Addr}, {MAC: a, Addr: cfg.Network.Init[1].Addr}}
	if got := nodeConfig(cfg, mac); !reflect.DeepEqual(got, want) {
		t.Errorf("nodeConfig =\n%+v\nwant\n%+v", got, want)
	}

	// A file that sets nothing gives the node's defaults.
	want = node.DefaultConfig()
	want.MAC, want.Port = mac, config.DefaultPort
	if got := nodeConfig(config.Default(), mac); !reflect.DeepEqual(got, want) {
		t.Errorf("nodeConfig of the defaults =\n%+v\nwant\n%+v", got, want)
	}
}

// The options carry the file's paths and endpoints; the daemon listens on
// the port at each [network] listen address, at every address when none
// is given, and nowhere with no_incoming.
func TestDaemonOptions(t *testing.T) {
	mac := wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	cfg := config.Default()
	cfg.Network.Cache = "/var/lib/x/cache.json"
	cfg.Control.Socket = "/run/x.sock"
	cfg.Metrics.Listen, cfg.Metrics.MapToken = "127.0.0.1:9742", "0123456789abcdef"
	boot := config.Seed{MAC: wire.MAC{0x02, 0x50, 0x56, 0, 0, 9}, Addr: netip.MustParseAddrPort("192.0.2.9:41744")}
	cfg.Network.Bootstrap = []config.Seed{boot}
	o := daemonOptions(cfg, mac)
	if len(o.Node.Bootstrap) != 1 || o.Node.Bootstrap[0] != (node.Peer{MAC: boot.MAC, Addr: boot.Addr}) {
		t.Errorf("bootstrap peers %v, want %v", o.Node.Bootstrap, boot)
	}
	if o.Node.MAC != mac || o.CacheFile != cfg.Network.Cache || o.ControlSocket != cfg.Control.Socket ||
		o.MetricsListen != cfg.Metrics.Listen || !o.Map || o.MapToken != cfg.Metrics.MapToken || o.Version != version {
		t.Errorf("options %+v", o)
	}
	for _, c := range []struct {
		listen     []netip.Addr
		noIncoming bool
		want       []string
	}{
		{nil, false, []string{":41744"}},
		{[]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, false, []string{"127.0.0.1:41744", "[::1]:41744"}},
		{[]netip.Addr{netip.MustParseAddr("127.0.0.1")}, true, nil},
	} {
		cfg := config.Default()
		cfg.Network.Listen, cfg.Network.NoIncoming = c.listen, c.noIncoming
		if got := listenAddrs(cfg); !slices.Equal(got, c.want) {
			t.Errorf("listen %v no_incoming %v: addresses %q, want %q", c.listen, c.noIncoming, got, c.want)
		}
	}
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// writeTLSConfig issues a certificate for mac and writes a configuration
// file for it listening on 127.0.0.1:port.
func writeTLSConfig(t *testing.T, caDir, dir string, mac wire.MAC, port uint16, init string) string {
	t.Helper()
	if err := pki.IssueNode(caDir, mac, dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "invpn.conf")
	text := fmt.Sprintf(`[ssl]
key = node.key
cert = node.crt
ca = ca.crt
[network]
port = %d
listen = 127.0.0.1
cache = cache.json
init = %s
[timers]
announce = 100ms
`, port, init)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func hasRoute(s daemon.Snapshot, target wire.MAC) bool {
	return slices.ContainsFunc(s.Routes, func(r node.RouteInfo) bool { return r.Target == target })
}

// optionsFromFile returns the daemon options that runRun builds from the
// configuration file path (its TLS transport and reload, logging to
// logs), without a control socket; the caller adds the TAP and signals.
func optionsFromFile(t *testing.T, path string, logs *syncBuffer) daemon.Options {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := tlsOptions(cfg, path, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	opts.ControlSocket = "" // not /run/invpn
	return opts
}

// runningDaemon is a daemon started from its configuration file by
// startFromFile, on a test TAP device.
type runningDaemon struct {
	d    *daemon.Daemon
	tap  *taptest.Device
	sig  chan os.Signal
	errc chan error
	logs *syncBuffer
}

// startFromFile runs the daemon of the configuration file path as runRun
// builds it, until the end of the test (its log is shown if it failed).
func startFromFile(t *testing.T, path string) *runningDaemon {
	t.Helper()
	r := &runningDaemon{tap: taptest.New(taptest.Config{}), sig: make(chan os.Signal, 1), errc: make(chan error, 1), logs: &syncBuffer{}}
	opts := optionsFromFile(t, path, r.logs)
	opts.TAP, opts.Signals = r.tap, r.sig
	var err error
	r.d, err = daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { r.errc <- r.d.Run(context.Background()) }()
	t.Cleanup(func() {
		r.sig <- syscall.SIGTERM
		select {
		case err := <-r.errc:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("daemon did not stop")
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", path, r.logs.String())
		}
	})
	return r
}

// Two daemons linked over real TLS on the loopback (so in real time),
// built from their files as runRun builds them; SIGHUP re-reads the files
// and applies new seeds.
func TestTLSLoopback(t *testing.T) {
	others := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, others) })
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	macs := []wire.MAC{{0x02, 0x50, 0x56, 0, 0, 1}, {0x02, 0x50, 0x56, 0, 0, 2}}
	p1, p2 := freeTCPPort(t), freeTCPPort(t)
	path1 := writeTLSConfig(t, caDir, filepath.Join(dir, "n1"), macs[0], p1, "")
	path2 := writeTLSConfig(t, caDir, filepath.Join(dir, "n2"), macs[1], p2, "")

	n1, n2 := startFromFile(t, path1), startFromFile(t, path2)
	// Status is served by the loop, after start-up: neither daemon has a
	// seed or a cached peer to dial.
	for _, n := range []*runningDaemon{n1, n2} {
		if len(n.d.Status().Links) != 0 {
			t.Fatal("linked without seeds")
		}
		if logs := n.logs.String(); !strings.Contains(logs, "seeds=0 cached_peers=0") {
			t.Fatalf("start-up log without seeds=0 cached_peers=0:\n%s", logs)
		}
	}
	// Give node 2 a seed and reload it.
	text, _ := os.ReadFile(path2)
	seed := fmt.Sprintf("%s@127.0.0.1:%d", macs[0], p1)
	text = []byte(strings.Replace(string(text), "init = \n", "init = "+seed+"\n", 1))
	if err := os.WriteFile(path2, text, 0o600); err != nil {
		t.Fatal(err)
	}
	n2.sig <- syscall.SIGHUP
	// The daemon has no change notification: check its status every few
	// milliseconds.
	deadline := time.Now().Add(5 * time.Second)
	for !hasRoute(n1.d.Status(), macs[1]) || !hasRoute(n2.d.Status(), macs[0]) {
		if time.Now().After(deadline) {
			t.Fatal("no TLS link within 5 s of the reload")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if logs := n2.logs.String(); !strings.Contains(logs, "msg=reloaded file="+path2+" seeds=1 listeners=1") {
		t.Errorf("reload not logged:\n%s", logs)
	}
	// The listener was kept, with the new identity (no window in which
	// links are refused), not closed and opened anew.
	if logs := n2.logs.String(); !strings.Contains(logs, `msg="reload: listeners kept, new identity in place" listeners=1`) ||
		strings.Count(logs, "msg=listening") != 1 {
		t.Errorf("reload did not keep the listener:\n%s", logs)
	}
	s := n1.d.Status()
	if len(s.Links) != 1 || !s.Links[0].Extended || s.Links[0].Addr.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("node 1 links: %+v", s.Links)
	}
	// A frame crosses the TLS link.
	f := append(append(append([]byte{}, macs[1][:]...), macs[0][:]...), 0x08, 0x00)
	f = append(f, "over TLS"...)
	if err := n1.tap.Inject(f); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-n2.tap.Written():
		if string(got) != string(f) {
			t.Errorf("got % x", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("frame not delivered over TLS")
	}
}

// A reload re-reads the `init` seeds and the bootstrap peers.
func TestTLSReloadReadsBootstrap(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	mac := wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	path := writeTLSConfig(t, caDir, filepath.Join(dir, "n1"), mac, freeTCPPort(t), "02:50:56:00:00:02@127.0.0.1:1")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "[timers]", "bootstrap = 02:50:56:00:00:09@127.0.0.9:41744\n[timers]", 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := tlsReload(path, mac, revocation.NewStore(nil), nil, slog.New(slog.DiscardHandler))()
	if err != nil {
		t.Fatal(err)
	}
	want := node.Peer{MAC: wire.MAC{0x02, 0x50, 0x56, 0, 0, 9}, Addr: netip.MustParseAddrPort("127.0.0.9:41744")}
	if len(r.Bootstrap) != 1 || r.Bootstrap[0] != want || len(r.Seeds) != 1 {
		t.Errorf("reloaded seeds %v, bootstrap %v; want one seed and %v", r.Seeds, r.Bootstrap, want)
	}
}
