// Package sdnotify tells the service manager (systemd, with Type=notify)
// how the daemon is doing, over the datagram socket named by
// $NOTIFY_SOCKET: that it is ready, reloading or stopping. Outside such a
// service there is no socket and every call does nothing.
//
// The protocol is sd_notify(3): one datagram of newline-separated
// KEY=VALUE assignments to a Unix socket; a name that starts with '@' is
// in the abstract namespace.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The states the daemon reports.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notifier sends states to the service manager. The zero value, and a
// nil *Notifier, send nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns the notifier of $NOTIFY_SOCKET, or nil when it is unset
// (not started as a Type=notify service). It fails on a socket name the
// protocol does not allow.
func FromEnv() (*Notifier, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil, nil
	}
	if name[0] != '/' && name[0] != '@' {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET %q is neither a path nor an abstract name (@...)", name)
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Notify sends one state (lines of KEY=VALUE).
func (n *Notifier) Notify(state string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q: %w", firstLine(state), err)
	}
	return nil
}

// Reloading returns the state that starts a reload: systemd needs the
// monotonic time with it to tell this reload from an earlier one. The
// daemon reports Ready when the reload is done.
func Reloading() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1"
	}
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/int64(time.Microsecond))
}

// Status returns a STATUS= line with s (newlines turned into spaces).
func Status(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", " ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
