// Package control is the daemon's control socket: a unix socket, readable
// and writable by root only, that answers one JSON request per line with
// one JSON response per line. `invpn status` and `invpn health` are its
// clients.
//
// Requests:
//
//	{"op":"status"}
//	{"op":"health","timeout_ms":2000}
//
// Responses carry "ok" and either "error" or the op's result ("status" or
// "health"); see Response. The server answers each connection in its own
// goroutine and reaches the daemon only through the Handler, which must
// not block the data path (the daemon answers from its own loop).
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// DefaultHealthTimeout is how long a health request collects answers when
// the request names no timeout.
const DefaultHealthTimeout = 2 * time.Second

// maxRequest bounds one request line.
const maxRequest = 4096

// Request is one line from a client.
type Request struct {
	Op        string `json:"op"` // "status" or "health"
	TimeoutMS int    `json:"timeout_ms,omitempty"`
}

// Response is one line to a client.
type Response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
	Health *Health `json:"health,omitempty"`
}

// Status is a snapshot of a daemon.
type Status struct {
	Version string            `json:"version"`
	MAC     wire.MAC          `json:"mac"`
	Started time.Time         `json:"started"`
	Now     time.Time         `json:"now"`
	Links   []LinkStatus      `json:"links"`
	Routes  []RouteStatus     `json:"routes"`
	Drops   map[string]uint64 `json:"drops"`
	// Counters holds the node's other counters by name.
	Counters map[string]uint64 `json:"counters"`
	// PreauthRefused counts the incoming connections the listeners closed
	// before they authenticated, by reason ("per_source", "hello_timeout",
	// "certificate", ...; docs/security.md#admission), and
	// PreauthInProgress is the connections in the handshake now.
	PreauthRefused    map[string]uint64 `json:"preauth_refused,omitempty"`
	PreauthInProgress int               `json:"preauth_in_progress"`
	// Certificate is this node's certificate; nil from a daemon that does
	// not say (docs/security.md#certificates).
	Certificate *Certificate `json:"certificate,omitempty"`
	// Revocation is the group's revocation list in force; nil for none
	// (docs/protocol.md#revocation).
	Revocation *Revocation `json:"revocation,omitempty"`
}

// Certificate describes a member's certificate.
type Certificate struct {
	Serial   string    `json:"serial"` // lowercase hex
	NotAfter time.Time `json:"not_after"`
}

// ExpiryWarning is how long before a certificate expires that status
// and the metrics warn.
const ExpiryWarning = 30 * 24 * time.Hour

// ExpiresSoon reports whether a certificate valid until notAfter expires
// within ExpiryWarning of now, or has expired.
func ExpiresSoon(notAfter, now time.Time) bool {
	return !notAfter.IsZero() && notAfter.Sub(now) < ExpiryWarning
}

// Revocation describes the revocation list in force.
type Revocation struct {
	Number  uint64    `json:"number"`
	Revoked int       `json:"revoked"` // certificates on it
	Issuer  string    `json:"issuer"`
	Issued  time.Time `json:"issued"` // its thisUpdate
}

// MeshLinks returns how many of the links are mesh links, not directory
// links (which carry only a table and close).
func (s *Status) MeshLinks() int {
	n := 0
	for _, l := range s.Links {
		if !l.Directory {
			n++
		}
	}
	return n
}

// LinkStatus describes one link.
type LinkStatus struct {
	Peer      wire.MAC `json:"peer"`
	Addr      string   `json:"addr"`
	Transport string   `json:"transport"` // "tls" for TLS over TCP, "quic" for QUIC
	Dialed    bool     `json:"dialed"`
	Extended  bool     `json:"extended"`
	// Directory is set on a link that carries only a table for the
	// address cache and then closes (docs/protocol.md#link-limit).
	Directory  bool      `json:"directory,omitempty"`
	Up         time.Time `json:"up"`
	FramesIn   uint64    `json:"frames_in"`
	FramesOut  uint64    `json:"frames_out"`
	BytesIn    uint64    `json:"bytes_in"`
	BytesOut   uint64    `json:"bytes_out"`
	QueueDrops uint64    `json:"queue_drops"`
	// CertExpires is when the peer's certificate expires (zero when the
	// transport has none).
	CertExpires time.Time `json:"cert_expires,omitempty"`
	// Liveness: "up" or "suspect" (half its detection time silent) on a
	// link with heartbeats, "" on one without (a seed-protocol link).
	Liveness string `json:"liveness,omitempty"`
	// RTTSeconds is the link's smoothed round-trip time from heartbeats
	// (0 until measured); DetectSeconds how long it may be silent before
	// it is failed (the link timeout on a link without heartbeats).
	RTTSeconds    float64 `json:"rtt_seconds"`
	DetectSeconds float64 `json:"detect_seconds"`
}

// RouteStatus describes one route.
type RouteStatus struct {
	Target    wire.MAC   `json:"target"`
	NextHop   wire.MAC   `json:"next_hop"`
	Hops      int        `json:"hops"` // -1: unknown
	Refreshed time.Time  `json:"refreshed"`
	Learned   time.Time  `json:"learned"`
	Backups   []wire.MAC `json:"backups"`
}

// Health is what a health request collected.
type Health struct {
	Requester wire.MAC            `json:"requester"`
	ID        uint64              `json:"id"`
	Start     time.Time           `json:"start"`
	Answers   []node.HealthResult `json:"answers"`
	// Links are the answering nodes' links with their round-trip times
	// (0x8B), from the extended nodes whose way back was all extended.
	Links []wire.HealthLinks `json:"links,omitempty"`
	// Routes are the requester's own routes, which name the nodes that
	// should have answered.
	Routes []node.RouteInfo `json:"routes"`
}

// Handler is the daemon side of the socket.
type Handler interface {
	Status(ctx context.Context) (*Status, error)
	Health(ctx context.Context, timeout time.Duration) (*Health, error)
}

// Server serves a Handler on a unix socket.
type Server struct {
	ln   net.Listener
	h    Handler
	wg   sync.WaitGroup
	path string
}

// Listen creates the socket at path (its directory with mode 0700 if
// missing, the socket with mode 0600), replacing a stale socket file.
func Listen(path string, h Handler) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another daemon is listening", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Server{ln: ln, h: h, path: path}, nil
}

// Serve answers connections until ctx ends or Close is called.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.wg.Wait()
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control socket %s: %w", s.path, err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

// Close stops the server and removes the socket file.
func (s *Server) Close() error {
	err := s.ln.Close()
	os.Remove(s.path)
	return err
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 512), maxRequest)
	enc := json.NewEncoder(c)
	for sc.Scan() {
		c.SetDeadline(time.Time{})
		var req Request
		resp := &Response{}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = fmt.Sprintf("bad request: %v", err)
		} else {
			resp = s.answer(ctx, req)
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

func (s *Server) answer(ctx context.Context, req Request) *Response {
	var resp Response
	var err error
	switch req.Op {
	case "status":
		resp.Status, err = s.h.Status(ctx)
	case "health":
		timeout := time.Duration(req.TimeoutMS) * time.Millisecond
		if timeout <= 0 {
			timeout = DefaultHealthTimeout
		}
		timeout = min(timeout, time.Minute)
		resp.Health, err = s.h.Health(ctx, timeout)
	default:
		err = fmt.Errorf("unknown op %q (want status or health)", req.Op)
	}
	if err != nil {
		resp.Error = err.Error()
	} else {
		resp.OK = true
	}
	return &resp
}

// Call sends one request to the socket at path and returns the answer.
func Call(ctx context.Context, path string, req Request) (*Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to the daemon's control socket %s: %w (is `invpn run` running, and are you root?)", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("control socket %s: send: %w", path, err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, 64<<20)).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("control socket %s: read answer: %w", path, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("control socket %s: bad answer: %w", path, err)
	}
	if !resp.OK {
		return &resp, fmt.Errorf("daemon: %s", resp.Error)
	}
	return &resp, nil
}
