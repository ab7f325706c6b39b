package sim

import (
	"testing"
	"time"
)

// Tests of the transport model (network.go): nodes learn of a fault only
// as a real daemon would.

// pair builds a world of two linked nodes (5 ms apart) with these timers
// and runs it until it has converged at 10 s.
func pair(t *testing.T, timers Timers) *World {
	t.Helper()
	w := New(Config{Seed: 1, Timers: timers, LAN: LinkClass{Latency: Fixed(5 * time.Millisecond)}, ProbeStep: 10 * time.Millisecond})
	if err := w.Build(Line(2)); err != nil {
		t.Fatal(err)
	}
	w.MeasureRecovery()
	w.RunUntil(10 * time.Second)
	if !w.Converged() || len(w.LiveLinks()[0]) != 1 {
		t.Fatalf("the pair did not link: %v", w.Unreachable(5))
	}
	return w
}

// fault returns the measured result of the fault described desc.
func fault(t *testing.T, w *World, desc string) FaultResult {
	t.Helper()
	for _, f := range w.Recoveries() {
		if f.Desc == desc {
			return f
		}
	}
	t.Fatalf("no fault %q measured: %+v", desc, w.Recoveries())
	return FaultResult{}
}

// TestSilentCutTellsNobody: after a silent cut each end fails the link by
// its own heartbeats (the other's FIN is lost in the cut too), no sooner
// than its detection time allows; with heartbeats off, the links stay up
// until the transport's user timeout aborts them, 15 s after the first
// data left unacknowledged.
func TestSilentCutTellsNobody(t *testing.T) {
	w := pair(t, Timers{})
	dead := w.Config().Timers.nodeConfig()
	w.At(11*time.Second+100*time.Millisecond, func() { _ = w.Cut(0, 1) })
	w.RunUntil(20 * time.Second)
	f := fault(t, w, "cut n0-n1")
	lo := dead.DeadAfter - dead.HeartbeatInterval - 2*5*time.Millisecond
	if !f.Detected || f.DetectIn < lo || f.DetectIn > dead.DeadAfter {
		t.Errorf("link dropped %v after the cut (detected %v), want between %v and %v", f.DetectIn, f.Detected, lo, dead.DeadAfter)
	}
	for i := range 2 {
		if st := w.NodeStats(i); st.LivenessFailures != 1 || st.UserTimeouts != 0 {
			t.Errorf("n%d: %+v, want one liveness failure (nobody told it)", i, st)
		}
	}

	w = pair(t, Timers{Heartbeat: -1, LinkTimeout: time.Minute})
	w.At(11*time.Second+100*time.Millisecond, func() { _ = w.Cut(0, 1) })
	w.RunUntil(25 * time.Second)
	if links := w.LiveLinks(); len(links[0]) != 0 {
		t.Fatalf("links over a cut path work: %v", links)
	}
	if st := w.NodeStats(0); st.UserTimeouts != 0 || w.Node(0).Links() == nil {
		t.Errorf("n0 before the user timeout: %+v, links %v; want its link still held", st, w.Node(0).Links())
	}
	w.RunUntil(40 * time.Second)
	f = fault(t, w, "cut n0-n1")
	if !f.Detected || f.DetectIn < 15*time.Second || f.DetectIn > 20*time.Second {
		t.Errorf("without heartbeats the link was dropped %v after the cut (detected %v), want by the user timeout, after 15-20 s", f.DetectIn, f.Detected)
	}
	if st := w.NodeStats(0).UserTimeouts + w.NodeStats(1).UserTimeouts; st == 0 {
		t.Errorf("no user timeout: %+v %+v", w.NodeStats(0), w.NodeStats(1))
	}
}

// TestShortCutRetransmits: a cut shorter than the detection time loses
// nothing: TCP keeps what was sent and delivers it at the next
// retransmission after the heal, and the link stays up.
func TestShortCutRetransmits(t *testing.T) {
	w := pair(t, Timers{})
	for k := range 20 {
		w.At(11*time.Second+time.Duration(k)*20*time.Millisecond, func() { w.Unicast(0, 1) })
	}
	w.At(11*time.Second+50*time.Millisecond, func() { _ = w.Cut(0, 1) })
	w.At(11*time.Second+250*time.Millisecond, func() { w.Heal(0, 1) })
	w.RunUntil(20 * time.Second)
	// Frames sent while the link did not work are not expected (Stray
	// counts their deliveries), but they arrive.
	if fr := w.Frames(); fr.Lost != 0 || fr.Delivered+fr.Stray != 20 || fr.Duplicated != 0 {
		t.Errorf("frames %+v: want all 20 delivered once", fr)
	}
	tot := w.Totals()
	if tot.Retransmits == 0 || tot.LivenessLinks != 0 {
		t.Errorf("totals %+v: want retransmissions and no link failed", tot)
	}
}

// TestDialsAcrossACut: once the ends failed their link, their dials over
// the cut path time out (15 s, SYNs unanswered); after the heal a dial
// brings the link back, and only then.
func TestDialsAcrossACut(t *testing.T) {
	w := pair(t, Timers{})
	created := w.Totals().LinksCreated
	w.At(11*time.Second, func() { _ = w.Cut(0, 1) })
	w.At(51*time.Second, func() { w.Heal(0, 1) })
	w.RunUntil(50 * time.Second)
	if n := w.Totals().LinksCreated; n != created {
		t.Errorf("%d links created over a cut path", n-created)
	}
	if st := w.NodeStats(0); st.DialFailures < 2 {
		t.Errorf("n0 %+v: want its dials over the cut path to have failed", st)
	}
	w.RunUntil(80 * time.Second)
	f := fault(t, w, "heal n0-n1")
	if !f.LinkBack || f.LinkBackIn > 16*time.Second || !f.Recovered {
		t.Errorf("after the heal: %+v, want a dial to bring the link back within a dial timeout", f)
	}
}

// TestResetAndCrashAreTold: a reset reaches both ends one latency later;
// a crashed process's kernel closes its connections, so its peer learns
// one latency later too; a halted machine tells nobody.
func TestResetAndCrashAreTold(t *testing.T) {
	w := pair(t, Timers{})
	w.At(11*time.Second, func() { _ = w.Reset(0, 1) })
	w.At(30*time.Second, func() { w.Crash(1) })
	w.At(40*time.Second, func() { w.Restart(1) })
	w.At(60*time.Second, func() { w.Halt(1) })
	w.RunUntil(70 * time.Second)
	for desc, want := range map[string][2]time.Duration{
		"reset n0-n1": {5 * time.Millisecond, 6 * time.Millisecond},
		"crash n1":    {5 * time.Millisecond, 6 * time.Millisecond},
		"halt n1":     {500 * time.Millisecond, 750 * time.Millisecond},
	} {
		f := fault(t, w, desc)
		if !f.Detected || f.DetectIn < want[0] || f.DetectIn > want[1] {
			t.Errorf("%s: link dropped after %v (detected %v), want %v..%v", desc, f.DetectIn, f.Detected, want[0], want[1])
		}
	}
	if r := fault(t, w, "restart n1"); !r.LinkBack || r.LinkBackIn > 20*time.Millisecond {
		t.Errorf("restart: %+v, want the node to dial its neighbour at once", r)
	}
}

// TestFaultCountsTheLinksItTouches: a crash touches the links its node
// holds; a crash of a node whose only neighbour is already down touches
// none, so no link can drop (the expectations skip it), and a crash of a
// node that is down is no fault at all.
func TestFaultCountsTheLinksItTouches(t *testing.T) {
	w := pair(t, Timers{})
	w.At(11*time.Second, func() { w.Crash(1) })
	w.At(11500*time.Millisecond, func() { w.Crash(0) })
	w.RunUntil(12 * time.Second)
	if f := fault(t, w, "crash n1"); f.Links != 1 || !f.Detected {
		t.Errorf("crash n1 touched %d links (detected %v), want its one link, dropped", f.Links, f.Detected)
	}
	if f := fault(t, w, "crash n0"); f.Links != 0 || f.Detected {
		t.Errorf("crash n0, alone, touched %d links (detected %v), want none", f.Links, f.Detected)
	}
}

// TestLossDelaysNothingLost: over a lossy link every frame arrives, in
// order, some after retransmission timeouts.
func TestLossDelaysNothingLost(t *testing.T) {
	w := pair(t, Timers{Heartbeat: -1})
	w.At(10*time.Second, func() { _ = w.Loss(0, 1, 0.3) })
	for k := range 100 {
		w.At(11*time.Second+time.Duration(k)*50*time.Millisecond, func() { w.Unicast(0, 1) })
	}
	w.RunUntil(30 * time.Second)
	if fr := w.Frames(); fr.Lost != 0 || fr.Delivered != 100 || fr.Duplicated != 0 {
		t.Errorf("frames %+v: want all 100 delivered once", fr)
	}
	if w.Totals().Retransmits == 0 {
		t.Errorf("no retransmission at 30 %% loss")
	}
}

// TestLossStepsDoNotDouble: each loss in a row of a segment costs one
// RTO, not a doubling one (lossDelay): a segment lost at every try waits
// out the user timeout in steps of max(200 ms, four latencies), 75 of
// them in 15 s, where doubling steps would have overshot to 25.4 s.
func TestLossStepsDoNotDouble(t *testing.T) {
	w := New(Config{Seed: 1})
	c := &conn{e: &edge{loss: 1}, lat: int64(50 * time.Millisecond)}
	c.dir[0].segAt = -1 // no segment written yet at this instant
	if got := w.net.lossDelay(c, 0, 100); got != int64(15*time.Second) {
		t.Fatalf("delay of a segment lost at every try: %v, want 15s (75 steps of 200ms)", time.Duration(got))
	}
	// The next message of the same instant shares the segment: no delay
	// of its own (it waits behind the first through the direction's last
	// arrival).
	if got := w.net.lossDelay(c, 0, 100); got != 0 {
		t.Fatalf("a message that joins the segment: delay %v, want 0", time.Duration(got))
	}
}

// TestStallBacklog: a paused node takes what arrived when it resumes; a
// pause shorter than the detection time fails no link, a longer one
// fails them at its neighbours.
func TestStallBacklog(t *testing.T) {
	w := pair(t, Timers{})
	for k := range 10 {
		w.At(11*time.Second+time.Duration(k)*20*time.Millisecond, func() { w.Unicast(0, 1) })
	}
	w.At(11*time.Second, func() { w.Stall(1, 300*time.Millisecond) })
	w.RunUntil(20 * time.Second)
	if fr, tot := w.Frames(), w.Totals(); fr.Delivered+fr.Stray != 10 || fr.Lost != 0 || tot.LivenessLinks != 0 {
		t.Errorf("after a 300 ms stall: frames %+v, %d links failed; want all 10 delivered and none failed", fr, tot.LivenessLinks)
	}
	w.At(21*time.Second, func() { w.Stall(1, 3*time.Second) })
	w.RunUntil(30 * time.Second)
	if tot := w.Totals(); tot.LivenessLinks != 1 {
		t.Errorf("after a 3 s stall %d links failed by liveness, want 1", tot.LivenessLinks)
	}
	if !w.Converged() {
		t.Errorf("not relinked after the stall: %v", w.Unreachable(4))
	}
}

// TestNodeRandomness: each node's random source comes from the seed and
// its index alone, so adding a node does not change another's.
func TestNodeRandomness(t *testing.T) {
	draws := func(nodes int) [][]uint64 {
		w := New(Config{Seed: 3})
		for range nodes {
			w.AddNode(NodeOptions{Down: true})
		}
		out := make([][]uint64, nodes)
		for i := range out {
			for range 4 {
				out[i] = append(out[i], w.cluster.nodes[i].rng.Uint64())
			}
		}
		return out
	}
	a, b := draws(3), draws(4)
	for i := range a {
		for k := range a[i] {
			if a[i][k] != b[i][k] {
				t.Fatalf("node %d draws %v in a world of 3, %v in a world of 4", i, a[i], b[i])
			}
		}
	}
	if a[0][0] == a[1][0] {
		t.Fatalf("nodes 0 and 1 draw the same: %v %v", a[0], a[1])
	}
}

// handshakeWorld is two nodes on one edge of fixed latency lat, both of
// which dial the other at their start (over QUIC with datagrams).
func handshakeWorld(datagrams bool, lat time.Duration) *World {
	w := New(Config{Seed: 1, Datagrams: datagrams, LAN: LinkClass{Latency: Fixed(lat)}})
	w.AddNode(NodeOptions{})
	w.AddNode(NodeOptions{})
	w.AddEdge(0, 1, false)
	return w
}

// upTimes runs w to until, a millisecond at a time, and returns when the
// first dialer's end of a link came up and when the first acceptor's
// did (its node told). It looks at the sockets only: World.Links would
// step the nodes.
func upTimes(w *World, until time.Duration) (dialer, acceptor time.Duration) {
	for now := time.Duration(0); now <= until; now += time.Millisecond {
		w.RunUntil(now)
		for i := range 2 {
			for id, c := range w.cluster.nodes[i].ends {
				switch k := endOf(c, i, id); {
				case k == 0 && dialer == 0:
					dialer = now
				case k == 1 && !c.end[1].accepting && acceptor == 0:
					acceptor = now
				}
			}
		}
	}
	return dialer, acceptor
}

// TestHandshakeTimes: a dial's link comes up at the dialer when the
// acceptor's handshake flight is back (TCP and TLS 1.3: four one-way
// latencies after the first SYN; QUIC: two) and at the acceptor one
// latency later, when the dialer's last flight arrives; a pause of both
// in between holds the handshake until they resume.
func TestHandshakeTimes(t *testing.T) {
	const lat = 10 * time.Millisecond
	tlsDialer, tlsAcceptor := upTimes(handshakeWorld(false, lat), 300*time.Millisecond)
	quicDialer, quicAcceptor := upTimes(handshakeWorld(true, lat), 300*time.Millisecond)
	// Both dials start at the same instant, whatever the transport.
	if tlsDialer == 0 || tlsDialer-quicDialer != 2*lat {
		t.Errorf("dialer up at %v over TLS and %v over QUIC, want two latencies apart (4 and 2 after the first packet)", tlsDialer, quicDialer)
	}
	if tlsAcceptor-tlsDialer != lat || quicAcceptor-quicDialer != lat {
		t.Errorf("acceptor up %v after the dialer over TLS, %v over QUIC; want one latency, %v", tlsAcceptor-tlsDialer, quicAcceptor-quicDialer, lat)
	}
	// Both paused from a millisecond before the dialer would be up, for
	// 20 ms: the dialer's half ends one latency after they resume (the
	// acceptor sends its flight then), the acceptor's one more later.
	w := handshakeWorld(false, lat)
	resume := tlsDialer - time.Millisecond + 20*time.Millisecond
	w.At(tlsDialer-time.Millisecond, func() { w.Stall(0, 20*time.Millisecond); w.Stall(1, 20*time.Millisecond) })
	if d, a := upTimes(w, 300*time.Millisecond); d != resume+lat || a != resume+2*lat {
		t.Errorf("paused: dialer up at %v, acceptor at %v; want %v and %v", d, a, resume+lat, resume+2*lat)
	}
}

// TestAcceptorGivesUp: a dialer that halts just after its end of a link
// came up never sends its last handshake flight; the acceptor, whose node
// never knew of the link, closes its socket after its handshake timeout
// instead of holding it for good.
func TestAcceptorGivesUp(t *testing.T) {
	const lat = 10 * time.Millisecond
	up, _ := upTimes(handshakeWorld(false, lat), 300*time.Millisecond)
	w := handshakeWorld(false, lat)
	// Both dial; each dialer's end comes up at up, each acceptor's one
	// latency later. Node 0 halts in between.
	w.At(up+5*time.Millisecond, func() { w.Halt(0) })
	w.RunUntil(up + 6*time.Millisecond)
	accepting := func() int {
		n := 0
		for id, c := range w.cluster.nodes[1].ends {
			if k := endOf(c, 1, id); c.end[k].accepting {
				n++
			}
		}
		return n
	}
	if got := accepting(); got != 1 {
		t.Fatalf("node 1 has %d sockets waiting for a handshake's end after node 0 halted, want 1", got)
	}
	w.RunUntil(up + acceptTimeout + time.Millisecond)
	if got := accepting(); got != 0 {
		t.Errorf("node 1 still holds %d sockets whose handshake never ended, after the accept timeout", got)
	}
}
