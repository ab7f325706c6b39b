// Package metrics exports a daemon's counters on a Prometheus endpoint. It
// is off by default and turned on by `[metrics] listen = 127.0.0.1:PORT`.
// Values are read from a status snapshot at scrape time, so a scrape costs
// the data path nothing but the snapshot the daemon takes in its own loop.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
)

// Counter names the daemon puts in control.Status.Counters.
const (
	CounterRouteChanges = "route_changes"
	CounterFailovers    = "failovers"
	CounterWithdrawals  = "withdrawals"
	CounterViolations   = "violations"
)

// Snapshot returns the daemon's current status.
type Snapshot func(ctx context.Context) (*control.Status, error)

var (
	descLinks    = prometheus.NewDesc("invpn_links", "Mesh links that are up (directory links, which carry only a table, left out).", nil, nil)
	descRoutes   = prometheus.NewDesc("invpn_routes", "Routes with a live next hop.", nil, nil)
	descFrames   = prometheus.NewDesc("invpn_link_frames_total", "Messages carried over links, by direction.", []string{"direction"}, nil)
	descBytes    = prometheus.NewDesc("invpn_link_bytes_total", "Bytes carried over links, by direction.", []string{"direction"}, nil)
	descDrops    = prometheus.NewDesc("invpn_drops_total", "Frames and messages dropped, by reason.", []string{"reason"}, nil)
	descChanges  = prometheus.NewDesc("invpn_route_changes_total", "Routes moved to another next hop by a newer announcement.", nil, nil)
	descFailover = prometheus.NewDesc("invpn_route_failovers_total", "Routes moved to a backup next hop when a link went down.", nil, nil)
	descWithdraw = prometheus.NewDesc("invpn_route_withdrawals_total", "Routes withdrawn when a link went down with no backup.", nil, nil)
	descViol     = prometheus.NewDesc("invpn_protocol_violations_total", "Links closed for protocol violations.", nil, nil)
	descUp       = prometheus.NewDesc("invpn_scrape_ok", "1 when the daemon answered the scrape's snapshot.", nil, nil)
	descRTT      = prometheus.NewDesc("invpn_link_rtt_seconds", "Smoothed round-trip time of a link, from heartbeats (0 until measured).", []string{"peer"}, nil)
	descSuspect  = prometheus.NewDesc("invpn_link_suspect", "1 when a link has been silent for half its detection time.", []string{"peer"}, nil)
	descRefused  = prometheus.NewDesc("invpn_preauth_refused_total", "Incoming connections closed before they authenticated, by reason.", []string{"reason"}, nil)
	descPreauth  = prometheus.NewDesc("invpn_preauth_in_progress", "Incoming connections in the TLS handshake now.", nil, nil)
	descCertExp  = prometheus.NewDesc("invpn_certificate_expiry_timestamp_seconds", "When a certificate expires, as a Unix time: this node's (peer=\"self\") and each neighbour's.", []string{"peer"}, nil)
	descCertSoon = prometheus.NewDesc("invpn_certificate_expires_soon", "1 when a certificate expires within 30 days or has expired: this node's (peer=\"self\") and each neighbour's.", []string{"peer"}, nil)
	descCRL      = prometheus.NewDesc("invpn_revocation_list_number", "The CRL number of the group's revocation list in force; 0 for none.", nil, nil)
	descCRLRef   = prometheus.NewDesc("invpn_revocation_lists_refused_total", "Revocation lists from neighbours that did not verify against the group's CAs.", nil, nil)
)

// collector reads a snapshot per scrape.
type collector struct{ snap Snapshot }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLinks, descRoutes, descFrames, descBytes, descDrops, descChanges, descFailover, descWithdraw, descViol, descUp, descRTT, descSuspect, descRefused, descPreauth,
		descCertExp, descCertSoon, descCRL, descCRLRef} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.snap(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descLinks, prometheus.GaugeValue, float64(st.MeshLinks()))
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(len(st.Routes)))
	var fin, fout, bin, bout uint64
	for _, l := range st.Links {
		fin, fout, bin, bout = fin+l.FramesIn, fout+l.FramesOut, bin+l.BytesIn, bout+l.BytesOut
		if l.Liveness != "" {
			suspect := 0.0
			if l.Liveness == "suspect" {
				suspect = 1
			}
			ch <- prometheus.MustNewConstMetric(descRTT, prometheus.GaugeValue, l.RTTSeconds, l.Peer.String())
			ch <- prometheus.MustNewConstMetric(descSuspect, prometheus.GaugeValue, suspect, l.Peer.String())
		}
	}
	ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(fin), "in")
	ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(fout), "out")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(bin), "in")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(bout), "out")
	for reason, n := range st.Drops {
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(n), reason)
	}
	for reason, n := range st.PreauthRefused {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(descPreauth, prometheus.GaugeValue, float64(st.PreauthInProgress))
	cert := func(peer string, notAfter time.Time) {
		if notAfter.IsZero() {
			return
		}
		soon := 0.0
		if control.ExpiresSoon(notAfter, st.Now) {
			soon = 1
		}
		ch <- prometheus.MustNewConstMetric(descCertExp, prometheus.GaugeValue, float64(notAfter.Unix()), peer)
		ch <- prometheus.MustNewConstMetric(descCertSoon, prometheus.GaugeValue, soon, peer)
	}
	if st.Certificate != nil {
		cert("self", st.Certificate.NotAfter)
	}
	for _, l := range st.Links {
		cert(l.Peer.String(), l.CertExpires)
	}
	var crl uint64
	if st.Revocation != nil {
		crl = st.Revocation.Number
	}
	ch <- prometheus.MustNewConstMetric(descCRL, prometheus.GaugeValue, float64(crl))
	ch <- prometheus.MustNewConstMetric(descCRLRef, prometheus.CounterValue, float64(st.Counters["revocations_refused"]))
	for name, d := range map[string]*prometheus.Desc{CounterRouteChanges: descChanges, CounterFailovers: descFailover,
		CounterWithdrawals: descWithdraw, CounterViolations: descViol} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(st.Counters[name]))
	}
}

// Registry holds the daemon's metrics.
type Registry struct {
	reg *prometheus.Registry
	// HealthRTT observes the round-trip time of each health answer.
	HealthRTT prometheus.Histogram
}

// New returns a Registry that reads snap at every scrape.
func New(snap Snapshot) *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		HealthRTT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "invpn_health_rtt_seconds",
			Help:    "Round-trip time of health answers (0x03) to requests of this node.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	r.reg.MustRegister(collector{snap: snap}, r.HealthRTT)
	return r
}

// Handler returns the HTTP handler of the metrics endpoint.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// Listen opens the endpoint's TCP listener on addr (host:port).
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves /metrics on ln until ctx ends, then closes ln. Register
// adds more handlers to the same listener (the live map). It returns
// when the server has shut down: requests in progress get up to 2 s to
// finish.
func (r *Registry) Serve(ctx context.Context, ln net.Listener, register ...func(*http.ServeMux)) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", r.Handler())
	for _, reg := range register {
		reg(mux)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	shutdown := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shutdown)
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close() // a stream that did not end in time
		}
	})
	err := srv.Serve(ln)
	if !stop() {
		<-shutdown // Serve returns as Shutdown starts; wait for it to end
	} else {
		srv.Close()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
