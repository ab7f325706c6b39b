package meshmap

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
)

// fakeDaemon answers with the square mesh, or fails while fail is set.
type fakeDaemon struct {
	healths atomic.Int64
	fail    atomic.Bool
}

func (f *fakeDaemon) Status(context.Context) (*control.Status, error) {
	st, _ := square(0, t0)
	return st, nil
}

func (f *fakeDaemon) Health(context.Context, time.Duration) (*control.Health, error) {
	n := f.healths.Add(1)
	if f.fail.Load() {
		return nil, errors.New("daemon: stopped")
	}
	_, h := square(uint64(n), t0.Add(time.Duration(n)*time.Second))
	return h, nil
}

func newTestServer(t *testing.T, token string) (*httptest.Server, *fakeDaemon) {
	f := &fakeDaemon{}
	s := New(f, Options{Interval: 10 * time.Millisecond, Token: token})
	mux := http.NewServeMux()
	s.Register(mux)
	ts := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { ts.Close(); cancel(); <-done })
	return ts, f
}

// nextEvent reads one server-sent event: its type and data.
func nextEvent(t *testing.T, r *bufio.Reader) (typ, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the event stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && typ != "":
			return typ, data
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestServerStreamsGraphs(t *testing.T) {
	ts, f := newTestServer(t, "")
	resp, err := http.Get(ts.URL + "/map/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	r := bufio.NewReader(resp.Body)
	var last time.Time
	for i := range 3 {
		typ, data := nextEvent(t, r)
		var g Graph
		if err := json.Unmarshal([]byte(data), &g); err != nil || typ != "graph" {
			t.Fatalf("event %d: %s %q (%v), want a graph", i, typ, data, err)
		}
		if len(g.Nodes) != 4 || len(g.Links) != 4 || !g.At.After(last) {
			t.Fatalf("event %d: %d nodes, %d links at %v; want the square, newer than %v", i, len(g.Nodes), len(g.Links), g.At, last)
		}
		last = g.At
	}

	f.fail.Store(true)
	for {
		typ, data := nextEvent(t, r)
		if typ == "problem" {
			if !strings.Contains(data, "health request: daemon: stopped") {
				t.Errorf("problem %s, want it to say why", data)
			}
			break
		}
	}
}

func TestServerServesThePage(t *testing.T) {
	ts, _ := newTestServer(t, "")
	code, body, h := get(t, ts.URL+"/map/")
	if code != 200 || !strings.Contains(body, `<script src="static/vendor/cytoscape.min.js"`) || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("/map/: %d, CSP %q:\n%s", code, h.Get("Content-Security-Policy"), body)
	}
	for _, path := range []string{"/map/static/map.js", "/map/static/map.css", "/map/static/vendor/cytoscape.min.js", "/map/static/vendor/cytoscape.LICENSE"} {
		if code, body, _ := get(t, ts.URL+path); code != 200 || len(body) < 100 {
			t.Errorf("%s: %d, %d bytes", path, code, len(body))
		}
	}
	if code, _, _ := get(t, ts.URL+"/map/static/nothing.js"); code != 404 {
		t.Errorf("a missing file: %d, want 404", code)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/map/" {
		t.Errorf("/: %d to %q, want a redirect to /map/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestServerNeedsItsToken(t *testing.T) {
	const token = "correct-horse-battery-staple"
	ts, _ := newTestServer(t, token)
	for _, path := range []string{"/map/", "/map/static/map.js", "/map/events"} {
		if code, body, _ := get(t, ts.URL+path); code != http.StatusUnauthorized || !strings.Contains(body, "map_token") {
			t.Errorf("%s without a token: %d %q, want 401 naming map_token", path, code, body)
		}
		if code, _, _ := get(t, ts.URL+path+"?token=wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
	}
	if code, _, _ := get(t, ts.URL+"/map/?token="+token); code != 200 {
		t.Errorf("/map/ with the token: %d", code)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/map/static/map.js", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a bearer token: %d", resp.StatusCode)
	}
}
