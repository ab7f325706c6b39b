package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds the faults: the world's fault-injection methods (cut,
// heal, partition, crash, restart, clock skew and jump), the typed
// faults of a scenario's schedule, parsed once when the scenario is
// loaded, and how each one is applied when it fires. Applying a fault
// uses only the World's exported methods.

// Crash stops node i: it loses every link and all state but its peer
// cache and id floor. Its neighbours notice after the detection delay.
func (w *World) Crash(i int) {
	if w.cluster.crash(i) {
		w.measure.fault("crash "+w.Name(i), "crash")
	}
}

// Restart starts node i again from its persisted peer cache and id
// floor. Static edges come back up if the world relinks.
func (w *World) Restart(i int) {
	if w.cluster.restart(i) {
		w.measure.fault("restart "+w.Name(i), "restart")
	}
}

// Skew sets node i's clock offset from virtual time to d.
func (w *World) Skew(i int, d time.Duration) { w.cluster.setOffset(i, d) }

// Jump moves node i's clock by d (negative: back).
func (w *World) Jump(i int, d time.Duration) {
	w.cluster.setOffset(i, w.Offset(i)+d)
	w.measure.fault(fmt.Sprintf("clock jump %s %v", w.Name(i), d), "jump")
}

// Cut cuts the edge between a and b: its links break (each end notices
// after the detection delay) and no link can be opened over it until
// Heal.
func (w *World) Cut(a, b int) error {
	changed, err := w.net.cut(a, b)
	if changed {
		w.measure.fault(fmt.Sprintf("cut %s-%s", w.Name(a), w.Name(b)), "cut")
	}
	return err
}

// Heal repairs the edge between a and b.
func (w *World) Heal(a, b int) {
	if w.net.heal(a, b) {
		w.measure.fault(fmt.Sprintf("heal %s-%s", w.Name(a), w.Name(b)), "heal")
	}
}

// Partition splits the nodes: nodes in different groups cannot reach
// each other; nodes in no group form one more group. Links across break.
func (w *World) Partition(groups [][]int) {
	w.net.partition(groups)
	w.measure.fault(fmt.Sprintf("partition into %d groups", len(groups)+1), "partition")
}

// HealPartition ends a partition.
func (w *World) HealPartition() {
	w.net.healPartition()
	w.measure.fault("partition healed", "heal")
}

// NodeRef names a node of a scenario: its index, or RandomNode.
type NodeRef int

// RandomNode is a node drawn when the fault or traffic fires.
const RandomNode NodeRef = -1

// String formats r as "n3" or "random".
func (r NodeRef) String() string {
	if r == RandomNode {
		return "random"
	}
	return fmt.Sprintf("n%d", int(r))
}

// Schedule says when a fault or traffic entry fires: at At, then every
// Every (when not zero) until Until or the end of the scenario, at most
// Count times (when not zero).
type Schedule struct {
	At, Every, Until time.Duration
	Count            int
}

// times returns the firing times of s in a scenario that ends at end.
func (s Schedule) times(end time.Duration) []time.Duration {
	if s.Every <= 0 {
		return []time.Duration{s.At}
	}
	until := s.Until
	if until <= 0 || until > end {
		until = end
	}
	var out []time.Duration
	for t := s.At; t <= until && (s.Count == 0 || len(out) < s.Count); t += s.Every {
		out = append(out, t)
	}
	return out
}

// FaultSpec is one entry of a scenario's fault schedule.
type FaultSpec struct {
	Line  int   // in the scenario file
	Fault Fault // what happens each time the entry fires
	Schedule
	// For undoes the fault that long after it fired (heal, restart, set
	// the clock back, heal the partition); 0: never.
	For time.Duration
}

// A Fault is one action of a fault schedule: a value parsed once, when
// the scenario is loaded, and applied to the world each time it fires.
// The types are CutFault, PartitionFault, CrashFault, SkewFault and
// JumpFault.
type Fault interface {
	// Action is the scenario's word for the fault: cut, partition,
	// crash, skew or jump.
	Action() string
	// apply carries the fault out now and schedules its undoing after
	// undo (when not zero).
	apply(w *World, env faultEnv, undo time.Duration)
}

// faultEnv is what a fault needs to know besides the world.
type faultEnv struct {
	file string
	line int
	site []int // site of each node (multisite topologies)
}

// EdgePick says how a CutFault picks its edge.
type EdgePick uint8

// Edge picks.
const (
	EdgePair      EdgePick = iota + 1 // the edge between A and B
	EdgeRandom                        // a random edge, not cut, that carries a link
	EdgeRandomWAN                     // a random WAN edge not cut
	EdgeWANIndex                      // the K-th WAN edge, in creation order
)

// CutFault cuts an edge; For heals it.
type CutFault struct {
	Pick EdgePick
	A, B int // EdgePair
	K    int // EdgeWANIndex
}

// Action returns "cut".
func (CutFault) Action() string { return "cut" }

func (f CutFault) apply(w *World, env faultEnv, undo time.Duration) {
	var e EdgeState
	found := false
	switch f.Pick {
	case EdgePair:
		if e, found = w.EdgeState(f.A, f.B); !found {
			w.ReportViolation("scenario", fmt.Sprintf("%s:%d: cut n%d-n%d: no such edge", env.file, env.line, f.A, f.B))
			return
		}
	case EdgeWANIndex:
		n := 0
		for _, x := range w.EdgeStates() {
			if x.WAN {
				if n == f.K {
					e, found = x, true
				}
				n++
			}
		}
	case EdgeRandom, EdgeRandomWAN:
		var cands []EdgeState
		for _, x := range w.EdgeStates() {
			if !x.Cut && (f.Pick == EdgeRandom && x.Carrying || f.Pick == EdgeRandomWAN && x.WAN) {
				cands = append(cands, x)
			}
		}
		if len(cands) > 0 {
			e, found = cands[w.Rand().IntN(len(cands))], true
		}
	}
	if !found || e.Cut {
		return
	}
	_ = w.Cut(e.A, e.B)
	if undo > 0 {
		w.After(undo, func() { w.Heal(e.A, e.B) })
	}
}

// Split says how a PartitionFault splits the nodes.
type Split uint8

// Splits.
const (
	SplitGroups Split = iota + 1 // the groups of Groups against the rest
	SplitHalf                    // a random half against the other
	SplitSites                   // one group per site (multisite)
)

// PartitionFault splits the mesh; For heals the partition.
type PartitionFault struct {
	Split  Split
	Groups [][]int // SplitGroups: node indices
}

// Action returns "partition".
func (PartitionFault) Action() string { return "partition" }

func (f PartitionFault) apply(w *World, env faultEnv, undo time.Duration) {
	var groups [][]int
	switch f.Split {
	case SplitGroups:
		groups = f.Groups
	case SplitHalf:
		perm := w.Rand().Perm(w.N())
		groups = [][]int{perm[:len(perm)/2]}
		slices.Sort(groups[0])
	case SplitSites:
		for i, site := range env.site {
			for len(groups) <= site {
				groups = append(groups, nil)
			}
			groups[site] = append(groups[site], i)
		}
	}
	w.Partition(groups)
	if undo > 0 {
		w.After(undo, w.HealPartition)
	}
}

// CrashFault crashes a node that is up; For restarts it.
type CrashFault struct{ Node NodeRef }

// Action returns "crash".
func (CrashFault) Action() string { return "crash" }

func (f CrashFault) apply(w *World, _ faultEnv, undo time.Duration) {
	// The random node is drawn even for a fixed target, so that the
	// random source is used as it always was and seeds replay the same
	// runs.
	i := w.RandomUp()
	if f.Node != RandomNode {
		i = int(f.Node)
	}
	if i < 0 || !w.Up(i) {
		return
	}
	w.Crash(i)
	if undo > 0 {
		w.After(undo, func() { w.Restart(i) })
	}
}

// SkewFault sets a node's clock offset to By; For sets it back. A skew
// of a fixed node at 0 s that does not repeat is how the node's clock
// runs from its start (Config.Offsets).
type SkewFault struct {
	Node NodeRef
	By   time.Duration
}

// Action returns "skew".
func (SkewFault) Action() string { return "skew" }

func (f SkewFault) apply(w *World, _ faultEnv, undo time.Duration) {
	i := f.Node.pick(w)
	old := w.Offset(i)
	w.Skew(i, f.By)
	if undo > 0 {
		w.After(undo, func() { w.Skew(i, old) })
	}
}

// JumpFault steps a node's clock by By.
type JumpFault struct {
	Node NodeRef
	By   time.Duration
}

// Action returns "jump".
func (JumpFault) Action() string { return "jump" }

func (f JumpFault) apply(w *World, _ faultEnv, _ time.Duration) { w.Jump(f.Node.pick(w), f.By) }

// pick returns the node r names, drawing any node (up or not) for
// RandomNode. It draws even for a fixed node, so that seeds replay the
// same runs.
func (r NodeRef) pick(w *World) int {
	i := w.Rand().IntN(w.N())
	if r != RandomNode {
		i = int(r)
	}
	return i
}

// initialOffset reports whether f sets a node's clock offset from its
// start: a skew of a fixed node at 0 s that does not repeat.
func (f FaultSpec) initialOffset() (int, time.Duration, bool) {
	s, ok := f.Fault.(SkewFault)
	if !ok || s.Node == RandomNode || f.At != 0 || f.Every != 0 {
		return 0, 0, false
	}
	return int(s.Node), s.By, true
}

// schedule schedules every firing of f.
func (f FaultSpec) schedule(w *World, env faultEnv, end time.Duration) {
	env.line = f.Line
	for _, at := range f.times(end) {
		w.At(at, func() { f.Fault.apply(w, env, f.For) })
	}
}

// parseFault parses one entry of the fault list into a typed fault.
func (s *Scenario) parseFault(y ynode) (FaultSpec, error) {
	f, order, err := y.fields("cut", "partition", "crash", "skew", "jump", "at", "every", "until", "count", "for", "by")
	if err != nil {
		return FaultSpec{}, err
	}
	fs := FaultSpec{Line: y.line()}
	var actions []string
	for _, k := range order {
		switch k {
		case "cut", "partition", "crash", "skew", "jump":
			actions = append(actions, k)
		}
	}
	if len(actions) != 1 {
		return fs, y.errf("want exactly one of cut, partition, crash, skew, jump; got %v", actions)
	}
	action := actions[0]
	an := f[action]
	var target NodeRef
	switch action {
	case "cut":
		cut, err := s.parseCut(an)
		if err != nil {
			return fs, err
		}
		fs.Fault = cut
	case "partition":
		p, err := s.parsePartition(an)
		if err != nil {
			return fs, err
		}
		fs.Fault = p
	default:
		name, err := an.str()
		if err != nil {
			return fs, err
		}
		if target, err = s.parseNodeRef(an, name, true); err != nil {
			return fs, err
		}
	}
	if err := setDurs(f, durField{"at", &fs.At}, durField{"every", &fs.Every}, durField{"until", &fs.Until},
		durField{"for", &fs.For}); err != nil {
		return fs, err
	}
	var by time.Duration
	if v, ok := f["by"]; ok {
		str, err := v.str()
		if err != nil {
			return fs, err
		}
		neg := strings.HasPrefix(str, "-")
		if by, err = parseDuration(strings.TrimPrefix(strings.TrimPrefix(str, "-"), "+")); err != nil {
			return fs, v.errf("%v", err)
		}
		if neg {
			by = -by
		}
	}
	if err := setInts(f, intField{"count", &fs.Count}); err != nil {
		return fs, err
	}
	switch action {
	case "crash":
		fs.Fault = CrashFault{Node: target}
	case "skew", "jump":
		if by == 0 {
			return fs, y.errf("%s needs by", action)
		}
		if action == "skew" {
			fs.Fault = SkewFault{Node: target, By: by}
		} else {
			fs.Fault = JumpFault{Node: target, By: by}
		}
	}
	if fs.At > s.Duration {
		return fs, f["at"].errf("%v is after the end of the scenario (%v)", fs.At, s.Duration)
	}
	return fs, nil
}

// parseCut parses the target of a cut: nA-nB, wan, wan:K or random.
func (s *Scenario) parseCut(y ynode) (CutFault, error) {
	t, err := y.str()
	if err != nil {
		return CutFault{}, err
	}
	if t == "random" || t == "wan" || strings.HasPrefix(t, "wan:") {
		if strings.HasPrefix(t, "wan") && s.Topology.Kind != "multisite" {
			return CutFault{}, y.errf("%q needs a multisite topology", t)
		}
		switch {
		case t == "random":
			return CutFault{Pick: EdgeRandom}, nil
		case t == "wan":
			return CutFault{Pick: EdgeRandomWAN}, nil
		}
		k, err := strconv.Atoi(strings.TrimPrefix(t, "wan:"))
		if err != nil || k < 0 {
			return CutFault{}, y.errf("want wan:K with K a number, got %q", t)
		}
		return CutFault{Pick: EdgeWANIndex, K: k}, nil
	}
	a, b, ok := strings.Cut(t, "-")
	if !ok {
		return CutFault{}, y.errf("want nA-nB, wan, wan:K or random, got %q", t)
	}
	na, err := s.parseNodeRef(y, a, false)
	if err != nil {
		return CutFault{}, err
	}
	nb, err := s.parseNodeRef(y, b, false)
	if err != nil {
		return CutFault{}, err
	}
	return CutFault{Pick: EdgePair, A: int(na), B: int(nb)}, nil
}

// parsePartition parses the target of a partition: half, sites, a node
// range like n0..n9, or a list of groups of nodes and ranges.
func (s *Scenario) parsePartition(y ynode) (PartitionFault, error) {
	if items, err := y.list(); err == nil {
		p := PartitionFault{Split: SplitGroups}
		for _, g := range items {
			members, err := g.list()
			if err != nil {
				return p, err
			}
			var idx []int
			for _, m := range members {
				name, err := m.str()
				if err != nil {
					return p, err
				}
				r, err := s.parseNodeRange(m, name)
				if err != nil {
					return p, err
				}
				idx = append(idx, r...)
			}
			p.Groups = append(p.Groups, idx)
		}
		return p, nil
	}
	t, err := y.str()
	if err != nil {
		return PartitionFault{}, y.errf("want half, sites, a node range like n0..n9, or a list of groups")
	}
	switch t {
	case "half":
		return PartitionFault{Split: SplitHalf}, nil
	case "sites":
		if s.Topology.Kind != "multisite" {
			return PartitionFault{}, y.errf("partition by sites needs a multisite topology")
		}
		return PartitionFault{Split: SplitSites}, nil
	}
	r, err := s.parseNodeRange(y, t)
	if err != nil {
		return PartitionFault{}, err
	}
	return PartitionFault{Split: SplitGroups, Groups: [][]int{r}}, nil
}

// parseNodeRef parses a node name nK, K below the node count, or (when
// random is allowed) "random".
func (s *Scenario) parseNodeRef(y ynode, name string, random bool) (NodeRef, error) {
	if random && name == "random" {
		return RandomNode, nil
	}
	m := nodeName.FindStringSubmatch(name)
	if m == nil {
		return 0, y.errf("want a node name like n3, got %q", name)
	}
	k, err := strconv.Atoi(m[1])
	if err != nil || k >= s.Topology.Nodes {
		return 0, y.errf("node %s does not exist (the topology has %d nodes, n0..n%d)", name, s.Topology.Nodes, s.Topology.Nodes-1)
	}
	return NodeRef(k), nil
}

// parseNodeRange parses nK or nA..nB into the indices it names.
func (s *Scenario) parseNodeRange(y ynode, name string) ([]int, error) {
	lo, hi, ok := strings.Cut(name, "..")
	if !ok {
		hi = lo
	}
	a, err := s.parseNodeRef(y, lo, false)
	if err != nil {
		return nil, err
	}
	b, err := s.parseNodeRef(y, hi, false)
	if err != nil {
		return nil, err
	}
	var out []int
	for i := int(a); i <= int(b); i++ {
		out = append(out, i)
	}
	return out, nil
}
