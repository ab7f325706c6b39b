package sim

import (
	"fmt"
	"time"
)

// RunOptions change how a scenario runs.
type RunOptions struct {
	// Seed, when not zero, replaces the scenario's seed.
	Seed uint64
	// Progress, when set, is called after every simulated second with
	// the virtual time reached and the scenario's duration. It adds no
	// event: the run is the same with or without it.
	Progress func(done, total time.Duration)
	// OnViolation is passed to World.OnViolation.
	OnViolation func(Violation)
}

// World builds the world a scenario describes, with its faults and
// traffic scheduled, without running it. It drives the world through its
// exported methods only.
func (s *Scenario) World(opt RunOptions) (*World, error) {
	seed := s.Seed
	if opt.Seed != 0 {
		seed = opt.Seed
	}
	t := s.Topology
	cfg := Config{Seed: seed, Timers: s.Timers, LAN: s.LAN, WAN: s.WAN, QueueLimit: s.QueueLimit,
		DialTimeout: s.DialTimeout, UserTimeout: s.UserTimeout, SeedProtocol: s.SeedProtocol, ClockSkew: s.ClockSkew,
		Signatures: s.Signatures, Datagrams: s.Datagrams,
		ProbeStep: s.ProbeStep, FloodWindow: s.FloodWindow, RecoveryTimeout: s.Recovery}
	for _, f := range s.Faults {
		// A skew at 0 s is how the node's clock runs from its start: a
		// skew applied later is a step of the clock (see Jump).
		if i, by, ok := f.initialOffset(); ok {
			if cfg.Offsets == nil {
				cfg.Offsets = map[int]time.Duration{}
			}
			cfg.Offsets[i] = by
		}
	}
	w := New(cfg)
	w.OnViolation = opt.OnViolation
	topo, err := t.build(w.Rand())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.File, err)
	}
	if err := w.Build(topo); err != nil {
		return nil, fmt.Errorf("%s: %w", s.File, err)
	}
	if topo.Organic {
		every := t.JoinEvery
		if every <= 0 {
			every = 100 * time.Millisecond
		}
		for i := 1; i < topo.N; i++ {
			w.At(time.Duration(i)*every, func() { w.Restart(i) })
		}
		w.At(time.Duration(topo.N-1)*every, w.MeasureRecovery)
	} else {
		w.MeasureRecovery()
	}
	env := faultEnv{file: s.File, site: topo.Site}
	for _, f := range s.Faults {
		if _, _, ok := f.initialOffset(); ok {
			continue
		}
		f.schedule(w, env, s.Duration)
	}
	for _, tr := range s.Traffic {
		tr.schedule(w, s.Duration)
	}
	return w, nil
}

// Run plays the scenario and checks its expectations.
func (s *Scenario) Run(opt RunOptions) (*Report, error) {
	w, err := s.World(opt)
	if err != nil {
		return nil, err
	}
	var ctl []controlSample
	for t := time.Second; ; t += time.Second {
		t = min(t, s.Duration)
		w.RunUntil(t)
		ctl = append(ctl, w.controlSample())
		if opt.Progress != nil {
			opt.Progress(t, s.Duration)
		}
		if t >= s.Duration {
			break
		}
	}
	r := s.report(w)
	r.quietControl(ctl, quietSettle)
	return r, nil
}

// controlSample is the mesh's control traffic so far, at the end of one
// simulated second.
type controlSample struct {
	at         time.Duration
	msgs, byts uint64
}

// controlSample sums the control traffic every node has sent so far.
func (w *World) controlSample() controlSample {
	c := controlSample{at: w.Elapsed()}
	for i := range w.N() {
		st := w.NodeStats(i)
		c.msgs += st.ControlMsgs
		c.byts += st.ControlBytes
	}
	return c
}

// quietSettle is how long after the start and after each fault a second
// is not counted as quiet: long enough for the rounds a change starts to
// have crossed the mesh.
const quietSettle = 30 * time.Second
