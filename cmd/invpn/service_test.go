package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/daemon"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/tapdev/taptest"
	"github.com/invpn/invpn/wire"
)

// TestServiceUnitVerifies: systemd-analyze verify accepts invpn.service
// (with ExecStart pointed at an executable here) and rejects a broken
// copy of it, and the unit asks for what the issue and the daemon's
// defaults need: Type=notify, only CAP_NET_ADMIN, a read-only system
// with the state and runtime directories the default cache and control
// socket live in.
func TestServiceUnitVerifies(t *testing.T) {
	unit, err := os.ReadFile("invpn.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	def := config.Default()
	for _, want := range []string{
		"Type=notify\n", "ExecStart=/usr/bin/invpn run -c /etc/invpn/invpn.conf\n", "ExecReload=/bin/kill -HUP $MAINPID\n",
		"Restart=on-failure\n", "CapabilityBoundingSet=CAP_NET_ADMIN\n", "AmbientCapabilities=CAP_NET_ADMIN\n",
		"ProtectSystem=strict\n", "DeviceAllow=/dev/net/tun rw\n", "NoNewPrivileges=yes\n",
		"StateDirectory=invpn\n", "RuntimeDirectory=invpn\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("invpn.service has no %q", strings.TrimSpace(want))
		}
	}
	if filepath.Dir(def.Network.Cache) != "/var/lib/invpn" || filepath.Dir(def.Control.Socket) != "/run/invpn" {
		t.Errorf("the default cache %s and control socket %s are not in the unit's StateDirectory and RuntimeDirectory",
			def.Network.Cache, def.Control.Socket)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("INVPN_REQUIRE_E2E") == "1" {
			t.Fatal("systemd-analyze is not installed (apt-get install systemd): the unit cannot be verified (INVPN_REQUIRE_E2E=1)")
		}
		t.Skip("systemd-analyze is not installed (apt-get install systemd); set INVPN_REQUIRE_E2E=1 to make this an error")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	verify := func(name, text string) (string, error) {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "/usr/bin/invpn", self)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		return string(out), err
	}
	if out, err := verify("invpn.service", text); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify invpn.service: %v\n%s", err, out)
	}
	broken := strings.Replace(text, "Type=notify\n", "Type=notify\nRestart=sometimes\n", 1)
	if out, err := verify("broken.service", broken); err == nil && strings.TrimSpace(out) == "" {
		t.Error("systemd-analyze verify said nothing of a unit with Restart=sometimes: it checks nothing")
	}
}

// TestServiceNotifications: a daemon started as runRun starts it, under a
// fake notify socket, says READY=1 once it listens, RELOADING=1 (with
// the monotonic time) and READY=1 around a SIGHUP, and STOPPING=1 on
// SIGTERM, in that order.
func TestServiceNotifications(t *testing.T) {
	dir := t.TempDir()
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	t.Setenv("NOTIFY_SOCKET", filepath.Join(dir, "notify"))
	next := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		sock.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}

	caDir := filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	mac := wire.MAC{0x02, 0x50, 0x56, 0, 0, 9}
	port := freeTCPPort(t)
	path := writeTLSConfig(t, caDir, filepath.Join(dir, "n"), mac, port, "")
	logs := &syncBuffer{}
	opts := optionsFromFile(t, path, logs)
	sig := make(chan os.Signal, 1)
	opts.TAP, opts.Signals = taptest.New(taptest.Config{}), sig
	if opts.Notify, err = serviceNotify(opts.Logger); err != nil || opts.Notify == nil {
		t.Fatalf("serviceNotify under NOTIFY_SOCKET: %v (notify set: %v)", err, opts.Notify != nil)
	}
	d, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(context.Background()) }()
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()

	if got := next(); !strings.HasPrefix(got, "READY=1\nSTATUS=") {
		t.Fatalf("first notification %q, want READY=1 and a status", got)
	}
	// Ready means listening: a TCP connection to its port is accepted.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))), 2*time.Second); err != nil {
		t.Errorf("READY=1 said before the daemon listens: %v", err)
	} else {
		c.Close()
	}
	sig <- syscall.SIGHUP
	if got := next(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("on SIGHUP %q, want RELOADING=1 with MONOTONIC_USEC", got)
	}
	if got := next(); got != "READY=1" {
		t.Errorf("after the reload %q, want READY=1", got)
	}
	sig <- syscall.SIGTERM
	if got := next(); got != "STOPPING=1" {
		t.Errorf("on SIGTERM %q, want STOPPING=1", got)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop")
	}
}
