package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a fake notify socket and points NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("nothing arrived on the notify socket: %v", err)
	}
	return string(buf[:n])
}

// TestNotifyReachesTheSocket: each state arrives as one datagram, on a
// path socket and on an abstract one.
func TestNotifyReachesTheSocket(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@invpn-sdnotify-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)} {
		c := listen(t, name)
		n, err := FromEnv()
		if err != nil || n == nil {
			t.Fatalf("FromEnv with %q: %v, %v", name, n, err)
		}
		for _, state := range []string{Ready, Status("3 links\nup"), Stopping} {
			if err := n.Notify(state); err != nil {
				t.Fatal(err)
			}
			want := state
			if got := read(t, c); got != want {
				t.Errorf("%s: got %q, want %q", name, got, want)
			}
		}
		if err := n.Notify(Reloading()); err != nil {
			t.Fatal(err)
		}
		got := read(t, c)
		usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
		if v, err := strconv.ParseInt(usec, 10, 64); !ok || err != nil || v <= 0 {
			t.Errorf("reloading state %q, want RELOADING=1 and a positive MONOTONIC_USEC", got)
		}
	}
}

// TestNoSocketNoNotifier: outside a service nothing is sent and nothing
// fails; a malformed NOTIFY_SOCKET is an error that names it.
func TestNoSocketNoNotifier(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := FromEnv()
	if n != nil || err != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET: %v, %v; want nil, nil", n, err)
	}
	if err := n.Notify(Ready); err != nil {
		t.Fatalf("a nil notifier failed: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "relative/path") {
		t.Fatalf("FromEnv with a relative name: %v, want an error naming it", err)
	}
}
