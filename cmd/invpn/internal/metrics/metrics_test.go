package metrics

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
)

func TestScrapeParses(t *testing.T) {
	defer goleak.VerifyNone(t)
	snap := func(context.Context) (*control.Status, error) {
		return &control.Status{
			Links:             []control.LinkStatus{{FramesIn: 3, FramesOut: 4, BytesIn: 300, BytesOut: 400}, {FramesIn: 1, BytesIn: 10}},
			Routes:            make([]control.RouteStatus, 5),
			Drops:             map[string]uint64{"no route": 7},
			Counters:          map[string]uint64{CounterFailovers: 2},
			PreauthRefused:    map[string]uint64{"per_source": 9, "certificate": 1},
			PreauthInProgress: 3,
			Now:               time.Unix(1000, 0),
			Certificate:       &control.Certificate{NotAfter: time.Unix(1000+10*86400, 0)},
			Revocation:        &control.Revocation{Number: 4},
		}, nil
	}
	reg := New(snap)
	reg.HealthRTT.Observe(0.003)
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- reg.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	want := map[string]float64{"invpn_links": 2, "invpn_routes": 5, "invpn_route_failovers_total": 2, "invpn_preauth_in_progress": 3,
		"invpn_certificate_expiry_timestamp_seconds": 1000 + 10*86400, "invpn_certificate_expires_soon": 1, "invpn_revocation_list_number": 4}
	for name, v := range want {
		f := fams[name]
		if f == nil {
			t.Errorf("no metric %s", name)
			continue
		}
		m := f.Metric[0]
		got := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		if got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	checkLabelled := func(name, label, value string, v float64) {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.Label {
				if l.GetName() == label && l.GetValue() == value && m.GetCounter().GetValue() == v {
					return
				}
			}
		}
		t.Errorf("%s{%s=%q} != %v", name, label, value, v)
	}
	checkLabelled("invpn_link_frames_total", "direction", "in", 4)
	checkLabelled("invpn_link_bytes_total", "direction", "out", 400)
	checkLabelled("invpn_drops_total", "reason", "no route", 7)
	checkLabelled("invpn_preauth_refused_total", "reason", "per_source", 9)
	if h := fams["invpn_health_rtt_seconds"]; h == nil || h.Metric[0].GetHistogram().GetSampleCount() != 1 {
		t.Error("health RTT histogram missing its sample")
	}
}

func TestScrapeWhenDaemonDoesNotAnswer(t *testing.T) {
	reg := New(func(context.Context) (*control.Status, error) { return nil, errors.New("busy") })
	fams, err := reg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "invpn_scrape_ok" && f.Metric[0].GetGauge().GetValue() != 0 {
			t.Error("scrape_ok not 0")
		}
	}
}
