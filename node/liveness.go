package node

import (
	"fmt"
	"time"

	"github.com/invpn/invpn/wire"
)

// Link liveness (docs/protocol.md#link-liveness). On an extended link each
// end keeps its sending direction from going quiet for longer than
// HeartbeatInterval: when nothing else was sent for that long it sends a
// heartbeat probe (0x87), which the other end answers at once, probing in
// the same message if it has not probed for rttSampleEvery intervals
// itself, so both ends measure the round trip. Any valid
// message proves the peer alive, so a busy link carries no heartbeats. A
// link on which nothing arrived for its detection time is failed at once:
// its routes move to their backups or are withdrawn, as on a link-down,
// and the driver is told to close it. The detection time is DeadAfter, or
// more on a link whose round-trip time asks for it, and doubles for a
// peer whose links keep failing (a lossy path whose TCP stalls on
// retransmissions must not flap). Seed-protocol links get no heartbeats:
// LinkTimeout alone closes them, as the original did.

// rttEstimate is a link's smoothed round-trip time, as TCP keeps it
// (RFC 6298): srtt and rttvar, from heartbeat probes and their replies.
type rttEstimate struct {
	srtt, rttvar time.Duration
	samples      int
}

// add takes one round-trip sample.
func (e *rttEstimate) add(r time.Duration) {
	if e.samples == 0 {
		e.srtt, e.rttvar = r, r/2
	} else {
		dev := e.srtt - r
		if dev < 0 {
			dev = -dev
		}
		e.rttvar = (3*e.rttvar + dev) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.samples++
}

// rto is the retransmission timeout TCP would use: srtt + 4 rttvar.
func (e *rttEstimate) rto() time.Duration { return e.srtt + 4*e.rttvar }

// heartbeat is an extended link's liveness state.
type heartbeat struct {
	lastSent time.Time // when anything was last sent on the link
	// answering is set while the last thing sent was an answer to a
	// probe of a peer with the smaller MAC: the peer is the end that
	// probes, and its next probe is due about when our interval ends.
	answering bool
	seq       uint32    // the last probe's number
	probeAt   time.Time // when it was sent
	answered  bool      // whether its answer came
	rtt       rttEstimate
	// deadAfter is the detection time before RTT samples widen it: the
	// configured DeadAfter times the peer's hold-down factor.
	deadAfter time.Duration
}

// holdDown remembers how often a peer's links failed by liveness lately.
type holdDown struct {
	failures int       // failures within HoldDownSpan of each other
	last     time.Time // the latest
}

// holdDownMax caps the doubling of a flapping peer's detection time: 8×.
const holdDownMax = 3

// factor is how many times DeadAfter a new link to the peer waits: 1, then
// doubled for every failure after the first within span of the previous.
func (h holdDown) factor(now time.Time, span time.Duration) time.Duration {
	if h.failures <= 1 || now.Sub(h.last) >= span {
		return 1
	}
	return 1 << min(h.failures-1, holdDownMax)
}

// liveness reports whether heartbeats run on l.
func (n *Node) liveness(l *link) bool { return l.extended && n.cfg.HeartbeatInterval > 0 }

// detectAfter is how long l may be silent before it is failed: its
// hold-down DeadAfter, at least the heartbeat interval plus three RTOs of
// its measured round trip, and never more than LinkTimeout.
func (n *Node) detectAfter(l *link) time.Duration {
	d := l.hb.deadAfter
	if l.hb.rtt.samples > 0 {
		d = max(d, n.cfg.HeartbeatInterval+3*l.hb.rtt.rto())
	}
	return min(d, n.cfg.LinkTimeout)
}

// startLiveness sets up l's heartbeat state at link-up.
func (n *Node) startLiveness(l *link) {
	f := n.links.holdDown[l.peer].factor(n.clock.now, n.cfg.HoldDownSpan)
	l.hb = heartbeat{lastSent: n.clock.now, deadAfter: n.cfg.DeadAfter * f}
}

// checkLiveness fails extended links that have been silent for their
// detection time and closes seed-protocol links silent for LinkTimeout;
// then it probes the live links whose sending direction is quiet.
// Directory links are checked too: the far end of one may hold it as a
// mesh link, and fails it if nothing comes.
func (n *Node) checkLiveness(now time.Time) {
	for _, links := range []*[]*link{&n.links.order, &n.links.directory} {
		for i := 0; i < len(*links); i++ {
			if n.checkLink((*links)[i], now) {
				i-- // closed: the next link moved up
			}
		}
	}
}

// checkLink is checkLiveness for one link; it reports whether it closed
// the link.
func (n *Node) checkLink(l *link, now time.Time) (closed bool) {
	silent := now.Sub(l.lastRecv)
	switch {
	case n.liveness(l) && silent >= n.detectAfter(l):
		h := n.links.holdDown[l.peer]
		if now.Sub(h.last) >= n.cfg.HoldDownSpan {
			h.failures = 0
		}
		h.failures++
		h.last = now
		n.links.holdDown[l.peer] = h
		n.closeLink(l, fmt.Errorf("link %d to %s: %w (%v, rtt %v)", l.id, l.peer, ErrLinkDead,
			silent.Round(time.Millisecond), l.hb.rtt.srtt.Round(time.Microsecond)))
		return true
	case silent >= n.cfg.LinkTimeout:
		n.closeLink(l, fmt.Errorf("link %d to %s: %w (%v)", l.id, l.peer, ErrLinkSilent, n.cfg.LinkTimeout))
		return true
	case n.liveness(l) && now.Sub(l.hb.lastSent) >= n.probeAfter(l):
		if len(l.batch.items) > 0 {
			n.flushBatch(l) // a batch waiting to go proves us alive as well
			break
		}
		n.send(l, n.encode(&wire.Heartbeat{Seq: n.probe(l)}), true)
	}
	return false
}

// livenessDeadline returns when l next needs the node: its next probe or
// its failure, whichever is first (or LinkTimeout on a seed link).
func (n *Node) livenessDeadline(l *link) time.Time {
	if !n.liveness(l) {
		return l.lastRecv.Add(n.cfg.LinkTimeout)
	}
	dead := l.lastRecv.Add(n.detectAfter(l))
	probe := l.hb.lastSent.Add(n.probeAfter(l))
	if probe.Before(dead) {
		return probe
	}
	return dead
}

// probeAfter is how long l's sending direction may be quiet before it
// probes: the heartbeat interval, half as long again after answering a
// probe of a peer with the smaller MAC, so that the peer's next probe,
// due one interval after its last, comes first and is answered instead:
// otherwise both ends of an idle link of steady latency would probe every
// interval, four messages where two and a quarter do. The answers still
// leave at most an interval of quiet while the peer probes.
func (n *Node) probeAfter(l *link) time.Duration {
	if l.hb.answering {
		return n.cfg.HeartbeatInterval + n.cfg.HeartbeatInterval/2
	}
	return n.cfg.HeartbeatInterval
}

// probe starts a new probe on l and returns its seq (never 0).
func (n *Node) probe(l *link) uint32 {
	l.hb.seq++
	if l.hb.seq == 0 {
		l.hb.seq = 1
	}
	l.hb.probeAt, l.hb.answered = n.clock.now, false
	return l.hb.seq
}

// rttSampleEvery is how many heartbeat intervals the answering end of an
// idle link lets pass between its own round-trip samples: it probes along
// in an answer that often, which costs the link a third message. Probing
// along in every answer kept both RTTs fresh each interval at three
// messages per interval; every fourth costs 2.25, and an RTT moves slowly.
const rttSampleEvery = 4

// receiveHeartbeat takes an answer to our latest probe as a round-trip
// sample, and answers a probe at once, probing in the same message when
// this end has not probed for rttSampleEvery heartbeat intervals.
func (n *Node) receiveHeartbeat(l *link, msg []byte) {
	m, err := wire.DecodeHeartbeat(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if m.Echo != 0 && m.Echo == l.hb.seq && !l.hb.answered {
		l.hb.rtt.add(n.clock.now.Sub(l.hb.probeAt))
		l.hb.answered = true
	}
	if m.Seq == 0 {
		return
	}
	answer := wire.Heartbeat{Echo: m.Seq}
	if n.liveness(l) && n.clock.now.Sub(l.hb.probeAt) >= rttSampleEvery*n.cfg.HeartbeatInterval {
		answer.Seq = n.probe(l)
	}
	n.send(l, n.encode(&answer), true)
	// The end with the larger MAC leaves the probing to the other: when
	// both probe at once (links of steady latency come up in step), it
	// steps back, and one end probes each interval from then on.
	l.hb.answering = macLess(l.peer, n.cfg.MAC)
}
