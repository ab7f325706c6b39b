//go:build !linux

package tlstransport

import (
	"net"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist; TCP
// keep-alive alone then detects dead peers.
func setUserTimeout(*net.TCPConn, time.Duration) error { return nil }
