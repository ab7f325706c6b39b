package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/tapdev/taptest"
	"github.com/invpn/invpn/wire"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) uint16 {
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

// Two daemons linked over real TLS on the loopback, built as `invpn run`
// builds them; SIGHUP re-reads the files and applies new seeds.
func TestTLSLoopback(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	macs := []wire.MAC{{0x02, 0x50, 0x56, 0, 0, 1}, {0x02, 0x50, 0x56, 0, 0, 2}}
	p1, p2 := freePort(t), freePort(t)
	path1 := writeTLSConfig(t, caDir, filepath.Join(dir, "n1"), macs[0], p1, "")
	path2 := writeTLSConfig(t, caDir, filepath.Join(dir, "n2"), macs[1], p2, "")

	type running struct {
		d    *Daemon
		tap  *taptest.Device
		sig  chan os.Signal
		errc chan error
		logs *syncBuffer
	}
	start := func(path string) *running {
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		log := slog.New(slog.NewTextHandler(logs, nil))
		mac, tc, err := LoadIdentity(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := TLSTransport(cfg, tc, log)
		if err != nil {
			t.Fatal(err)
		}
		r := &running{tap: taptest.New(taptest.Config{}), sig: make(chan os.Signal, 1), errc: make(chan error, 1), logs: logs}
		r.d, err = New(Options{Config: cfg, MAC: mac, Transport: tr, TAP: r.tap, Logger: log, Signals: r.sig,
			Reload: TLSReload(path, mac, log)})
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
				t.Logf("log:\n%s", logs.String())
			}
		})
		return r
	}
	n1, n2 := start(path1), start(path2)
	time.Sleep(50 * time.Millisecond)
	if len(n2.d.Status().Links) != 0 {
		t.Fatal("linked without seeds")
	}
	// Give node 2 a seed and reload it.
	text, _ := os.ReadFile(path2)
	seed := fmt.Sprintf("%s@127.0.0.1:%d", macs[0], p1)
	text = []byte(strings.Replace(string(text), "init = \n", "init = "+seed+"\n", 1))
	if err := os.WriteFile(path2, text, 0o600); err != nil {
		t.Fatal(err)
	}
	n2.sig <- syscall.SIGHUP
	waitFor(t, 5*time.Second, "TLS link after reload", func() bool {
		return hasRoute(n1.d.Status(), macs[1]) && hasRoute(n2.d.Status(), macs[0])
	})
	s := n1.d.Status()
	if len(s.Links) != 1 || !s.Links[0].Extended || s.Links[0].Addr.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("node 1 links: %+v", s.Links)
	}
	// A frame crosses the TLS link.
	f := frame(macs[1], macs[0], 0x0800, "over TLS")
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
