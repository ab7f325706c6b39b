package node

import (
	"errors"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// Link liveness (docs/protocol.md#link-liveness); the story with messages
// is testdata/liveness.txt.

// withHeartbeats turns liveness on (the harness's stories run without).
func withHeartbeats(_ string, c *Config) { c.HeartbeatInterval = DefaultConfig().HeartbeatInterval }

// heartbeatsOn counts the heartbeat probes name sent to peer.
func heartbeatsOn(tn *tnet, name, peer string) int {
	probes, _ := heartbeatMessages(tn, name, peer)
	return probes
}

// heartbeatMessages counts the heartbeats name sent to peer: the lone
// probes, and all of them (answers too).
func heartbeatMessages(tn *tnet, name, peer string) (probes, all int) {
	for _, m := range tn.sentOn(name, peer) {
		if h, err := wire.DecodeHeartbeat(m); err == nil {
			all++
			if h.Seq != 0 && h.Echo == 0 {
				probes++
			}
		}
	}
	return probes, all
}

func TestBusyLinkCarriesNoHeartbeats(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b")
	tn.link("a", "b")
	tn.run()
	tn.reset()
	// a sends b a frame every 100 ms for 2 s; b sends nothing but what
	// the protocol makes it send.
	for range 20 {
		tn.now = tn.now.Add(100 * time.Millisecond)
		tn.nodes["a"].FrameFromTAP(tn.now, frame(macOf("b"), macOf("a"), 1))
		tn.collect("a")
		tn.advance(0)
	}
	if n := heartbeatsOn(tn, "a", "b"); n != 0 {
		t.Errorf("a sent %d heartbeats on a link busy in its direction, want 0", n)
	}
	// b's direction was quiet: about one probe per interval (2 s / 250 ms).
	if n := heartbeatsOn(tn, "b", "a"); n < 6 || n > 9 {
		t.Errorf("b sent %d heartbeats over 2 quiet seconds, want about 8", n)
	}
	if len(tn.eventsOf("a", EventLinkDown)) != 0 || len(tn.eventsOf("b", EventLinkDown)) != 0 {
		t.Fatal("a link with heartbeats went down")
	}
}

func TestIdleLinkCostsTwoAndAQuarterHeartbeatsPerInterval(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b")
	tn.link("a", "b")
	tn.run()
	tn.reset()
	// 40 idle intervals (10 s): the end with the smaller MAC probes each
	// interval, the other answers, and probes along in every fourth
	// answer (rttSampleEvery).
	for range 200 {
		tn.advance(50 * time.Millisecond)
	}
	_, ab := heartbeatMessages(tn, "a", "b")
	_, ba := heartbeatMessages(tn, "b", "a")
	all := ab + ba
	if per := float64(all) / 40; per < 2.1 || per > 2.4 {
		t.Errorf("an idle link carried %d heartbeat messages in 40 intervals, %.2f per interval; want 2.25", all, per)
	}
	// Both ends sample the round trip: the prober every interval, the
	// answerer every fourth.
	for _, name := range []string{"a", "b"} {
		order := tn.nodes[name].links.order
		if len(order) != 1 || order[0].hb.rtt.samples < 40/rttSampleEvery-1 {
			t.Errorf("%s has too few round-trip samples of the idle link", name)
		} else {
			t.Logf("%s: %d round-trip samples", name, order[0].hb.rtt.samples)
		}
	}
}

func TestSilentLinkFailsAfterDeadAfter(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.link("a", "c")
	tn.run()
	tn.reset()
	// Everything between a and b vanishes; nobody is told.
	tn.hold = func(m inflight) bool {
		from := tn.ends[tn.ends[m.link].peer].node
		return m.to == "a" && from == "b" || m.to == "b" && from == "a"
	}
	for step := 50 * time.Millisecond; tn.now.Sub(t0) < 700*time.Millisecond; {
		tn.advance(step)
	}
	if len(tn.eventsOf("a", EventLinkDown)) != 0 {
		t.Fatal("a failed the link before DeadAfter")
	}
	tn.advance(50 * time.Millisecond)
	downs := tn.eventsOf("a", EventLinkDown)
	if len(downs) != 1 || !errors.Is(downs[0].Err, ErrLinkDead) {
		t.Fatalf("a's link-down events %v, want one for a dead link after 750 ms", downs)
	}
	if got := tn.nextHop("a", "b"); got != "c" {
		t.Fatalf("a routes b via %q after the failure, want c", got)
	}
}

func TestDetectionTimeFollowsRTT(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b")
	tn.link("a", "b")
	tn.run()
	n := tn.nodes["a"]
	l := n.links.to(macOf("b"))
	if got := n.detectAfter(l); got != 750*time.Millisecond {
		t.Fatalf("detection %v before any RTT sample, want DeadAfter 750ms", got)
	}
	l.hb.rtt.add(400 * time.Millisecond) // srtt 400 ms, rttvar 200 ms: RTO 1.2 s
	if got, want := n.detectAfter(l), 250*time.Millisecond+3*1200*time.Millisecond; got != want {
		t.Fatalf("detection %v on a 400 ms link, want %v (interval + 3 RTO)", got, want)
	}
	l.hb.rtt.add(20 * time.Second)
	if got := n.detectAfter(l); got != n.cfg.LinkTimeout {
		t.Fatalf("detection %v, want the LinkTimeout bound %v", got, n.cfg.LinkTimeout)
	}
}

func TestFlappingPeerIsHeldDown(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b")
	var want []time.Duration
	for _, w := range []time.Duration{750, 750, 1500, 3000, 6000, 6000} {
		want = append(want, w*time.Millisecond)
	}
	for i, w := range want {
		tn.hold = nil
		tn.link("a", "b")
		tn.run()
		li := tn.nodes["a"].Links()
		if len(li) != 1 || li[0].DetectAfter != w {
			t.Fatalf("link %d: %+v, want detection after %v", i+1, li, w)
		}
		// The link stalls (TCP retransmitting) for longer than that.
		tn.hold = func(inflight) bool { return true }
		tn.advance(w)
		if len(tn.nodes["a"].Links()) != 0 {
			t.Fatalf("link %d still up after %v of silence", i+1, w)
		}
		tn.advance(time.Second)
	}
	// Five minutes later the peer is trusted again.
	tn.hold = nil
	tn.advance(5 * time.Minute)
	tn.link("a", "b")
	tn.run()
	if li := tn.nodes["a"].Links(); len(li) != 1 || li[0].DetectAfter != 750*time.Millisecond {
		t.Fatalf("after the hold-down span: %+v, want 750ms again", li)
	}
}

func TestSeedLinksGetNoHeartbeats(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b")
	tn.link("a", "b", true)
	tn.run()
	tn.reset()
	for range 8 {
		tn.advance(500 * time.Millisecond)
	}
	if n := len(tn.sentOn("a", "b")); n != 0 {
		t.Fatalf("a sent %d messages on a quiet seed-protocol link in 4 s, want none (no heartbeats)", n)
	}
	li := tn.nodes["a"].Links()
	if len(li) != 1 || li[0].Heartbeats || li[0].DetectAfter != 15*time.Second {
		t.Fatalf("seed link %+v: want no heartbeats and the 15 s link timeout", li)
	}
}

func TestHeartbeatRejects(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b")
	tn.link("a", "b")
	tn.run()
	tn.inject("b", "a", []byte{0x87, 0, 0, 0, 1, 0, 0})
	if v := tn.eventsOf("b", EventViolation); len(v) != 1 || !errors.Is(v[0].Err, wire.ErrShort) {
		t.Fatalf("violations %v, want one for a short heartbeat", v)
	}
}

func TestBothEndsMeasureRTT(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b")
	tn.link("a", "b")
	tn.run()
	// b probes first; a answers and probes in the same message.
	tn.inject("a", "b", (&wire.Heartbeat{Seq: 9}).Append(nil))
	sent := tn.sentOn("a", "b")
	h, err := wire.DecodeHeartbeat(sent[len(sent)-1])
	if err != nil || h.Echo != 9 || h.Seq == 0 {
		t.Fatalf("a's answer %+v (%v): want echo 9 and a probe of its own", h, err)
	}
	tn.now = tn.now.Add(30 * time.Millisecond)
	tn.inject("a", "b", (&wire.Heartbeat{Echo: h.Seq}).Append(nil))
	if li := tn.nodes["a"].Links(); li[0].RTT != 30*time.Millisecond {
		t.Fatalf("a's RTT %v, want the 30 ms its probe took", li[0].RTT)
	}
	// An answer to no probe of ours, or a second answer, is no sample.
	tn.now = tn.now.Add(time.Second)
	tn.inject("a", "b", (&wire.Heartbeat{Echo: h.Seq}).Append(nil))
	tn.inject("a", "b", (&wire.Heartbeat{Echo: 12345}).Append(nil))
	if li := tn.nodes["a"].Links(); li[0].RTT != 30*time.Millisecond {
		t.Fatalf("a's RTT %v after stray answers, want 30ms still", li[0].RTT)
	}
}

func TestSeedRedialledWithEnoughLinks(t *testing.T) {
	// docs/protocol.md#connect-policy: seeds are dialled whenever they are
	// not linked. A node with min_links links still redials a seed it
	// lost at the seed's backoff, not at the next connect interval: a
	// link a cut or a liveness failure closed comes back once the path
	// does.
	tn := newNetWith(t, func(name string, c *Config) {
		if name == "a" {
			c.Seeds = []Peer{{MAC: macOf("b"), Addr: addrOf("b")}}
		}
	}, "a", "b", "c", "d")
	tn.link("a", "b")
	tn.link("a", "c")
	tn.link("a", "d")
	tn.run()
	tn.advance(time.Second)
	tn.reset()
	tn.cut("a", "b")
	tn.advance(time.Millisecond)
	if d := tn.dials["a"]; len(d) != 1 || d[0].MAC != macOf("b") {
		t.Fatalf("a's dials after losing its seed %v, want b at once (it still has 2 links)", d)
	}
	// The dial fails (the path is still cut): the next one waits out the
	// backoff, 0.5-1.5 s, not the 60 s connect interval.
	tn.nodes["a"].Step(tn.now, DialFailed{macOf("b"), errors.New("timeout")})
	tn.collect("a")
	tn.reset()
	tn.advance(1500 * time.Millisecond)
	if d := tn.dials["a"]; len(d) != 1 || d[0].MAC != macOf("b") {
		t.Fatalf("a's dials 1.5 s after a failed dial %v, want b again", d)
	}
}
