package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/meshmap"
	"github.com/invpn/invpn/cmd/invpn/internal/metrics"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// ErrStopped is returned by control requests to a daemon whose loop has
// stopped.
var ErrStopped = errors.New("daemon: stopped")

// healthWait is one health request this daemon started for a control
// client: the answers collected so far. Owned by the loop.
type healthWait struct {
	start   time.Time
	answers []node.HealthResult
	links   []wire.HealthLinks // the 0x8B that came with answers
}

// Handler returns the daemon's side of the control socket. Every request
// is carried out by the loop, between two inputs: a status is a snapshot
// taken there, and a health request is started there and collects the
// answers the loop sees until its timeout. Neither blocks the data path
// longer than one snapshot.
func (d *Daemon) Handler() control.Handler { return controlHandler{d} }

// controlHandler implements control.Handler for a Daemon. Its methods run
// on the control socket's goroutines (and the metrics endpoint's).
type controlHandler struct{ d *Daemon }

var _ control.Handler = controlHandler{}

// call runs f on the loop and waits until it has run. It fails when ctx
// ends or the daemon stops before the loop takes f.
func (d *Daemon) call(ctx context.Context, f func()) error {
	ran := make(chan struct{})
	select {
	case d.ctrl <- func() { f(); close(ran) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.done:
		return ErrStopped
	case <-d.stopped:
		return ErrStopped
	}
	<-ran // the loop runs f as soon as it takes it
	return nil
}

// Status returns the daemon's status for `invpn status` and the metrics.
func (h controlHandler) Status(ctx context.Context) (*control.Status, error) {
	var s Snapshot
	if err := h.d.call(ctx, func() { s = h.d.snapshot() }); err != nil {
		return nil, err
	}
	return h.d.controlStatus(&s), nil
}

// Health floods a health request (0x02) from the loop, waits timeout for
// the answers (0x03) and returns them with the daemon's own routes, which
// name the nodes that should have answered. Several requests may run at
// once: each has its own id.
func (h controlHandler) Health(ctx context.Context, timeout time.Duration) (*control.Health, error) {
	d := h.d
	var id uint64
	err := d.call(ctx, func() {
		now := time.Now()
		d.node.Step(now, node.StartHealth{})
		started := d.node.Ready().HealthStarted
		id = started[len(started)-1]
		d.health[id] = &healthWait{start: now}
		d.process()
	})
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		// Forget the request; the daemon may have stopped meanwhile.
		d.call(context.Background(), func() { delete(d.health, id) })
		return nil, ctx.Err()
	case <-d.done:
		return nil, ErrStopped
	}
	var out *control.Health
	err = d.call(context.Background(), func() {
		w := d.health[id]
		if w == nil {
			return // cannot happen: only this waiter forgets id
		}
		delete(d.health, id)
		out = &control.Health{Requester: d.mac, ID: id, Start: w.start, Answers: w.answers, Links: w.links, Routes: d.node.Routes()}
	})
	if err == nil && out == nil {
		err = fmt.Errorf("health request %d: lost", id)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// healthAnswer files one answer of a Ready under its request and observes
// its round-trip time. It runs on the loop; answers to requests that timed
// out are dropped.
func (d *Daemon) healthAnswer(r node.HealthResult) {
	w := d.health[r.Response.ID]
	if w == nil {
		d.log.Debug("late health answer", "origin", r.Response.Origin, "id", r.Response.ID)
		return
	}
	w.answers = append(w.answers, r)
	rtt := r.At.Sub(w.start)
	if d.metrics != nil {
		d.metrics.HealthRTT.Observe(rtt.Seconds())
	}
	d.log.Debug("health answer", "origin", r.Response.Origin, "id", r.Response.ID,
		"hops_out", len(r.Response.Traceroute)-1, "hops_back", len(r.Response.Reverse), "rtt", rtt)
}

// controlStatus turns a snapshot into the control socket's status. It
// does not touch loop state.
func (d *Daemon) controlStatus(s *Snapshot) *control.Status {
	st := &control.Status{
		Version: d.opts.Version, MAC: s.MAC, Started: s.Started, Now: s.Now,
		Links:  make([]control.LinkStatus, 0, len(s.Links)),
		Routes: make([]control.RouteStatus, 0, len(s.Routes)),
		Drops:  map[string]uint64{},
		Counters: map[string]uint64{
			metrics.CounterRouteChanges: s.RouteChanges,
			metrics.CounterFailovers:    s.Stats.Failovers,
			metrics.CounterWithdrawals:  s.Stats.Withdrawals,
			metrics.CounterViolations:   s.Stats.Violations,
			"duplicates":                s.Stats.Duplicates,
			"frames_to_tap":             s.Stats.FramesToTAP,
			"frames_from_tap":           s.Stats.FramesFromTAP,
			"forwarded":                 s.Stats.Forwarded,
			"forged_signatures":         s.Stats.Forgeries,
			"unsigned":                  s.Stats.Unsigned,
			"unsigned_from_original":    s.Stats.UnsignedFromOriginal,
		},
	}
	peers := make(map[node.LinkID]wire.MAC, len(s.Links))
	for _, l := range s.Links {
		peers[l.ID] = l.Peer
		st.Links = append(st.Links, control.LinkStatus{
			Peer: l.Peer, Addr: l.Addr.String(), Transport: l.Transport, Dialed: l.Dialed, Extended: l.Extended, Directory: l.Directory, Up: s.Now.Add(-l.Age),
			FramesIn: l.FramesIn, FramesOut: l.FramesOut, BytesIn: l.BytesIn, BytesOut: l.BytesOut,
			QueueDrops: l.QueueDrops, RTTSeconds: l.RTT.Seconds(), DetectSeconds: l.DetectAfter.Seconds(),
			Liveness: liveness(l.LinkInfo), CertExpires: l.CertExpires,
		})
	}
	if s.Certificate != nil {
		st.Certificate = &control.Certificate{Serial: s.Certificate.SerialNumber.Text(16), NotAfter: s.Certificate.NotAfter}
	}
	if s.Revocation.Number != 0 {
		r := s.Revocation
		st.Revocation = &control.Revocation{Number: r.Number, Revoked: r.Revoked, Issuer: r.Issuer, Issued: r.Issued}
	}
	st.Counters["revocations_refused"] = s.RevocationsRefused
	for _, r := range s.Routes {
		rs := control.RouteStatus{Target: r.Target, NextHop: r.NextHop, Hops: r.Hops,
			Refreshed: s.Now.Add(-r.SinceRefresh), Learned: s.Now.Add(-r.SinceLearned), Backups: []wire.MAC{}}
		for _, b := range r.Backups {
			if mac, ok := peers[b]; ok {
				rs.Backups = append(rs.Backups, mac)
			}
		}
		st.Routes = append(st.Routes, rs)
	}
	for _, reason := range node.DropReasons() {
		st.Drops[reason.String()] = s.Stats.Drops[reason]
	}
	st.PreauthInProgress, st.PreauthRefused = s.Preauth.InProgress, map[string]uint64{}
	for _, r := range tlstransport.Refusals() {
		st.PreauthRefused[r.String()] = s.Preauth.Refused[r]
	}
	return st
}

// openServers opens the control socket and the metrics listener that
// Options ask for. It runs in Run before the loop starts; on error nothing
// stays open.
func (d *Daemon) openServers() error {
	h := d.Handler()
	if d.opts.MetricsListen != "" {
		ln, err := metrics.Listen(d.opts.MetricsListen)
		if err != nil {
			return err
		}
		d.metricsLn = ln
		d.metrics = metrics.New(h.Status)
		if d.opts.Map {
			d.meshmap = meshmap.New(h, meshmap.Options{Token: d.opts.MapToken, Log: d.log})
		}
	}
	if d.opts.ControlSocket != "" {
		s, err := control.Listen(d.opts.ControlSocket, h)
		if err != nil {
			if d.metricsLn != nil {
				d.metricsLn.Close()
			}
			return err
		}
		d.control = s
	}
	return nil
}

// serve starts the goroutines of the servers openServers opened. They stop
// when d.ctx is cancelled, in shutdown, which waits for them.
func (d *Daemon) serve() {
	if d.control != nil {
		d.log.Info("control socket", "path", d.opts.ControlSocket)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.control.Serve(d.ctx); err != nil {
				d.log.Error("control socket stopped", "err", err)
			}
			d.control.Close() // removes the socket file
		}()
	}
	if d.metricsLn != nil {
		d.log.Info("metrics endpoint", "addr", d.metricsLn.Addr().String())
		var register []func(*http.ServeMux)
		if d.meshmap != nil {
			d.log.Info("live map", "url", "http://"+d.metricsLn.Addr().String()+"/map/", "token", d.opts.MapToken != "")
			register = append(register, d.meshmap.Register)
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.meshmap.Run(d.ctx)
			}()
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.metrics.Serve(d.ctx, d.metricsLn, register...); err != nil {
				d.log.Error("metrics endpoint stopped", "err", err)
			}
		}()
	}
}

// MetricsAddr returns the address the metrics endpoint listens on, or nil
// when it is off. It waits until Run has opened it.
func (d *Daemon) MetricsAddr(ctx context.Context) (net.Addr, error) {
	var addr net.Addr
	err := d.call(ctx, func() {
		if d.metricsLn != nil {
			addr = d.metricsLn.Addr()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("metrics address: %w", err)
	}
	return addr, nil
}

// closeServers closes what openServers opened, when Run fails before the
// servers' goroutines start.
func (d *Daemon) closeServers() {
	if d.control != nil {
		d.control.Close()
	}
	if d.metricsLn != nil {
		d.metricsLn.Close()
	}
}

// liveness names a link's liveness state for the control socket.
func liveness(l node.LinkInfo) string {
	switch {
	case !l.Heartbeats:
		return ""
	case l.Suspect:
		return "suspect"
	}
	return "up"
}
