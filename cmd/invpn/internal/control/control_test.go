package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

type fakeHandler struct{ timeout time.Duration }

func (f *fakeHandler) Status(context.Context) (*Status, error) {
	return &Status{Version: "test", MAC: wire.MAC{2, 0, 0, 0, 0, 1},
		Links: []LinkStatus{{Peer: wire.MAC{2, 0, 0, 0, 0, 2}, Addr: "127.0.0.2:41744"}}}, nil
}

func (f *fakeHandler) Health(_ context.Context, timeout time.Duration) (*Health, error) {
	f.timeout = timeout
	if timeout == time.Second {
		return nil, errors.New("no links")
	}
	return &Health{ID: 9, Answers: []node.HealthResult{{Response: wire.HealthResponse{Origin: wire.MAC{2, 0, 0, 0, 0, 2}, ID: 9}}}}, nil
}

func TestServeAndCall(t *testing.T) {
	defer goleak.VerifyNone(t)
	path := filepath.Join(t.TempDir(), "run", "invpn.sock")
	h := &fakeHandler{}
	s, err := Listen(path, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		s.Close()
	}()

	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode(), err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	resp, err := Call(cctx, path, Request{Op: "status"})
	if err != nil || resp.Status.MAC != (wire.MAC{2, 0, 0, 0, 0, 1}) || len(resp.Status.Links) != 1 {
		t.Fatalf("status: %+v, %v", resp, err)
	}
	resp, err = Call(cctx, path, Request{Op: "health", TimeoutMS: 1500})
	if err != nil || resp.Health.ID != 9 || resp.Health.Answers[0].Response.Origin[5] != 2 || h.timeout != 1500*time.Millisecond {
		t.Fatalf("health: %+v, %v (timeout %v)", resp, err, h.timeout)
	}
	if _, err := Call(cctx, path, Request{Op: "health", TimeoutMS: 1000}); err == nil || !strings.Contains(err.Error(), "no links") {
		t.Fatalf("handler error not passed on: %v", err)
	}
	if _, err := Call(cctx, path, Request{Op: "frob"}); err == nil || !strings.Contains(err.Error(), `unknown op "frob"`) {
		t.Fatalf("unknown op: %v", err)
	}
	// A second daemon on the same socket is refused.
	if _, err := Listen(path, h); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second Listen: %v", err)
	}
}

func TestCallWithoutDaemon(t *testing.T) {
	_, err := Call(context.Background(), filepath.Join(t.TempDir(), "none.sock"), Request{Op: "status"})
	if err == nil || !strings.Contains(err.Error(), "is `invpn run` running") {
		t.Fatalf("error %v does not say what to check", err)
	}
}
