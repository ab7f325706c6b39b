package sim

import (
	"testing"
	"time"
)

// pairWith is pair with Config.Datagrams set as asked.
func pairWith(t *testing.T, timers Timers, datagrams bool) *World {
	t.Helper()
	w := New(Config{Seed: 1, Timers: timers, LAN: LinkClass{Latency: Fixed(5 * time.Millisecond)},
		ProbeStep: 10 * time.Millisecond, Datagrams: datagrams})
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

// lossyFrames sends 100 unicast frames n0 → n1, one every 50 ms, over a
// link losing 30 % of its packets, and returns the frame counts and how
// many frames arrived later than one latency after they were sent (a
// retransmission held them up).
func lossyFrames(t *testing.T, datagrams bool) (FrameStats, int, Totals) {
	t.Helper()
	w := pairWith(t, Timers{Heartbeat: -1}, datagrams)
	w.At(10*time.Second, func() { _ = w.Loss(0, 1, 0.3) })
	// The frames n1 wrote to its TAP, 6 ms after each send: by then a
	// frame that was not held up has arrived (the latency is 5 ms).
	var onTime []uint64
	for k := range 100 {
		at := 11*time.Second + time.Duration(k)*50*time.Millisecond
		w.At(at, func() { w.Unicast(0, 1) })
		w.At(at+6*time.Millisecond, func() { onTime = append(onTime, w.Node(1).Stats().FramesToTAP) })
	}
	w.RunUntil(30 * time.Second)
	fr := w.Frames()
	// A frame that arrived after its check, but before the next send's
	// check, raised the count between checks by more than one.
	late := 0
	prev := uint64(0)
	if len(onTime) > 0 {
		prev = onTime[0]
	}
	for k := 1; k < len(onTime); k++ {
		if d := onTime[k] - prev; d > 1 {
			late += int(d - 1)
		}
		prev = onTime[k]
	}
	late += int(w.Node(1).Stats().FramesToTAP - prev)
	return fr, late, w.Totals()
}

// TestDatagramLossIsLoss: over a lossy link a stream delivers every frame,
// some after retransmission timeouts (head-of-line blocking); datagrams
// deliver a frame one latency after it left or never, with no
// retransmission, and never twice.
func TestDatagramLossIsLoss(t *testing.T) {
	fr, late, tot := lossyFrames(t, false)
	if fr.Delivered != 100 || fr.Lost != 0 || late == 0 || tot.Datagrams != 0 {
		t.Errorf("stream: frames %+v, %d late, %d datagrams; want all 100 delivered, some late, no datagram", fr, late, tot.Datagrams)
	}
	fr, late, tot = lossyFrames(t, true)
	if fr.Duplicated != 0 || late != 0 || fr.Delivered+fr.Lost != 100 {
		t.Errorf("datagram: frames %+v, %d late; want each frame on time or lost, none twice", fr, late)
	}
	// 30 % of 100, binomial: 15 to 45 with near certainty.
	if tot.Datagrams != 100 || tot.DatagramsLost < 15 || tot.DatagramsLost > 45 || fr.Lost != tot.DatagramsLost {
		t.Errorf("datagram: %d sent, %d lost; frames lost %d; want 100 sent and about 30 lost, all counted", tot.Datagrams, tot.DatagramsLost, fr.Lost)
	}
}

// TestDatagramSilentCut: with datagrams a silent cut is found exactly as
// over TCP, by the heartbeats riding the stream, no sooner than the
// detection time allows.
func TestDatagramSilentCut(t *testing.T) {
	w := pairWith(t, Timers{}, true)
	dead := w.Config().Timers.nodeConfig()
	for k := range 40 {
		w.At(11*time.Second+time.Duration(k)*10*time.Millisecond, func() { w.Unicast(0, 1) })
	}
	w.At(11*time.Second+100*time.Millisecond, func() { _ = w.Cut(0, 1) })
	w.RunUntil(20 * time.Second)
	f := fault(t, w, "cut n0-n1")
	lo := dead.DeadAfter - dead.HeartbeatInterval - 2*5*time.Millisecond
	if !f.Detected || f.DetectIn < lo || f.DetectIn > dead.DeadAfter {
		t.Errorf("link dropped %v after the cut (detected %v), want between %v and %v", f.DetectIn, f.Detected, lo, dead.DeadAfter)
	}
	if tot := w.Totals(); tot.DatagramsLost == 0 {
		t.Errorf("no datagram lost in the cut: %+v", tot)
	}
}
