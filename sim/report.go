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
	// DetectIn is how long after the fault a node first dropped a link
	// the fault silenced or broke (nil: none did, or it touched none).
	DetectIn *Dur `json:"link_dropped_after,omitempty"`
	// Links is how many links a node held that the fault touched when it
	// began; a fault that touched none cannot drop one.
	Links int `json:"links_touched"`
	// LinkBackIn is, after a heal or a restart, how long until a dial
	// brought a link up over the healed edge (to the restarted node).
	LinkBackIn *Dur `json:"link_back_after,omitempty"`
	// LossRun is the longest run of lost frames of the report's stream
	// that began between this fault and the next one (from one interval
	// before each: a frame in flight), as frames times the interval
	// (nil: the scenario has no stream).
	LossRun *Dur `json:"loss_run,omitempty"`
}

// KindReport summarizes the faults of one kind.
type KindReport struct {
	Kind     string `json:"kind"`
	Failover        // how many, and their recovery times
	Detected int    `json:"links_dropped"` // faults after which a node dropped a link
	// DetectP50 and DetectMax are the times to the first dropped link.
	DetectP50 Dur `json:"link_dropped_p50"`
	DetectMax Dur `json:"link_dropped_max"`
	// LinkBack counts heals and restarts after which a link came back;
	// LinkBackP50 and LinkBackMax are the times to it.
	LinkBack    int `json:"links_back"`
	LinkBackP50 Dur `json:"link_back_p50"`
	LinkBackMax Dur `json:"link_back_max"`
	// LossRunP50 and LossRunMax are the stream's loss runs (zero without
	// a stream).
	LossRunP50 Dur `json:"loss_run_p50"`
	LossRunMax Dur `json:"loss_run_max"`
}

// Report is what a scenario run measured and checked.
type Report struct {
	Scenario    string        `json:"scenario"`
	File        string        `json:"file"`
	Seed        uint64        `json:"seed"`
	Nodes       int           `json:"nodes"`
	Duration    Dur           `json:"duration"`
	Converged   bool          `json:"converged"`
	ConvergeIn  Dur           `json:"converge_in"`
	Faults      []FaultReport `json:"faults"`
	Failover    Failover      `json:"failover"`
	Kinds       []KindReport  `json:"fault_kinds"`
	Stream      string        `json:"stream,omitempty"` // the unicast stream whose loss runs are reported
	Frames      FrameStats    `json:"frames"`
	Health      HealthStats   `json:"health"`
	ControlMsgs float64       `json:"control_msgs_per_node_s"`
	ControlB    float64       `json:"control_bytes_per_node_s"`
	// QuietControlMsgs and QuietControlB are the control traffic per node
	// and second in the quiet seconds of the run: those at least 30 s
	// after the start and after every fault and heal (QuietSeconds of
	// them; zero when there is none).
	QuietControlMsgs float64 `json:"quiet_control_msgs_per_node_s"`
	QuietControlB    float64 `json:"quiet_control_bytes_per_node_s"`
	QuietSeconds     float64 `json:"quiet_seconds"`
	Heartbeats       float64 `json:"heartbeat_msgs_per_node_s"`
	DataMsgs         float64 `json:"data_msgs_per_node_s"`
	QueueDrops       uint64  `json:"queue_drops"`
	Closes           uint64  `json:"closes"`
	Liveness         uint64  `json:"liveness_failures"` // links failed (at one end or both) as silent for their detection time
	UserTO           uint64  `json:"user_timeouts"`     // links the transport aborted (TCP_USER_TIMEOUT)
	Retransmits      uint64  `json:"retransmits"`
	DialFails        uint64  `json:"dial_failures"`
	Links            uint64  `json:"links_created"`
	SeedLinks        uint64  `json:"seed_protocol_links"`
	MaxDegree        int     `json:"max_degree"`
	// PeakDegree is the most mesh links one node had at any time,
	// PeakLinks the most links with directory links counted.
	PeakDegree int `json:"peak_degree"`
	PeakLinks  int `json:"peak_links"`
	// DirectoryLinks counts the links taken as directory links.
	DirectoryLinks uint64 `json:"directory_links"`
	// Revocations are the revoke faults: when the last link to the
	// revoked member closed.
	Revocations []RevocationReport `json:"revocations,omitempty"`
	MeanDegree  float64            `json:"mean_degree"`
	Routes      float64            `json:"routes_per_node"` // mean live routes (with a next hop) per node up at the end
	Totals      Totals             `json:"totals"`
	Hash        string             `json:"trace_hash"`
	Violations  []Violation        `json:"violations"`
	ViolationN  int                `json:"violation_count"`
	Expect      []ExpectResult     `json:"expectations"`
	OK          bool               `json:"ok"`
}

// RevocationReport is one revocation: what was revoked where, and how
// long until no link to the revoked member was left (nil: never, within
// the watch of five seconds).
type RevocationReport struct {
	Fault  string `json:"fault"`
	At     Dur    `json:"at"`
	CutOff *Dur   `json:"cut_off_in,omitempty"`
}

// report summarizes a finished run.
func (s *Scenario) report(w *World) *Report {
	r := &Report{Scenario: s.Name, File: s.File, Seed: w.Config().Seed, Nodes: w.N(), Duration: Dur(s.Duration),
		Frames: w.Frames(), Health: w.HealthChecks(), Totals: w.Totals(), Hash: fmt.Sprintf("%016x", w.Hash())}
	var st *stream
	if len(w.traffic.streams) > 0 {
		st = w.traffic.streams[0]
		r.Stream = st.desc
	}
	recs := w.Recoveries()
	var recov []time.Duration
	for k, f := range recs {
		if f.Kind == "start" {
			r.Converged, r.ConvergeIn = f.Recovered, Dur(f.Recovery)
			continue
		}
		fr := FaultReport{Kind: f.Kind, Desc: f.Desc, At: Dur(f.At), Recovered: f.Recovered,
			Recovery: Dur(f.Recovery), BrokenPairs: f.BrokenPairs, Links: f.Links}
		if f.Detected {
			d := Dur(f.DetectIn.Round(time.Millisecond))
			fr.DetectIn = &d
		}
		if f.LinkBack {
			d := Dur(f.LinkBackIn.Round(time.Millisecond))
			fr.LinkBackIn = &d
		}
		if st != nil {
			// A frame sent up to one interval before a fault may be lost
			// to it (in flight): each fault owns the runs that begin
			// from one interval before it to one interval before the
			// next.
			to := int64(s.Duration)
			if k+1 < len(recs) {
				to = int64(recs[k+1].At - st.every)
			}
			d := Dur(time.Duration(st.lossRun(int64(f.At-st.every), to)) * st.every)
			fr.LossRun = &d
		}
		r.Faults = append(r.Faults, fr)
		r.Failover.Faults++
		if f.Recovered {
			recov = append(recov, f.Recovery)
		} else {
			r.Failover.Unrecovered++
		}
	}
	r.Failover.P50, r.Failover.P95, r.Failover.Max = percentiles(recov)
	r.Kinds = kindReports(r.Faults)
	secs := s.Duration.Seconds() * float64(w.N())
	for i := range w.N() {
		st := w.NodeStats(i)
		r.ControlMsgs += float64(st.ControlMsgs) / secs
		r.ControlB += float64(st.ControlBytes) / secs
		r.Heartbeats += float64(st.Heartbeats) / secs
		r.DataMsgs += float64(st.DataMsgs) / secs
		r.QueueDrops += st.QueueDrops
		r.Closes += st.Closes
		r.UserTO += st.UserTimeouts
		r.DialFails += st.DialFailures
	}
	r.Links, r.SeedLinks, r.Retransmits = r.Totals.LinksCreated, r.Totals.SeedLinks, r.Totals.Retransmits
	r.Liveness = r.Totals.LivenessLinks
	r.PeakDegree, r.PeakLinks, r.DirectoryLinks = r.Totals.PeakDegree, r.Totals.PeakLinks, r.Totals.DirectoryLinks
	links := w.LiveLinks()
	total := 0
	for _, l := range links {
		r.MaxDegree = max(r.MaxDegree, len(l))
		total += len(l)
	}
	r.MeanDegree = float64(total) / float64(max(1, len(links)))
	for _, rv := range w.revokes {
		rr := RevocationReport{Fault: rv.fault, At: Dur(rv.at)}
		if rv.cutOffAt >= 0 {
			d := Dur(rv.cutOffAt - rv.at)
			rr.CutOff = &d
		}
		r.Revocations = append(r.Revocations, rr)
	}
	routes, up := 0, 0
	for i := range w.N() {
		if w.Up(i) {
			routes += len(w.Node(i).Routes())
			up++
		}
	}
	r.Routes = float64(routes) / float64(max(1, up))
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

// kindReports summarizes faults by kind, in the order kinds first occur.
func kindReports(faults []FaultReport) []KindReport {
	var out []KindReport
	for _, f := range faults {
		if slices.ContainsFunc(out, func(k KindReport) bool { return k.Kind == f.Kind }) {
			continue
		}
		k := KindReport{Kind: f.Kind}
		var recov, det, back, runs []time.Duration
		for _, g := range faults {
			if g.Kind != f.Kind {
				continue
			}
			k.Faults++
			if g.Recovered {
				recov = append(recov, time.Duration(g.Recovery))
			} else {
				k.Unrecovered++
			}
			if g.DetectIn != nil {
				det = append(det, time.Duration(*g.DetectIn))
			}
			if g.LinkBackIn != nil {
				back = append(back, time.Duration(*g.LinkBackIn))
			}
			if g.LossRun != nil {
				runs = append(runs, time.Duration(*g.LossRun))
			}
		}
		k.P50, k.P95, k.Max = percentiles(recov)
		k.Detected = len(det)
		k.DetectP50, _, k.DetectMax = percentiles(det)
		k.LinkBack = len(back)
		k.LinkBackP50, _, k.LinkBackMax = percentiles(back)
		k.LossRunP50, _, k.LossRunMax = percentiles(runs)
		out = append(out, k)
	}
	return out
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
		fmt.Fprintf(&b, "  %10v  %-34s %s (%d pairs broken)", f.At, f.Desc, rec, f.BrokenPairs)
		if f.DetectIn != nil {
			fmt.Fprintf(&b, ", link dropped after %v", *f.DetectIn)
		}
		if f.LinkBackIn != nil {
			fmt.Fprintf(&b, ", link back after %v", *f.LinkBackIn)
		}
		if f.LossRun != nil {
			fmt.Fprintf(&b, ", loss run %v", *f.LossRun)
		}
		b.WriteByte('\n')
	}
	if len(r.Kinds) > 0 {
		line := func(format string, args ...any) {
			b.WriteString(strings.TrimRight(fmt.Sprintf(format, args...), " "))
			b.WriteByte('\n')
		}
		loss := ""
		if r.Stream != "" {
			loss = fmt.Sprintf("loss run p50/max (%s)", r.Stream)
		}
		line("  %-9s %6s  %-26s  %-28s  %s", "kind", "faults", "recovery p50/p95/max", "link dropped|back p50/max", loss)
		for _, k := range r.Kinds {
			rec := fmt.Sprintf("%v/%v/%v", k.P50, k.P95, k.Max)
			if k.Unrecovered > 0 {
				rec += fmt.Sprintf(" (%d not)", k.Unrecovered)
			}
			det := "-"
			switch {
			case k.Detected > 0:
				det = fmt.Sprintf("dropped %v/%v (%d)", k.DetectP50, k.DetectMax, k.Detected)
			case k.LinkBack > 0:
				det = fmt.Sprintf("back %v/%v (%d)", k.LinkBackP50, k.LinkBackMax, k.LinkBack)
			}
			loss = ""
			if r.Stream != "" {
				loss = fmt.Sprintf("%v/%v", k.LossRunP50, k.LossRunMax)
			}
			line("  %-9s %6d  %-26s  %-28s  %s", k.Kind, k.Faults, rec, det, loss)
		}
	}
	fr := r.Frames
	fmt.Fprintf(&b, "frames    %d sent, %d deliveries expected: %d delivered, %d lost, %d duplicated, %d loops\n",
		fr.Sent, fr.Expected, fr.Delivered, fr.Lost, fr.Duplicated, fr.Loops)
	fmt.Fprintf(&b, "          checked in a quiet mesh: %d broadcasts, %d unicasts\n", fr.BroadcastChecked, fr.UnicastChecked)
	if r.Health.Requests > 0 {
		fmt.Fprintf(&b, "health    %d requests, %d answers, %d checked\n", r.Health.Requests, r.Health.Answers, r.Health.Checked)
	}
	fmt.Fprintf(&b, "control   %.2f msgs/node/s (%.2f heartbeats), %.0f bytes/node/s; data %.2f msgs/node/s\n",
		r.ControlMsgs, r.Heartbeats, r.ControlB, r.DataMsgs)
	if r.QuietSeconds > 0 {
		fmt.Fprintf(&b, "          in a quiet mesh (%.0f s, 30 s or more after the start and any fault): %.2f msgs/node/s, %.0f bytes/node/s\n",
			r.QuietSeconds, r.QuietControlMsgs, r.QuietControlB)
	}
	for _, rv := range r.Revocations {
		if rv.CutOff != nil {
			fmt.Fprintf(&b, "revoke    %s at %v: the last link to it closed %v later\n", rv.Fault, time.Duration(rv.At), time.Duration(*rv.CutOff))
		} else {
			fmt.Fprintf(&b, "revoke    %s at %v: still linked %v later\n", rv.Fault, time.Duration(rv.At), revokeWatchFor)
		}
	}
	fmt.Fprintf(&b, "links     %d created (%d seed protocol, %d directory), %d closed by nodes (%d failed by liveness), %d aborted by the user timeout, %d dial failures, %d queue drops; degree mean %.1f max %d, peak %d (%d with directory links)\n",
		r.Links, r.SeedLinks, r.DirectoryLinks, r.Closes, r.Liveness, r.UserTO, r.DialFails, r.QueueDrops, r.MeanDegree, r.MaxDegree, r.PeakDegree, r.PeakLinks)
	fmt.Fprintf(&b, "events    %d (%d messages delivered, %d lost in flight, %d retransmissions)\n", r.Totals.Events, r.Totals.Messages, r.Totals.Lost, r.Retransmits)
	if r.Totals.Datagrams > 0 {
		fmt.Fprintf(&b, "datagrams %d frames sent as datagrams (transport: datagram), %d lost\n", r.Totals.Datagrams, r.Totals.DatagramsLost)
	}
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

// quietControl computes the quiet control traffic from the per-second
// samples: a second counts when no fault or heal happened within settle
// before its end, nor the start.
func (r *Report) quietControl(samples []controlSample, settle time.Duration) {
	var msgs, byts uint64
	var secs time.Duration
	prev := controlSample{}
	for _, c := range samples {
		quiet := c.at >= settle
		for _, f := range r.Faults {
			if at := time.Duration(f.At); at < c.at && c.at-at < settle+time.Second {
				quiet = false
			}
		}
		if quiet {
			msgs += c.msgs - prev.msgs
			byts += c.byts - prev.byts
			secs += c.at - prev.at
		}
		prev = c
	}
	if secs <= 0 || r.Nodes == 0 {
		return
	}
	per := secs.Seconds() * float64(r.Nodes)
	r.QuietControlMsgs, r.QuietControlB, r.QuietSeconds = float64(msgs)/per, float64(byts)/per, secs.Seconds()
}
