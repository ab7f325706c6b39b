package tlstransport

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// A dead peer must be noticed within seconds: keep-alive 10 s idle, 5 s
// interval, 3 probes, TCP_USER_TIMEOUT 15 s, and no Nagle delay, on both
// the dialed and the accepted end.
func TestSocketOptions(t *testing.T) {
	ca := newCA(t, "group")
	ln := listen(t, ca.member(t, macB.String(), kindECDSA))
	a, b := connect(t, ca.member(t, macA.String(), kindECDSA), ln, macB)
	defer a.Close()
	defer b.Close()
	want := []struct {
		name  string
		level int
		opt   int
		value int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 10},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 5},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
		{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 15000},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	}
	for _, end := range []*link{a.(*link), b.(*link)} {
		rc, err := end.raw.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			var got int
			var gerr error
			if err := rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), w.level, w.opt) }); err != nil {
				t.Fatal(err)
			}
			if gerr != nil || got != w.value {
				t.Errorf("dialed=%v: %s = %d, %v; want %d", end.dialed, w.name, got, gerr, w.value)
			}
		}
	}
}
