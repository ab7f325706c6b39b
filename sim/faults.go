package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds the faults: the world's fault-injection methods (cut,
// one-way cut, reset, loss, partition, crash, halt, stall, restart, clock
// skew and jump), the typed faults of a scenario's schedule, parsed once
// when the scenario is loaded, and how each one is applied when it fires.
// Applying a fault uses only the World's exported methods.
//
// Every fault is one a real network or process produces, and nodes learn
// of it only as a real daemon would: a silent path tells them nothing
// (their heartbeats or the transport's user timeout find it), a reset or
// a closed connection reaches them one latency later, a refused or
// unanswered dial fails.

// Crash stops node i's process: it loses all state but its peer cache
// and id floor, and its kernel closes its connections at once (each peer
// sees the end of the stream one latency later).
func (w *World) Crash(i int) {
	if !w.Up(i) {
		return
	}
	r := w.measure.fault("crash "+w.Name(i), "crash")
	w.net.watchNode(i, r)
	w.cluster.crash(i)
}

// Halt makes node i's machine vanish (a power cut, a kernel panic): the
// process stops as in a crash, but nothing is sent; every path to and
// from the machine drops everything until Restart, and its peers learn
// only by their own liveness or timeouts.
func (w *World) Halt(i int) {
	if !w.Up(i) {
		return
	}
	r := w.measure.fault("halt "+w.Name(i), "halt")
	w.net.watchNode(i, r)
	w.cluster.halt(i)
}

// Restart starts node i again from its persisted peer cache and id
// floor (after a halt, the machine comes back first). It dials its seeds
// and cached peers as its connect policy says.
func (w *World) Restart(i int) {
	if w.Up(i) {
		return
	}
	r := w.measure.fault("restart "+w.Name(i), "restart")
	w.cluster.nodes[i].restartWatch = r + 1
	w.cluster.restart(i)
}

// Stall pauses node i's process for d (SIGSTOP, a long GC pause, a VM
// migrated): its links stay up and its kernel takes what arrives, but it
// processes nothing, sends nothing and runs no timer until it resumes,
// when it takes the backlog in order.
func (w *World) Stall(i int, d time.Duration) {
	if !w.Up(i) || d <= 0 {
		return
	}
	r := w.measure.fault(fmt.Sprintf("stall %s for %v", w.Name(i), d), "stall")
	w.net.watchNode(i, r)
	if w.cluster.stall(i, d) {
		w.After(d, func() { w.measure.fault("resume "+w.Name(i), "resume") })
	}
}

// Skew sets node i's clock offset from virtual time to d.
func (w *World) Skew(i int, d time.Duration) { w.cluster.setOffset(i, d) }

// Jump moves node i's clock by d (negative: back).
func (w *World) Jump(i int, d time.Duration) {
	w.cluster.setOffset(i, w.Offset(i)+d)
	w.measure.fault(fmt.Sprintf("clock jump %s %v", w.Name(i), d), "jump")
}

// Cut cuts the edge between a and b silently, as a cable cut or a
// middlebox that drops everything: messages over it vanish both ways and
// neither end is told. Until Heal no dial over it succeeds.
func (w *World) Cut(a, b int) error {
	e, err := w.net.edgeFor(a, b)
	if err != nil || e.cut {
		return err
	}
	r := w.measure.fault(fmt.Sprintf("cut %s-%s", w.Name(a), w.Name(b)), "cut")
	w.net.watch(e, r)
	e.cut = true
	w.trace.record(traceRec{kind: evCut, node: int32(a), peer: int32(b)})
	w.check.lost()
	w.net.refreshEdge(e)
	return nil
}

// Heal repairs the edge between a and b: its paths pass packets again.
// What TCP kept on links that are still open goes out at the next
// retransmission; new links come only from the nodes' dials.
func (w *World) Heal(a, b int) {
	e, ok := w.net.edges[pairKey(a, b)]
	if !ok || !e.cut {
		return
	}
	e.cut = false
	w.trace.record(traceRec{kind: evHeal, node: int32(a), peer: int32(b)})
	r := w.measure.fault(fmt.Sprintf("heal %s-%s", w.Name(a), w.Name(b)), "heal")
	e.healWatch = r + 1
	w.net.refreshEdge(e)
}

// OneWay silences the direction from a to b of their edge, the other
// direction still passing packets. Over TCP the acknowledgements of b's
// data go from a to b too, so b's data soon stalls as well.
func (w *World) OneWay(a, b int) error {
	e, err := w.net.edgeFor(a, b)
	if err != nil || e.oneWay[e.dirOf(a)] {
		return err
	}
	r := w.measure.fault(fmt.Sprintf("one-way cut %s->%s", w.Name(a), w.Name(b)), "one_way")
	w.net.watch(e, r)
	e.oneWay[e.dirOf(a)] = true
	w.trace.record(traceRec{kind: evCut, node: int32(a), peer: int32(b), aux: 1})
	w.check.lost()
	w.net.refreshEdge(e)
	return nil
}

// HealOneWay ends a one-way cut from a to b.
func (w *World) HealOneWay(a, b int) {
	e, ok := w.net.edges[pairKey(a, b)]
	if !ok || !e.oneWay[e.dirOf(a)] {
		return
	}
	e.oneWay[e.dirOf(a)] = false
	w.trace.record(traceRec{kind: evHeal, node: int32(a), peer: int32(b), aux: 1})
	r := w.measure.fault(fmt.Sprintf("one-way cut %s->%s healed", w.Name(a), w.Name(b)), "heal")
	e.healWatch = r + 1
	w.net.refreshEdge(e)
}

// Reset resets every link over the edge between a and b, as a killed
// process's kernel or a firewall's reset does: both ends learn one
// latency later. The edge stays usable; new links come from the nodes'
// dials.
func (w *World) Reset(a, b int) error {
	e, err := w.net.edgeFor(a, b)
	if err != nil {
		return err
	}
	r := w.measure.fault(fmt.Sprintf("reset %s-%s", w.Name(a), w.Name(b)), "reset")
	w.net.watch(e, r)
	w.trace.record(traceRec{kind: evReset, node: int32(a), peer: int32(b)})
	for _, c := range slices.Clone(e.conns) {
		w.net.resetConn(c)
	}
	return nil
}

// Loss makes the edge between a and b lose that fraction of its
// segments, each way (0 ends it). Over TCP a lost segment is not a lost
// message: it arrives after a retransmission timeout (max(200 ms, four
// latencies)), one more for each loss of its retransmission (no doubling:
// see lossDelay), and every later message of that direction waits behind
// it.
func (w *World) Loss(a, b int, rate float64) error {
	e, err := w.net.edgeFor(a, b)
	if err != nil {
		return err
	}
	switch {
	case rate > 0 && e.loss == 0:
		w.net.lossy++
	case rate <= 0 && e.loss > 0:
		w.net.lossy--
	}
	old := e.loss
	e.loss = max(rate, 0)
	w.check.lost()
	if rate > 0 {
		w.measure.fault(fmt.Sprintf("loss %g%% %s-%s", 100*rate, w.Name(a), w.Name(b)), "loss")
	} else if old > 0 {
		w.measure.fault(fmt.Sprintf("loss %s-%s ends", w.Name(a), w.Name(b)), "heal")
	}
	return nil
}

// Partition splits the nodes: packets between nodes in different groups
// are dropped, silently; nodes in no group form one more group.
func (w *World) Partition(groups [][]int) {
	r := w.measure.fault(fmt.Sprintf("partition into %d groups", len(groups)+1), "partition")
	w.net.partition(groups, r)
	w.check.lost()
}

// HealPartition ends a partition.
func (w *World) HealPartition() {
	w.net.healPartition()
	w.measure.fault("partition healed", "heal")
}

// NodeRef names a node of a scenario: its index, RandomNode, or
// RelayNode.
type NodeRef int

// Node references that are not an index.
const (
	// RandomNode is a node drawn when the fault or traffic fires.
	RandomNode NodeRef = -1
	// RelayNode is the next hop of one node's route to another when the
	// fault fires (the fault's Via): the relay their traffic crosses.
	RelayNode NodeRef = -2
)

// String formats r as "n3", "random" or "relay".
func (r NodeRef) String() string {
	switch r {
	case RandomNode:
		return "random"
	case RelayNode:
		return "relay"
	}
	return fmt.Sprintf("n%d", int(r))
}

// Route names one node's route to another: From's traffic toward To.
type Route struct{ From, To int }

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
	// For undoes the fault that long after it fired (heal, restart, end
	// the loss, resume the stalled node, set the clock back, heal the
	// partition); 0: never. A stall needs it: it is the pause.
	For time.Duration
}

// A Fault is one action of a fault schedule: a value parsed once, when
// the scenario is loaded, and applied to the world each time it fires.
// The types are CutFault, OneWayFault, ResetFault, LossFault,
// PartitionFault, CrashFault, HaltFault, StallFault, SkewFault and
// JumpFault.
type Fault interface {
	// Action is the scenario's word for the fault: cut, one_way, reset,
	// loss, partition, crash, halt, stall, skew or jump.
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

// EdgePick says how an EdgeRef picks its edge.
type EdgePick uint8

// Edge picks.
const (
	EdgePair      EdgePick = iota + 1 // the edge between A and B
	EdgeRandom                        // a random edge, not cut, that carries a link
	EdgeRandomWAN                     // a random WAN edge not cut
	EdgeWANIndex                      // the K-th WAN edge, in creation order
	EdgeRoute                         // the link of A's route to B: from A to its next hop
)

// EdgeRef names the edge a fault hits, oriented: from A to B for
// EdgePair, from A to its next hop for EdgeRoute, from the lower index
// for the others.
type EdgeRef struct {
	Pick EdgePick
	A, B int // EdgePair, EdgeRoute
	K    int // EdgeWANIndex
}

// String formats r as the scenario writes it.
func (r EdgeRef) String() string {
	switch r.Pick {
	case EdgePair:
		return fmt.Sprintf("n%d-n%d", r.A, r.B)
	case EdgeRandom:
		return "random"
	case EdgeRandomWAN:
		return "wan"
	case EdgeWANIndex:
		return fmt.Sprintf("wan:%d", r.K)
	case EdgeRoute:
		return fmt.Sprintf("route:n%d-n%d", r.A, r.B)
	}
	return "?"
}

// pick resolves r now into an oriented pair of nodes; a pair or route
// that does not exist is a violation of the scenario.
func (r EdgeRef) pick(w *World, env faultEnv, action string) (a, b int, ok bool) {
	switch r.Pick {
	case EdgePair:
		if _, found := w.EdgeState(r.A, r.B); !found && !w.net.allPair {
			w.ReportViolation("scenario", fmt.Sprintf("%s:%d: %s n%d-n%d: no such edge", env.file, env.line, action, r.A, r.B))
			return 0, 0, false
		}
		return r.A, r.B, true
	case EdgeRoute:
		hop, found := w.NextHop(r.A, r.B)
		if !found {
			w.ReportViolation("scenario", fmt.Sprintf("%s:%d: %s route:n%d-n%d: %s has no route to %s at %v",
				env.file, env.line, action, r.A, r.B, w.Name(r.A), w.Name(r.B), w.Elapsed()))
			return 0, 0, false
		}
		return r.A, hop, true
	case EdgeWANIndex:
		n := 0
		for _, x := range w.EdgeStates() {
			if x.WAN {
				if n == r.K {
					return x.A, x.B, true
				}
				n++
			}
		}
	case EdgeRandom, EdgeRandomWAN:
		var cands []EdgeState
		for _, x := range w.EdgeStates() {
			if !x.Cut && (r.Pick == EdgeRandom && x.Carrying || r.Pick == EdgeRandomWAN && x.WAN) {
				cands = append(cands, x)
			}
		}
		if len(cands) > 0 {
			x := cands[w.Rand().IntN(len(cands))]
			return x.A, x.B, true
		}
	}
	return 0, 0, false
}

// CutFault cuts an edge silently (World.Cut); For heals it.
type CutFault struct{ EdgeRef }

// Action returns "cut".
func (CutFault) Action() string { return "cut" }

func (f CutFault) apply(w *World, env faultEnv, undo time.Duration) {
	a, b, ok := f.pick(w, env, "cut")
	if !ok {
		return
	}
	if e, found := w.EdgeState(a, b); found && e.Cut {
		return
	}
	_ = w.Cut(a, b)
	if undo > 0 {
		w.After(undo, func() { w.Heal(a, b) })
	}
}

// OneWayFault silences one direction of an edge, from its first node to
// its second (World.OneWay); For heals it.
type OneWayFault struct{ EdgeRef }

// Action returns "one_way".
func (OneWayFault) Action() string { return "one_way" }

func (f OneWayFault) apply(w *World, env faultEnv, undo time.Duration) {
	a, b, ok := f.pick(w, env, "one_way")
	if !ok {
		return
	}
	_ = w.OneWay(a, b)
	if undo > 0 {
		w.After(undo, func() { w.HealOneWay(a, b) })
	}
}

// ResetFault resets the links over an edge (World.Reset).
type ResetFault struct{ EdgeRef }

// Action returns "reset".
func (ResetFault) Action() string { return "reset" }

func (f ResetFault) apply(w *World, env faultEnv, _ time.Duration) {
	if a, b, ok := f.pick(w, env, "reset"); ok {
		_ = w.Reset(a, b)
	}
}

// LossFault makes an edge lose a fraction Rate of its segments each way
// (World.Loss); For ends the loss.
type LossFault struct {
	EdgeRef
	Rate float64
}

// Action returns "loss".
func (LossFault) Action() string { return "loss" }

func (f LossFault) apply(w *World, env faultEnv, undo time.Duration) {
	a, b, ok := f.pick(w, env, "loss")
	if !ok {
		return
	}
	_ = w.Loss(a, b, f.Rate)
	if undo > 0 {
		w.After(undo, func() { _ = w.Loss(a, b, 0) })
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

// pickUp resolves a node reference to a node that is up now. The random
// node is drawn even for another reference, so that the schedule's
// random source is used as it always was and seeds replay the same runs.
func pickUp(w *World, env faultEnv, action string, r NodeRef, via Route) (int, bool) {
	i := w.RandomUp()
	switch r {
	case RandomNode:
	case RelayNode:
		hop, ok := w.NextHop(via.From, via.To)
		if !ok {
			w.ReportViolation("scenario", fmt.Sprintf("%s:%d: %s relay:n%d-n%d: %s has no route to %s at %v",
				env.file, env.line, action, via.From, via.To, w.Name(via.From), w.Name(via.To), w.Elapsed()))
			return 0, false
		}
		i = hop
	default:
		i = int(r)
	}
	return i, i >= 0 && w.Up(i)
}

// CrashFault crashes a node that is up (World.Crash); For restarts it.
type CrashFault struct {
	Node NodeRef
	Via  Route // RelayNode: the route whose next hop crashes
}

// Action returns "crash".
func (CrashFault) Action() string { return "crash" }

func (f CrashFault) apply(w *World, env faultEnv, undo time.Duration) {
	i, ok := pickUp(w, env, "crash", f.Node, f.Via)
	if !ok {
		return
	}
	w.Crash(i)
	if undo > 0 {
		w.After(undo, func() { w.Restart(i) })
	}
}

// HaltFault makes a node's machine vanish (World.Halt); For brings it
// back (a reboot: World.Restart).
type HaltFault struct {
	Node NodeRef
	Via  Route // RelayNode: the route whose next hop halts
}

// Action returns "halt".
func (HaltFault) Action() string { return "halt" }

func (f HaltFault) apply(w *World, env faultEnv, undo time.Duration) {
	i, ok := pickUp(w, env, "halt", f.Node, f.Via)
	if !ok {
		return
	}
	w.Halt(i)
	if undo > 0 {
		w.After(undo, func() { w.Restart(i) })
	}
}

// StallFault pauses a node's process for the entry's For (World.Stall).
type StallFault struct {
	Node NodeRef
	Via  Route // RelayNode: the route whose next hop stalls
}

// Action returns "stall".
func (StallFault) Action() string { return "stall" }

func (f StallFault) apply(w *World, env faultEnv, undo time.Duration) {
	if i, ok := pickUp(w, env, "stall", f.Node, f.Via); ok {
		w.Stall(i, undo)
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

// faultActions are the scenario's words for faults, in the order errors
// list them.
var faultActions = []string{"cut", "one_way", "reset", "loss", "partition", "crash", "halt", "stall", "skew", "jump", "forge", "revoke"}

// parseFault parses one entry of the fault list into a typed fault.
func (s *Scenario) parseFault(y ynode) (FaultSpec, error) {
	f, order, err := y.fields(append(slices.Clone(faultActions), "at", "every", "until", "count", "for", "by", "rate", "as")...)
	if err != nil {
		return FaultSpec{}, err
	}
	fs := FaultSpec{Line: y.line()}
	var actions []string
	for _, k := range order {
		if slices.Contains(faultActions, k) {
			actions = append(actions, k)
		}
	}
	if len(actions) != 1 {
		return fs, y.errf("want exactly one of %s; got %v", strings.Join(faultActions, ", "), actions)
	}
	action := actions[0]
	an := f[action]
	if err := setDurs(f, durField{"at", &fs.At}, durField{"every", &fs.Every}, durField{"until", &fs.Until},
		durField{"for", &fs.For}); err != nil {
		return fs, err
	}
	if err := setInts(f, intField{"count", &fs.Count}); err != nil {
		return fs, err
	}
	var by time.Duration
	if v, ok := f["by"]; ok {
		if action != "skew" && action != "jump" {
			return fs, v.errf("by is for skew and jump")
		}
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
	if v, ok := f["rate"]; ok && action != "loss" {
		return fs, v.errf("rate is for loss")
	}
	if v, ok := f["as"]; ok && action != "forge" {
		return fs, v.errf("as is for forge")
	}
	switch action {
	case "cut", "one_way", "reset", "loss":
		ref, err := s.parseEdgeRef(an)
		if err != nil {
			return fs, err
		}
		switch action {
		case "cut":
			fs.Fault = CutFault{ref}
		case "one_way":
			fs.Fault = OneWayFault{ref}
		case "reset":
			fs.Fault = ResetFault{ref}
		case "loss":
			v, ok := f["rate"]
			if !ok {
				return fs, y.errf("loss needs rate (a fraction like 5%% or 0.05)")
			}
			rate, err := v.float()
			if err != nil {
				return fs, err
			}
			if rate <= 0 || rate >= 1 {
				return fs, v.errf("want a rate above 0 and below 100%%, got %v", rate)
			}
			fs.Fault = LossFault{EdgeRef: ref, Rate: rate}
		}
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
		var via Route
		target := RelayNode
		if rest, ok := strings.CutPrefix(name, "relay:"); ok {
			if action == "skew" || action == "jump" || action == "forge" || action == "revoke" {
				return fs, an.errf("%s takes nK or random, got %q", action, name)
			}
			if via, err = s.parseRoute(an, rest); err != nil {
				return fs, err
			}
		} else if target, err = s.parseNodeRef(an, name, true); err != nil {
			return fs, err
		}
		switch action {
		case "revoke":
			fs.Fault = RevokeFault{Node: target}
		case "forge":
			v, ok := f["as"]
			if !ok {
				return fs, y.errf("forge needs as: the member whose MAC the forger announces (nK or random)")
			}
			as, err := v.str()
			if err != nil {
				return fs, err
			}
			victim, err := s.parseNodeRef(v, as, true)
			if err != nil {
				return fs, err
			}
			fs.Fault = ForgeFault{Node: target, Victim: victim}
		case "crash":
			fs.Fault = CrashFault{Node: target, Via: via}
		case "halt":
			fs.Fault = HaltFault{Node: target, Via: via}
		case "stall":
			if fs.For <= 0 {
				return fs, y.errf("stall needs for: how long the process is paused")
			}
			fs.Fault = StallFault{Node: target, Via: via}
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
	}
	if fs.At > s.Duration {
		return fs, f["at"].errf("%v is after the end of the scenario (%v)", fs.At, s.Duration)
	}
	return fs, nil
}

// parseRoute parses nA-nB: A's route to B.
func (s *Scenario) parseRoute(y ynode, t string) (Route, error) {
	a, b, ok := strings.Cut(t, "-")
	if !ok {
		return Route{}, y.errf("want route:nA-nB or relay:nA-nB (A's route to B), got %q", t)
	}
	na, err := s.parseNodeRef(y, a, false)
	if err != nil {
		return Route{}, err
	}
	nb, err := s.parseNodeRef(y, b, false)
	if err != nil {
		return Route{}, err
	}
	if na == nb {
		return Route{}, y.errf("a route from %s to itself", a)
	}
	return Route{From: int(na), To: int(nb)}, nil
}

// parseEdgeRef parses the target of an edge fault: nA-nB, route:nA-nB,
// wan, wan:K or random.
func (s *Scenario) parseEdgeRef(y ynode) (EdgeRef, error) {
	t, err := y.str()
	if err != nil {
		return EdgeRef{}, err
	}
	if rest, ok := strings.CutPrefix(t, "route:"); ok {
		r, err := s.parseRoute(y, rest)
		if err != nil {
			return EdgeRef{}, err
		}
		return EdgeRef{Pick: EdgeRoute, A: r.From, B: r.To}, nil
	}
	if t == "random" || t == "wan" || strings.HasPrefix(t, "wan:") {
		if strings.HasPrefix(t, "wan") && s.Topology.Kind != "multisite" {
			return EdgeRef{}, y.errf("%q needs a multisite topology", t)
		}
		switch {
		case t == "random":
			return EdgeRef{Pick: EdgeRandom}, nil
		case t == "wan":
			return EdgeRef{Pick: EdgeRandomWAN}, nil
		}
		k, err := strconv.Atoi(strings.TrimPrefix(t, "wan:"))
		if err != nil || k < 0 {
			return EdgeRef{}, y.errf("want wan:K with K a number, got %q", t)
		}
		return EdgeRef{Pick: EdgeWANIndex, K: k}, nil
	}
	a, b, ok := strings.Cut(t, "-")
	if !ok {
		return EdgeRef{}, y.errf("want nA-nB, route:nA-nB, wan, wan:K or random, got %q", t)
	}
	na, err := s.parseNodeRef(y, a, false)
	if err != nil {
		return EdgeRef{}, err
	}
	nb, err := s.parseNodeRef(y, b, false)
	if err != nil {
		return EdgeRef{}, err
	}
	if s.Topology.Kind == "custom" && !s.Topology.hasEdge(int(na), int(nb)) {
		return EdgeRef{}, y.errf("the topology has no edge %s-%s", a, b)
	}
	return EdgeRef{Pick: EdgePair, A: int(na), B: int(nb)}, nil
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
