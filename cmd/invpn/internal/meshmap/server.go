package meshmap

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
)

//go:embed static
var static embed.FS

// Defaults of Options.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
	// keepAlive is how often an idle event stream gets a comment line, so
	// that proxies and the browser keep it open.
	keepAlive = 15 * time.Second
)

// Options configure a Server.
type Options struct {
	// Interval is the time between two health requests while a page is
	// open (DefaultInterval if 0), Timeout how long one collects answers
	// (DefaultTimeout if 0; at most Interval), Forget how long a node that
	// stopped answering stays on the map (DefaultForget if 0).
	Interval, Timeout, Forget time.Duration
	// Token, when not empty, must come with every request: as the query
	// parameter token (the page passes on its own) or as the header
	// "Authorization: Bearer TOKEN". The caller decides when one is needed
	// (the daemon: on any address but loopback).
	Token string
	Log   *slog.Logger // nil: slog.Default()
}

// Server serves the map under /map/ and polls the daemon while a page is
// open. Make one with New and run its poller with Run.
type Server struct {
	daemon  control.Handler
	opts    Options
	tracker *Tracker // owned by Run

	mu   sync.Mutex
	subs map[chan []byte]struct{} // one per open event stream
	last []byte                   // the latest event, sent first to a new stream
	wake chan struct{}            // a stream opened: Run may start polling
	done chan struct{}            // closed when Run returns: streams end
}

// New returns a Server that reads the daemon's status and health through
// daemon.
func New(daemon control.Handler, opts Options) *Server {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	opts.Timeout = min(opts.Timeout, opts.Interval)
	if opts.Forget <= 0 {
		opts.Forget = DefaultForget
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Server{daemon: daemon, opts: opts, tracker: NewTracker(opts.Forget),
		subs: map[chan []byte]struct{}{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Register adds the map's handlers to mux: the page at /map/, its files
// under /map/static/, the event stream at /map/events, and a redirect
// from / to the page.
func (s *Server) Register(mux *http.ServeMux) {
	files, _ := fs.Sub(static, "static") // cannot fail: the directory is embedded
	mux.Handle("GET /map/static/", s.auth(http.StripPrefix("/map/static/", http.FileServerFS(files))))
	mux.Handle("GET /map/{$}", s.auth(http.HandlerFunc(s.page)))
	mux.Handle("GET /map/events", s.auth(http.HandlerFunc(s.events)))
	mux.Handle("GET /{$}", http.RedirectHandler("/map/", http.StatusFound))
}

// auth refuses a request without the token, when there is one.
func (s *Server) auth(h http.Handler) http.Handler {
	if s.opts.Token == "" {
		return h
	}
	want := []byte(s.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.URL.Query().Get("token")
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = bearer
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			http.Error(w, "invpn map: this listener needs the token of [metrics] map_token (add ?token=TOKEN to the address)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// page serves index.html with headers that keep it to its own files.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	body, err := static.ReadFile("static/index.html")
	if err != nil {
		http.Error(w, "invpn map: page missing from the binary", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
	h.Set("Cache-Control", "no-store")
	w.Write(body)
}

// events streams the graph as server-sent events: the latest one at once
// (if there is one), then each new one. An event whose type is "problem"
// says why there is no new graph.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "invpn map: streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch := make(chan []byte, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	if s.last != nil {
		ch <- s.last
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	idle := time.NewTicker(keepAlive)
	defer idle.Stop()
	for {
		select {
		case ev := <-ch:
			if _, err := w.Write(ev); err != nil {
				return
			}
		case <-idle.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
		flusher.Flush()
	}
}

// watchers returns how many event streams are open.
func (s *Server) watchers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// publish sends one event to every open stream. A stream that has not
// taken the previous event gets this one instead: a page wants only the
// newest graph.
func (s *Server) publish(ev []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = ev
	for ch := range s.subs {
		select {
		case <-ch:
		default:
		}
		ch <- ev
	}
}

// Run polls the daemon every Interval while a page is open, until ctx
// ends, and then ends the open event streams. It sends nothing into the
// mesh while no page is open. Run it once.
func (s *Server) Run(ctx context.Context) {
	defer close(s.done)
	for {
		if s.watchers() == 0 {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		next := time.Now().Add(s.opts.Interval)
		s.publish(s.poll(ctx))
		select {
		case <-time.After(time.Until(next)):
		case <-ctx.Done():
			return
		}
	}
}

// poll runs one health request and returns its event.
func (s *Server) poll(ctx context.Context) []byte {
	h, err := s.daemon.Health(ctx, s.opts.Timeout)
	if err != nil {
		return s.problem(fmt.Errorf("health request: %w", err))
	}
	// The status comes after the answers, so that this node's own links
	// are the ones it has when the graph is drawn.
	st, err := s.daemon.Status(ctx)
	if err != nil {
		return s.problem(fmt.Errorf("status: %w", err))
	}
	body, err := json.Marshal(s.tracker.Update(st, h))
	if err != nil {
		return s.problem(fmt.Errorf("encoding the graph: %w", err))
	}
	return event("graph", body)
}

// problem returns the event that reports err to the pages.
func (s *Server) problem(err error) []byte {
	s.opts.Log.Warn("live map", "err", err)
	body, _ := json.Marshal(map[string]string{"error": err.Error()}) // a string map always encodes
	return event("problem", body)
}

// event frames one server-sent event; body is one line of JSON.
func event(typ string, body []byte) []byte {
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", typ, body)
}
