package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

type fakeDaemon struct{}

var (
	macA = wire.MAC{2, 0, 0, 0, 0, 0xa}
	macB = wire.MAC{2, 0, 0, 0, 0, 0xb}
)

func (fakeDaemon) Status(context.Context) (*control.Status, error) {
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	return &control.Status{Version: "test", MAC: macA, Started: now.Add(-time.Minute), Now: now,
		Links: []control.LinkStatus{{Peer: macB, Addr: "10.0.0.2:41744", Transport: "tls", Dialed: true, Extended: true, Up: now.Add(-30 * time.Second), FramesIn: 5,
			Liveness: "suspect", RTTSeconds: 0.0425, DetectSeconds: 0.75, CertExpires: now.Add(12*24*time.Hour + time.Hour)}},
		Certificate:    &control.Certificate{Serial: "1f", NotAfter: now.Add(400 * 24 * time.Hour)},
		Revocation:     &control.Revocation{Number: 3, Revoked: 2, Issuer: "CN=invpn group CA", Issued: now.Add(-time.Hour)},
		Routes:         []control.RouteStatus{{Target: macB, NextHop: macB, Hops: 1, Refreshed: now}},
		Drops:          map[string]uint64{"no route": 3},
		Counters:       map[string]uint64{"failovers": 2, "route_changes": 5, "unsigned_from_original": 4},
		PreauthRefused: map[string]uint64{"per_source": 7, "hello_timeout": 2}, PreauthInProgress: 1}, nil
}

func (fakeDaemon) Health(context.Context, time.Duration) (*control.Health, error) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &control.Health{Requester: macA, ID: 4, Start: start,
		Answers: []node.HealthResult{{At: start.Add(3 * time.Millisecond), Response: wire.HealthResponse{
			Dest: macA, Origin: macB, ID: 4, Links: []wire.MAC{macA}, Routes: []wire.Route{{Target: macA, NextHop: macA}},
			Traceroute: []wire.MAC{macA, macB}, Reverse: []wire.MAC{macB}}}},
		Routes: []node.RouteInfo{{Target: macB}}}, nil
}

func startFake(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	s, err := control.Listen(path, fakeDaemon{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	return path
}

func TestStatusCommand(t *testing.T) {
	path := startFake(t)
	var out, errOut bytes.Buffer
	if code := run([]string{"status", "--socket", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"node 02:00:00:00:00:0a  up 1m0s", "02:00:00:00:00:0b  10.0.0.2:41744  tls        out  invpn/1  30s  suspect   42.5ms  expires in 12 days!", "no route 3",
		"certificate: serial 1f, expires 2027-02-05 (400 days left)",
		"revocation list: number 3, 2 revoked, issued 2025-12-31 23:01:00 by CN=invpn group CA",
		"WARNING: the certificate of neighbour 02:00:00:00:00:0b expires on 2026-01-13", "counters:  failovers 2  route_changes 5  unsigned_from_original 4",
		"WARNING: 4 announcements of other members relayed by original nodes were believed unsigned",
		"pre-auth:  in handshake 1  refused  hello_timeout 2  per_source 7"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"status", "--socket", path, "--json"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"peer": "02:00:00:00:00:0b"`) ||
		!strings.Contains(out.String(), `"liveness": "suspect"`) || !strings.Contains(out.String(), `"rtt_seconds": 0.0425`) {
		t.Fatalf("status --json: exit %d\n%s", code, out.String())
	}
}

func TestHealthCommand(t *testing.T) {
	path := startFake(t)
	dot := filepath.Join(t.TempDir(), "mesh.dot")
	var out, errOut bytes.Buffer
	if code := run([]string{"health", "--socket", path, "--dot", dot}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "02:00:00:00:00:0b  1         1          3ms") || !strings.Contains(out.String(), "1 nodes answered") {
		t.Errorf("health table:\n%s", out.String())
	}
	b, err := os.ReadFile(dot)
	if err != nil || !strings.Contains(string(b), `"02:00:00:00:00:0a" -- "02:00:00:00:00:0b"`) {
		t.Errorf("DOT file %s, %v", b, err)
	}
}

func TestStatusWithoutDaemon(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"status", "--socket", filepath.Join(t.TempDir(), "x.sock")}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "control socket") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
