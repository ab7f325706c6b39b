package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Dur is a duration that reads well in JSON ("1.25s").
type Dur time.Duration

// MarshalJSON writes d as a duration string.
func (d Dur) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// String formats d as time.Duration does.
func (d Dur) String() string { return time.Duration(d).String() }

// Failover summarizes recovery times.
type Failover struct {
	Faults      int `json:"faults"`
	Unrecovered int `json:"unrecovered"`
	P50         Dur `json:"p50"`
	P95         Dur `json:"p95"`
	Max         Dur `json:"max"`
}

// ExpectResult is the outcome of one expectation.
type ExpectResult struct {
	Line   int    `json:"line"`
	Text   string `json:"text"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// FaultReport is one fault in a report.
type FaultReport struct {
	Kind        string `json:"kind"`
	Desc        string `json:"desc"`
	At          Dur    `json:"at"`
	Recovered   bool   `json:"recovered"`
	Recovery    Dur    `json:"recovery"`
	BrokenPairs int    `json:"broken_pairs"`
}

// Report is what a scenario run measured and checked.
type Report struct {
	Scenario    string         `json:"scenario"`
	File        string         `json:"file"`
	Seed        uint64         `json:"seed"`
	Nodes       int            `json:"nodes"`
	Duration    Dur            `json:"duration"`
	Converged   bool           `json:"converged"`
	ConvergeIn  Dur            `json:"converge_in"`
	Faults      []FaultReport  `json:"faults"`
	Failover    Failover       `json:"failover"`
	Frames      FrameStats     `json:"frames"`
	Health      HealthStats    `json:"health"`
	ControlMsgs float64        `json:"control_msgs_per_node_s"`
	ControlB    float64        `json:"control_bytes_per_node_s"`
	DataMsgs    float64        `json:"data_msgs_per_node_s"`
	QueueDrops  uint64         `json:"queue_drops"`
	Closes      uint64         `json:"closes"`
	DialFails   uint64         `json:"dial_failures"`
	Links       uint64         `json:"links_created"`
	SeedLinks   uint64         `json:"seed_protocol_links"`
	MaxDegree   int            `json:"max_degree"`
	MeanDegree  float64        `json:"mean_degree"`
	Totals      Totals         `json:"totals"`
	Hash        string         `json:"trace_hash"`
	Violations  []Violation    `json:"violations"`
	ViolationN  int            `json:"violation_count"`
	Expect      []ExpectResult `json:"expectations"`
	OK          bool           `json:"ok"`
}

// report summarizes a finished run.
func (s *Scenario) report(w *World) *Report {
	r := &Report{Scenario: s.Name, File: s.File, Seed: w.Config().Seed, Nodes: w.N(), Duration: Dur(s.Duration),
		Frames: w.Frames(), Health: w.HealthChecks(), Totals: w.Totals(), Hash: fmt.Sprintf("%016x", w.Hash())}
	var recov []time.Duration
	for _, f := range w.Recoveries() {
		if f.Kind == "start" {
			r.Converged, r.ConvergeIn = f.Recovered, Dur(f.Recovery)
			continue
		}
		r.Faults = append(r.Faults, FaultReport{Kind: f.Kind, Desc: f.Desc, At: Dur(f.At), Recovered: f.Recovered,
			Recovery: Dur(f.Recovery), BrokenPairs: f.BrokenPairs})
		r.Failover.Faults++
		if f.Recovered {
			recov = append(recov, f.Recovery)
		} else {
			r.Failover.Unrecovered++
		}
	}
	r.Failover.P50, r.Failover.P95, r.Failover.Max = percentiles(recov)
	secs := s.Duration.Seconds() * float64(w.N())
	for i := range w.N() {
		st := w.NodeStats(i)
		r.ControlMsgs += float64(st.ControlMsgs) / secs
		r.ControlB += float64(st.ControlBytes) / secs
		r.DataMsgs += float64(st.DataMsgs) / secs
		r.QueueDrops += st.QueueDrops
		r.Closes += st.Closes
		r.DialFails += st.DialFailures
	}
	r.Links, r.SeedLinks = r.Totals.LinksCreated, r.Totals.SeedLinks
	links := w.LiveLinks()
	total := 0
	for _, l := range links {
		r.MaxDegree = max(r.MaxDegree, len(l))
		total += len(l)
	}
	r.MeanDegree = float64(total) / float64(max(1, len(links)))
	r.Violations, r.ViolationN = w.Violations()
	r.OK = true
	for _, e := range s.Expect {
		res := e.check(r, w.ViolationCounts())
		r.OK = r.OK && res.OK
		r.Expect = append(r.Expect, res)
	}
	if w.ViolationCounts()["scenario"] > 0 {
		r.OK = false
	}
	return r
}

// percentiles returns the 50th and 95th percentiles (nearest rank) and
// the maximum of ds.
func percentiles(ds []time.Duration) (p50, p95, mx Dur) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) Dur {
		k := int(p*float64(len(s))+0.999999) - 1
		return Dur(s[max(0, min(k, len(s)-1))])
	}
	return rank(0.50), rank(0.95), Dur(s[len(s)-1])
}

// Text formats the report for people.
func (r *Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario  %s (%s)\n", r.Scenario, r.File)
	fmt.Fprintf(&b, "seed      %d   nodes %d   simulated %v   trace hash %s\n", r.Seed, r.Nodes, r.Duration, r.Hash)
	if r.Converged {
		fmt.Fprintf(&b, "converged in %v\n", r.ConvergeIn)
	} else {
		fmt.Fprintf(&b, "never converged\n")
	}
	fmt.Fprintf(&b, "failover  %d faults: p50 %v  p95 %v  max %v", r.Failover.Faults, r.Failover.P50, r.Failover.P95, r.Failover.Max)
	if r.Failover.Unrecovered > 0 {
		fmt.Fprintf(&b, "  (%d never recovered)", r.Failover.Unrecovered)
	}
	b.WriteByte('\n')
	const maxShown = 12
	for i, f := range r.Faults {
		if i == maxShown {
			fmt.Fprintf(&b, "  ... %d more\n", len(r.Faults)-maxShown)
			break
		}
		rec := "not recovered"
		if f.Recovered {
			rec = "recovered in " + f.Recovery.String()
		}
		fmt.Fprintf(&b, "  %10v  %-34s %s (%d pairs broken)\n", f.At, f.Desc, rec, f.BrokenPairs)
	}
	fr := r.Frames
	fmt.Fprintf(&b, "frames    %d sent, %d deliveries expected: %d delivered, %d lost, %d duplicated, %d loops\n",
		fr.Sent, fr.Expected, fr.Delivered, fr.Lost, fr.Duplicated, fr.Loops)
	fmt.Fprintf(&b, "          checked in a quiet mesh: %d broadcasts, %d unicasts\n", fr.BroadcastChecked, fr.UnicastChecked)
	if r.Health.Requests > 0 {
		fmt.Fprintf(&b, "health    %d requests, %d answers, %d checked\n", r.Health.Requests, r.Health.Answers, r.Health.Checked)
	}
	fmt.Fprintf(&b, "control   %.2f msgs/node/s, %.0f bytes/node/s; data %.2f msgs/node/s\n", r.ControlMsgs, r.ControlB, r.DataMsgs)
	fmt.Fprintf(&b, "links     %d created (%d seed protocol), %d closed by nodes, %d dial failures, %d queue drops; degree mean %.1f max %d\n",
		r.Links, r.SeedLinks, r.Closes, r.DialFails, r.QueueDrops, r.MeanDegree, r.MaxDegree)
	fmt.Fprintf(&b, "events    %d (%d messages delivered, %d lost in flight)\n", r.Totals.Events, r.Totals.Messages, r.Totals.Lost)
	for _, e := range r.Expect {
		mark := "ok  "
		if !e.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s  %s:%d %s", mark, r.File, e.Line, e.Text)
		if e.Detail != "" {
			fmt.Fprintf(&b, ": %s", e.Detail)
		}
		b.WriteByte('\n')
	}
	if r.ViolationN > 0 {
		fmt.Fprintf(&b, "%d violations; the first:\n", r.ViolationN)
		for i, v := range r.Violations {
			if i == 3 {
				break
			}
			fmt.Fprintf(&b, "  %s\n  recent events:\n%s", v, v.Trace)
		}
	}
	return b.String()
}
