package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/sim"
)

// This file holds the parameters --sweep varies and the variants of a
// scenario they make: the cartesian product of every --sweep's values.

// sweepParams are the parameters --sweep can vary. Each sets its value in
// a copy of the scenario, or says why the value does not fit it.
var sweepParams = map[string]func(s *sim.Scenario, v string) error{
	"announce": positiveDuration("announce interval", "5s", func(s *sim.Scenario, d time.Duration) { s.Timers.Announce = d }),
	"max_links": func(s *sim.Scenario, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("max_links %q: want a positive integer", v)
		}
		s.Timers.MaxLinks = n
		if s.Timers.MinLinks > n {
			s.Timers.MinLinks = n
		}
		return nil
	},
	"heartbeat": func(s *sim.Scenario, v string) error {
		d, ok := durationOrZero(v)
		if !ok {
			return fmt.Errorf("heartbeat interval %q: want a duration like 250ms, or 0 for no heartbeats", v)
		}
		if d == 0 {
			d = -1 // off
		}
		s.Timers.Heartbeat = d
		if dead := s.Timers.DeadAfter; d > 0 && dead > 0 && dead <= d {
			return fmt.Errorf("heartbeat interval %q: not below dead_after %v", v, dead)
		}
		if d > 0 && s.Timers.DeadAfter == 0 && 3*d > 750*time.Millisecond {
			s.Timers.DeadAfter = 3 * d // keep three intervals, as the default
		}
		return nil
	},
	"latency": func(s *sim.Scenario, v string) error {
		lo, hi, ok := strings.Cut(v, "..")
		if !ok {
			hi = lo
		}
		a, err1 := time.ParseDuration(lo)
		b, err2 := time.ParseDuration(hi)
		if err1 != nil || err2 != nil || b < a {
			return fmt.Errorf("latency %q: want a duration or a range like 2ms..20ms", v)
		}
		s.LAN.Latency = sim.Range{Min: a, Max: b}
		return nil
	},
	"nodes": func(s *sim.Scenario, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > 100000 {
			return fmt.Errorf("nodes %q: want a node count from 2 to 100000", v)
		}
		if !slices.Contains(countedTopologies, s.Topology.Kind) {
			return fmt.Errorf("nodes=%s: a %s topology does not take a node count (nodes sweeps line, ring, star, mesh, random and organic topologies)",
				v, s.Topology.Kind)
		}
		if top, where, err := highestNodeRef(s); err != nil {
			return fmt.Errorf("nodes=%s: %w", v, err)
		} else if top >= n {
			return fmt.Errorf("nodes=%s: %s names n%d, which a %d-node topology lacks (n0..n%d)", v, where, top, n, n-1)
		}
		s.Topology.Nodes = n
		return nil
	},
	"degree": func(s *sim.Scenario, v string) error {
		d, err := strconv.ParseFloat(v, 64)
		if err != nil || d < 1 {
			return fmt.Errorf("degree %q: want a mean degree of at least 1, like 4 or 2.5", v)
		}
		if s.Topology.Kind != "random" {
			return fmt.Errorf("degree=%s: only a random topology has a mean degree, not a %s one", v, s.Topology.Kind)
		}
		s.Topology.Degree = d
		return nil
	},
	"refresh": func(s *sim.Scenario, v string) error {
		if v == "0" {
			s.Timers.Refresh = -1 // today's protocol: every round flooded each announce interval
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("refresh interval %q: want a duration like 120s, or 0 to flood a round every announce interval", v)
		}
		s.Timers.Refresh = d
		return nil
	},
	"batch_delay":  positiveDuration("batch_delay", "250ms", func(s *sim.Scenario, d time.Duration) { s.Timers.BatchDelay = d }),
	"change_delay": delayOrAtOnce("change_delay", "5ms", "to send each change at once", func(s *sim.Scenario, d time.Duration) { s.Timers.ChangeDelay = d }),
	"ask_window":   delayOrAtOnce("ask_window", "10ms", "to ask at once", func(s *sim.Scenario, d time.Duration) { s.Timers.AskWindow = d }),
	"duration":     positiveDuration("duration", "10m", func(s *sim.Scenario, d time.Duration) { s.Duration = d }),
	"transport": func(s *sim.Scenario, v string) error {
		d, err := sim.ParseTransport(v)
		if err != nil {
			return err
		}
		s.Datagrams = d
		return nil
	},
	"signatures": func(s *sim.Scenario, v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("signatures %q: want true or false", v)
		}
		s.Signatures = on
		return nil
	},
}

// durationOrZero parses a duration of zero or more ("0" needs no unit).
func durationOrZero(v string) (time.Duration, bool) {
	if v == "0" {
		return 0, true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d >= 0
}

// positiveDuration is a sweep parameter that takes a positive duration
// and sets it with set; name and example say what it is in messages.
func positiveDuration(name, example string, set func(*sim.Scenario, time.Duration)) func(*sim.Scenario, string) error {
	return func(s *sim.Scenario, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s %q: want a positive duration like %s", name, v, example)
		}
		set(s, d)
		return nil
	}
}

// delayOrAtOnce parses a duration where 0 means "at once" (set gets -1,
// the scenario's explicit zero), for the named parameter.
func delayOrAtOnce(name, example, zero string, set func(*sim.Scenario, time.Duration)) func(*sim.Scenario, string) error {
	return func(s *sim.Scenario, v string) error {
		d, ok := durationOrZero(v)
		if !ok {
			return fmt.Errorf("%s %q: want a duration like %s, or 0 %s", name, v, example, zero)
		}
		if d == 0 {
			d = -1 // at once
		}
		set(s, d)
		return nil
	}
}

// sweepParamList names the sweep parameters, for messages.
const sweepParamList = "announce, max_links, heartbeat, latency, nodes, degree, refresh, batch_delay, change_delay, ask_window, duration"

// countedTopologies are the topology kinds whose size is their node
// count, the ones a nodes sweep can resize (the message of the nodes
// sweep names them too).
var countedTopologies = []string{"line", "ring", "star", "mesh", "random", "organic"}

// sweepAxis is one --sweep flag: a parameter and its values, in order.
type sweepAxis struct {
	param  string
	values []string
}

// sweepFlags collects the --sweep flags in the order given.
type sweepFlags []sweepAxis

// String returns the flags as given.
func (f *sweepFlags) String() string {
	var out []string
	for _, a := range *f {
		out = append(out, a.param+"="+strings.Join(a.values, ","))
	}
	return strings.Join(out, " ")
}

// Set parses one --sweep PARAM=v1,v2,...; whether each value fits the
// scenario is checked when the variants are made.
func (f *sweepFlags) Set(arg string) error {
	p, list, ok := strings.Cut(arg, "=")
	if _, known := sweepParams[p]; !ok || !known || list == "" {
		return fmt.Errorf("want PARAM=v1,v2,... with PARAM one of %s", sweepParamList)
	}
	if slices.ContainsFunc(*f, func(a sweepAxis) bool { return a.param == p }) {
		return fmt.Errorf("%s swept twice: give its values in one --sweep %s=v1,v2,...", p, p)
	}
	values := strings.Split(list, ",")
	for i, v := range values {
		if v == "" || slices.Contains(values[:i], v) {
			return fmt.Errorf("%s: an empty or repeated value in %q", p, list)
		}
	}
	*f = append(*f, sweepAxis{param: p, values: values})
	return nil
}

// setting is one parameter's value in a variant.
type setting struct{ param, value string }

// variant is the scenario with one value of every swept parameter.
type variant struct {
	// label names the variant: its settings ("nodes=1000 refresh=0"), or
	// the scenario's name without a sweep.
	label    string
	settings []setting
	scen     *sim.Scenario
}

// variants returns the cartesian product of the sweeps' values applied
// to base, the first sweep varying slowest; without a sweep, base alone.
// Every variant is checked before any runs.
func variants(base *sim.Scenario, sweeps []sweepAxis) ([]variant, error) {
	combos := [][]setting{nil}
	for _, a := range sweeps {
		var next [][]setting
		for _, c := range combos {
			for _, v := range a.values {
				next = append(next, append(slices.Clone(c), setting{a.param, v}))
			}
		}
		combos = next
	}
	out := make([]variant, 0, len(combos))
	for _, c := range combos {
		s := *base
		var words []string
		for _, st := range c {
			if err := sweepParams[st.param](&s, st.value); err != nil {
				return nil, err
			}
			words = append(words, st.param+"="+st.value)
		}
		label := base.Name
		if len(c) > 0 {
			label = strings.Join(words, " ")
		}
		if err := checkTimers(s.Timers); err != nil {
			if len(c) > 0 {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			return nil, err
		}
		out = append(out, variant{label: label, settings: c, scen: &s})
	}
	return out, nil
}

// checkTimers checks what the node would refuse to start with (and the
// simulator would panic on) among the timers a sweep sets: the refresh
// interval against the announce interval and the route expiry.
func checkTimers(t sim.Timers) error {
	def := node.DefaultConfig()
	pick := func(v, d time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return d
	}
	announce, expiry := pick(t.Announce, def.AnnounceInterval), pick(t.RouteExpiry, def.RouteExpiry)
	refresh := pick(t.Refresh, def.RefreshInterval)
	if t.Refresh < 0 {
		refresh = 0
	}
	switch {
	case refresh > 0 && refresh < announce:
		return fmt.Errorf("refresh interval %v is below the announce interval %v", refresh, announce)
	case refresh > 0 && 2*refresh > expiry:
		return fmt.Errorf("refresh interval %v is over half the route expiry %v: routes would expire between refreshes", refresh, expiry)
	}
	return nil
}

// highestNodeRef returns the highest node index the scenario's faults and
// traffic name explicitly (-1 for none) and where, so that a nodes sweep
// does not shrink the topology under them.
func highestNodeRef(s *sim.Scenario) (int, string, error) {
	top, where := -1, ""
	note := func(line int, what string, idx ...int) {
		for _, i := range idx {
			if i > top {
				top, where = i, fmt.Sprintf("the %s on line %d", what, line)
			}
		}
	}
	edge := func(line int, what string, r sim.EdgeRef) {
		if r.Pick == sim.EdgePair || r.Pick == sim.EdgeRoute {
			note(line, what, r.A, r.B)
		}
	}
	nodeRef := func(line int, what string, n sim.NodeRef, via sim.Route) {
		switch {
		case n >= 0:
			note(line, what, int(n))
		case n == sim.RelayNode:
			note(line, what, via.From, via.To)
		}
	}
	for _, f := range s.Faults {
		switch x := f.Fault.(type) {
		case sim.CutFault:
			edge(f.Line, "cut", x.EdgeRef)
		case sim.OneWayFault:
			edge(f.Line, "one_way", x.EdgeRef)
		case sim.ResetFault:
			edge(f.Line, "reset", x.EdgeRef)
		case sim.LossFault:
			edge(f.Line, "loss", x.EdgeRef)
		case sim.PartitionFault:
			for _, g := range x.Groups {
				note(f.Line, "partition", g...)
			}
		case sim.CrashFault:
			nodeRef(f.Line, "crash", x.Node, x.Via)
		case sim.HaltFault:
			nodeRef(f.Line, "halt", x.Node, x.Via)
		case sim.StallFault:
			nodeRef(f.Line, "stall", x.Node, x.Via)
		case sim.SkewFault:
			nodeRef(f.Line, "skew", x.Node, sim.Route{})
		case sim.JumpFault:
			nodeRef(f.Line, "jump", x.Node, sim.Route{})
		case sim.RevokeFault:
			nodeRef(f.Line, "revoke", x.Node, sim.Route{})
		case sim.ForgeFault:
			nodeRef(f.Line, "forge", x.Node, sim.Route{})
			nodeRef(f.Line, "forge", x.Victim, sim.Route{})
		default:
			return 0, "", fmt.Errorf("the %s fault on line %d: this version of invpn sim cannot tell which nodes it names", f.Fault.Action(), f.Line)
		}
	}
	for _, tr := range s.Traffic {
		for _, n := range []sim.NodeRef{tr.Src, tr.Dst} {
			if n >= 0 {
				note(tr.Line, "traffic", int(n))
			}
		}
	}
	return top, where, nil
}
