package sim

import (
	"math/rand/v2"
	"time"
)

// Start is the virtual time at which every world starts:
// 2026-01-01T00:00:00Z.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Port is the port every simulated node accepts links on.
const Port = 41744

// Config configures a World.
type Config struct {
	// Seed seeds the world's random sources: the schedule's (topology,
	// faults, traffic: World.Rand), the network's (latencies, loss) and
	// one per node (node.Config.Rand), derived from Seed and the node's
	// index, so that adding a node or a fault does not reshuffle the
	// others' randomness.
	Seed uint64
	// Timers are given to every node.
	Timers Timers
	// LAN and WAN are the link classes; edges of a topology marked WAN
	// use WAN, every other edge LAN. A zero LAN latency means 1 ms.
	LAN, WAN LinkClass
	// QueueLimit is the number of data messages a direction of a
	// bandwidth-limited link queues before it drops (node.SendQueue;
	// default 256).
	QueueLimit int
	// DialTimeout bounds a dial, TCP connect and TLS handshake together
	// (default 15 s, the daemon's). A dial over a path that drops
	// packets retries its SYN after 1 s, 3 s and 7 s, then fails.
	DialTimeout time.Duration
	// UserTimeout is the transport's TCP_USER_TIMEOUT (default 15 s, the
	// daemon's): a connection whose sent data stays unacknowledged this
	// long is aborted on that side.
	UserTimeout time.Duration
	// SeedProtocol is the fraction of edges whose links speak only the
	// seed protocol (extended=false), to exercise interoperation.
	SeedProtocol float64
	// ProbeStep is the resolution of convergence and failover
	// measurements (default 50 ms).
	ProbeStep time.Duration
	// RecoveryTimeout gives up measuring a fault's recovery (default 5 min).
	RecoveryTimeout time.Duration
	// FloodWindow is how long after it is sent a frame is expected to
	// have arrived everywhere (default 5 s).
	FloodWindow time.Duration
	// ModelRouting logs every announcement arrival for the naive
	// first-path model (CheckFirstPath). It costs memory: N² entries.
	ModelRouting bool
	// TraceSize is how many recent events are kept for failure reports
	// (default 64).
	TraceSize int
	// MaxViolations caps the violations recorded in full (default 20);
	// later ones are only counted.
	MaxViolations int
	// ClockSkew offsets each node's clock from virtual time by a value
	// drawn uniformly from [-ClockSkew, +ClockSkew] when it is added.
	ClockSkew time.Duration
	// Signatures gives every node an Authenticator (auth.go), as the
	// daemon does: announcements are signed and checked, and the
	// signatures and certificates cost on the wire what real ones do.
	Signatures bool
	// Datagrams gives the links of extended nodes the semantics of the
	// QUIC transport (datagram.go, docs/protocol.md#quic-links): frames
	// travel as datagrams, lost on a lossy path and never waiting behind
	// another message, while everything else keeps the stream model.
	// Off, every link is TLS over TCP.
	Datagrams bool
	// BusyTickDelay is how long after now a node that asks for a tick at
	// or before the current time is ticked (default 10 ms): a driver that
	// obeyed would spin. Totals.BusyTicks counts these.
	BusyTickDelay time.Duration
	// Offsets fixes the clock offset of some nodes (by index) from the
	// moment they are added; it overrides ClockSkew for them.
	Offsets map[int]time.Duration
}

func (c *Config) setDefaults() {
	if c.LAN.Latency.Min <= 0 && c.LAN.Latency.Max <= 0 {
		c.LAN.Latency = Fixed(time.Millisecond)
	}
	if c.WAN.Latency.Min <= 0 && c.WAN.Latency.Max <= 0 {
		c.WAN.Latency = c.LAN.Latency
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = 256
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 15 * time.Second
	}
	if c.UserTimeout <= 0 {
		c.UserTimeout = 15 * time.Second
	}
	if c.ProbeStep <= 0 {
		c.ProbeStep = 50 * time.Millisecond
	}
	if c.RecoveryTimeout <= 0 {
		c.RecoveryTimeout = 5 * time.Minute
	}
	if c.FloodWindow <= 0 {
		c.FloodWindow = 5 * time.Second
	}
	if c.TraceSize <= 0 {
		c.TraceSize = 64
	}
	if c.BusyTickDelay <= 0 {
		c.BusyTickDelay = 10 * time.Millisecond
	}
	if c.MaxViolations <= 0 {
		c.MaxViolations = 20
	}
}

// World is a simulated mesh: the event loop that owns the virtual clock,
// and the parts that play the roles of a VOPR-style simulator. It is not
// safe for concurrent use.
//
// Each part is a value inside the world with a pointer back to it, and
// lives in the file of its name:
//
//   - cluster (cluster.go): the nodes and the drivers that feed them
//     inputs and carry out their Ready;
//   - network (network.go): edges, and links modelled as TCP connections
//     (latency, bandwidth, in-order delivery, retransmission, the user
//     timeout, ends of stream and resets), dials, and the state of the
//     paths (cuts, one-way cuts, partitions, loss);
//   - workload (workload.go): the frames and health requests the hosts
//     behind the TAP devices send;
//   - checker (checker.go, checker_firstpath.go): the invariants,
//     checked against the world's ground truth, and the naive first-path
//     model;
//   - measurer (measure.go): convergence and failover times, and the
//     counters;
//   - tracer (trace.go): the trace hash and the recent events.
//
// The faults a scenario injects are in faults.go, the scenario layer in
// scenario.go, run.go, expect.go and report.go; it drives a world
// through its exported methods only.
type World struct {
	cfg Config
	rng *rand.Rand // the schedule's: topology, faults, traffic

	// The event loop (this file and events.go).
	now    int64 // virtual nanoseconds since Start
	seq    uint64
	queue  eventQueue
	events uint64

	cluster cluster
	net     network
	traffic workload
	forged  []*forgedRound // the forgeries made (forge.go)
	crl     simList        // the group's newest revocation list (revoke.go)
	revokes []*revokeWatch
	check   checker
	measure measurer
	trace   tracer
	totals  Totals

	// OnViolation, when set, is called at each violation (tests stop
	// the run early with it).
	OnViolation func(Violation)
}

// New returns an empty world.
func New(cfg Config) *World {
	cfg.setDefaults()
	w := &World{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x696e76706e)), // "invpn"
	}
	w.cluster.init(w)
	w.net.init(w)
	w.traffic.init(w)
	w.check.init(w)
	w.measure.init(w)
	w.trace.init(w)
	return w
}

// Config returns the world's configuration with defaults filled in.
func (w *World) Config() Config { return w.cfg }

// Rand returns the schedule's random source, for callers that build
// topologies, faults and traffic: drawing from it is part of the
// deterministic run. The network and every node have sources of their
// own.
func (w *World) Rand() *rand.Rand { return w.rng }

// Now returns the virtual time.
func (w *World) Now() time.Time { return Start.Add(time.Duration(w.now)) }

// Elapsed returns the virtual time since Start.
func (w *World) Elapsed() time.Duration { return time.Duration(w.now) }

// At schedules fn at virtual time Start+at (or now, if that is past).
// fn runs inside the event loop and may call any World method.
func (w *World) At(at time.Duration, fn func()) {
	w.push(event{at: max(int64(at), w.now), kind: evAction, fn: fn})
}

// After schedules fn d after the current virtual time.
func (w *World) After(d time.Duration, fn func()) { w.At(time.Duration(w.now)+d, fn) }

// RunUntil processes events until the virtual time reaches Start+t; the
// clock then stands at t.
func (w *World) RunUntil(t time.Duration) {
	var ev event
	for w.queue.len() > 0 && w.queue.next() <= int64(t) {
		k := w.queue.pop()
		w.now = k.at
		if slot := k.sk & slotMask; slot&directBit != 0 {
			w.events++
			w.net.deliverDirect(int(slot&^directBit), k.sk>>slotBits)
			continue
		}
		w.queue.take(int32(k.sk&slotMask), &ev)
		w.dispatch(&ev)
	}
	if int64(t) > w.now {
		w.now = int64(t)
	}
}

// RunFor runs the world for d of virtual time.
func (w *World) RunFor(d time.Duration) { w.RunUntil(time.Duration(w.now) + d) }

// push schedules ev, giving it the next sequence number.
func (w *World) push(ev event) {
	w.seq++
	w.queue.push(&ev, w.seq)
}

// dispatch runs one event: it hands it to the part whose event it is.
func (w *World) dispatch(ev *event) {
	w.events++
	switch ev.kind {
	case evTick:
		w.cluster.tick(ev)
	case evTxDone:
		w.net.txDone(ev.c, int(ev.from), ev.msg)
	case evDatagram:
		w.net.datagramArrives(ev.c, int(ev.from), ev.msg)
	case evLinkDown:
		w.net.linkDown(ev.c, int(ev.from), ev.err)
	case evDial:
		ev.fn()
	case evDialFail:
		w.net.dialFailed(ev)
	case evAck:
		w.net.acked(ev.c, int(ev.from), ev.aux)
	case evUserTimeout:
		w.net.userTimeout(ev.c, int(ev.from), ev.aux)
	case evAction:
		w.trace.record(traceRec{kind: evAction})
		ev.fn()
	}
}
