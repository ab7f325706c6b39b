package node

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// quietNode returns node x in a quiet mesh, linked to p, q and s (link ids
// 1, 2, 3), with its outputs so far taken.
func quietNode(t testing.TB) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.MAC, cfg.Port, cfg.Rand = macOf("x"), 41744, rand.New(rand.NewPCG(1, 1))
	// The peers here say nothing but what the test gives: slow
	// heartbeats keep their links up meanwhile.
	cfg.HeartbeatInterval, cfg.DeadAfter = 10*time.Second, 30*time.Second
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, peer := range []string{"p", "q", "s"} {
		n.Step(t0, LinkUp{LinkID(i + 1), macOf(peer), addrOf(peer), true, true})
	}
	n.Advance()
	return n
}

// batchOf returns a 0x88 from peer with one entry: round id of target t,
// relayed by peer alone.
func batchOf(peer string, id uint64, refresh bool) []byte {
	e := wire.BatchEntry{Refresh: refresh, InfoPath: wire.InfoPath{PathKnown: true,
		Info: wire.Info{ID: id, MAC: macOf("t"), Port: 41744, Addr: addrOf("t").Addr()},
		Path: []wire.MAC{macOf(peer)}}}
	return e.Append(wire.AppendBatchHeader(nil, 1))
}

// queuedFor reports on which of x's links (1 p, 2 q, 3 s) target t waits
// in a batch or went out in one since the last Advance.
func queuedFor(n *Node) (out []LinkID) {
	for _, l := range n.links.order {
		carries := slices.ContainsFunc(l.batch.items, func(it batchItem) bool { return it.mac == macOf("t") })
		for _, s := range n.Ready().Sends {
			if m, err := wire.DecodeInfoBatch(s.Msg); s.Link == l.id && err == nil {
				carries = carries || slices.ContainsFunc(m.Entries, func(e wire.BatchEntry) bool { return e.MAC == macOf("t") })
			}
		}
		if carries {
			out = append(out, l.id)
		}
	}
	return out
}

// waitingFor returns the link whose copy r's round waits for; 0 if none.
func waitingFor(n *Node, r *route) LinkID {
	for _, l := range n.links.order {
		if r.waitSlot != 0 && l.ref == r.waitSlot {
			return l.id
		}
	}
	return 0
}

// TestRefreshWaitsForTheFormerNextHop: the first copy of a refresh round
// that comes from another neighbour than the route's next hop moves the
// route, but the round goes on only once the former next hop's copy is in
// (then once, with the copy that won), or after refreshWait without it;
// a change waits likewise, for a few change delays, unless its target
// asked for rounds lately.
func TestRefreshWaitsForTheFormerNextHop(t *testing.T) {
	n := quietNode(t)
	now := t0.Add(10 * time.Millisecond) // past ChangeDelay after the greetings
	n.Receive(now, 1, batchOf("p", 10, false))
	for _, l := range n.links.order {
		if len(l.batch.items) != 0 {
			t.Fatalf("a change still queued on link %d after its input", l.id)
		}
	}
	if sends := n.Ready().Sends; len(sends) != 2 || sends[0].Link != 2 || sends[1].Link != 3 {
		t.Fatalf("the change went out as %v, want at once to q and s (links 2, 3)", sends)
	}
	if r := n.routes.get(macOf("t")); r == nil || r.via != 1 {
		t.Fatalf("route to t %+v, want via p (link 1)", r)
	}
	n.Advance()

	// Round 11 from q first: the route moves, and nothing goes on.
	now = now.Add(time.Millisecond)
	n.Receive(now, 2, batchOf("q", 11, true))
	r := n.routes.get(macOf("t"))
	if r.via != 2 || waitingFor(n, r) != 1 {
		t.Fatalf("after q's copy: via %d, waiting for %d; want via q (2), waiting for p (1)", r.via, waitingFor(n, r))
	}
	if got := queuedFor(n); len(got) != 0 {
		t.Fatalf("round 11 queued on links %v before p's copy", got)
	}
	if d := n.NextDeadline(); d.After(now.Add(refreshWaitBatches * n.cfg.BatchDelay)) {
		t.Fatalf("next deadline %v, after the wait's end", d.Sub(now))
	}
	// p's copy, which left later: the route stays on q, and the round
	// goes to p and s, once.
	now = now.Add(time.Millisecond)
	n.Receive(now, 1, batchOf("p", 11, true))
	if got := queuedFor(n); r.via != 2 || waitingFor(n, r) != 0 || len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("after p's copy: via %d, waiting for %d, queued on %v; want via 2, no wait, queued on [1 3]", r.via, waitingFor(n, r), got)
	}
	n.Step(now.Add(n.cfg.BatchDelay), Tick{})
	n.Advance()

	// Round 12 from p (no longer the next hop) first, and q's copy never
	// comes: the round goes on when the wait is over, not before.
	start := now.Add(n.cfg.BatchDelay)
	n.Receive(start, 1, batchOf("p", 12, true))
	if r.via != 1 || waitingFor(n, r) != 2 {
		t.Fatalf("after p's copy of 12: via %d, waiting for %d; want via 1, waiting for 2", r.via, waitingFor(n, r))
	}
	wait := refreshWaitBatches * n.cfg.BatchDelay
	n.Step(start.Add(wait-time.Nanosecond), Tick{})
	if got := queuedFor(n); len(got) != 0 {
		t.Fatalf("round 12 queued on %v before the wait is over", got)
	}
	n.Step(start.Add(wait), Tick{})
	if got := queuedFor(n); waitingFor(n, r) != 0 || len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("after the wait: waiting for %d, queued on %v; want no wait, queued on [2 3]", waitingFor(n, r), got)
	}
	n.Advance()

	// A change round waits too, changeWaitDelays change delays at most:
	// q's copy of 13 comes first, and the round goes on once p's is in.
	now = start.Add(wait + n.cfg.BatchDelay)
	n.Step(now, Tick{})
	n.Advance()
	n.Receive(now, 2, batchOf("q", 13, false))
	if got := queuedFor(n); r.via != 2 || waitingFor(n, r) != 1 || len(got) != 0 {
		t.Fatalf("after q's change 13: via %d, waiting for %d, queued on %v; want via 2, waiting for 1, queued nowhere", r.via, waitingFor(n, r), got)
	}
	if d := n.NextDeadline(); d.After(now.Add(changeWaitDelays * n.cfg.ChangeDelay)) {
		t.Fatalf("next deadline %v, after the change wait's end", d.Sub(now))
	}
	now = now.Add(time.Millisecond)
	n.Receive(now, 1, batchOf("p", 13, false))
	if got := queuedFor(n); waitingFor(n, r) != 0 || len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("after p's change 13: waiting for %d, queued on %v; want no wait, queued on [1 3]", waitingFor(n, r), got)
	}
	n.Step(now.Add(n.cfg.BatchDelay), Tick{})
	n.Advance()

	// No wait once the target has asked for rounds (it lost a link, which
	// the former next hop's path may cross): 14 from p goes on at once.
	now = now.Add(2 * n.cfg.BatchDelay)
	ask := (&wire.AnnounceRequestFor{ID: 99, Requester: macOf("t"), Targets: []wire.MAC{macOf("x")}}).Append(nil)
	n.Receive(now, 3, ask)
	n.Advance()
	n.Receive(now, 1, batchOf("p", 14, false))
	var to []LinkID // a lone change goes as a 0x85
	for _, snd := range n.Ready().Sends {
		if m, err := wire.DecodeInfoPath(snd.Msg); err == nil && m.MAC == macOf("t") && m.ID == 14 {
			to = append(to, snd.Link)
		}
	}
	if r.via != 1 || waitingFor(n, r) != 0 || !slices.Equal(to, []LinkID{2, 3}) {
		t.Fatalf("after p's change 14, t having asked: via %d, waiting for %d, sent to %v; want via 1, no wait, sent to [2 3]", r.via, waitingFor(n, r), to)
	}
	n.Advance()

	// A refresh that moves the route while t's ask is recent goes on at
	// once, as a change: p may have lost its route, and the nodes behind
	// us that routed through p need the move now (held for a refresh
	// wait, it delayed a one-way cut's recovery by a second in wan-cut).
	now = now.Add(2 * n.cfg.ChangeDelay)
	n.Receive(now, 2, batchOf("q", 15, true))
	to = nil
	for _, snd := range n.Ready().Sends {
		if m, err := wire.DecodeInfoPath(snd.Msg); err == nil && m.MAC == macOf("t") && m.ID == 15 {
			to = append(to, snd.Link)
		}
	}
	if r.via != 2 || waitingFor(n, r) != 0 || !slices.Equal(to, []LinkID{1, 3}) {
		t.Fatalf("after q's refresh 15, t having asked: via %d, waiting for %d, sent to %v; want via 2, no wait, sent to [1 3] as a change", r.via, waitingFor(n, r), to)
	}
}

// entryOf returns a 0x88 entry: change round id of target, relayed by
// peer alone (peer's own round when target is peer).
func entryOf(peer, target string, id uint64) wire.BatchEntry {
	if peer == target {
		return wire.BatchEntry{Self: true, InfoPath: wire.InfoPath{PathKnown: true,
			Info: wire.Info{ID: id, MAC: macOf(target), Port: 41744}}}
	}
	return wire.BatchEntry{InfoPath: wire.InfoPath{PathKnown: true,
		Info: wire.Info{ID: id, MAC: macOf(target), Port: 41744, Addr: addrOf(target).Addr()},
		Path: []wire.MAC{macOf(peer)}}}
}

// batchOfEntries returns a 0x88 holding es.
func batchOfEntries(es ...wire.BatchEntry) []byte {
	b := wire.AppendBatchHeader(nil, len(es))
	for i := range es {
		b = es[i].Append(b)
	}
	return b
}

// asksSent returns the targets of the 0x89s x sent since the last
// Advance, one sorted list per message on link 2 (q).
func asksSent(t *testing.T, n *Node) [][]wire.MAC {
	t.Helper()
	var out [][]wire.MAC
	for _, s := range n.Ready().Sends {
		if s.Link != 2 || len(s.Msg) == 0 || wire.Type(s.Msg[0]) != wire.TypeAnnounceRequestFor {
			continue
		}
		m, err := wire.DecodeAnnounceRequestFor(s.Msg)
		if err != nil {
			t.Fatal(err)
		}
		if m.Requester == macOf("x") {
			out = append(out, m.Targets)
		}
	}
	return out
}

// TestLostLinkAsksForThePeersRoutesOnce: a node that loses its link to p
// asks at once for the rounds of its own routes across it (p and t); for the
// routes p probably had across it (u, whose round went to p and never
// came back) it asks AskWindow later when the link went silent, and not
// at all if p's own 0x89 asked for u meanwhile. A link that was closed
// rather than found silent (the peer may have crashed) gets one 0x89 for
// both at once.
func TestLostLinkAsksForThePeersRoutesOnce(t *testing.T) {
	setup := func(t *testing.T) (*Node, time.Time) {
		n := quietNode(t)
		now := t0.Add(10 * time.Millisecond)
		// p's own round (also over q, so p stays known after the loss),
		// t behind p, u behind q.
		n.Receive(now, 1, batchOfEntries(entryOf("p", "p", 5), entryOf("p", "t", 6)))
		n.Receive(now, 2, batchOfEntries(entryOf("q", "p", 5), entryOf("q", "u", 7)))
		now = now.Add(10 * time.Millisecond)
		n.Step(now, Tick{})
		n.Advance()
		return n, now
	}
	silent := fmt.Errorf("test: %w", ErrLinkDead)
	want := func(t *testing.T, what string, got [][]wire.MAC, want ...[]wire.MAC) {
		t.Helper()
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("%s: 0x89s for %v, want %v", what, got, want)
		}
	}
	mac := func(names ...string) (out []wire.MAC) {
		for _, s := range names {
			out = append(out, macOf(s))
		}
		return out
	}

	t.Run("silent, the peer asks", func(t *testing.T) {
		n, now := setup(t)
		n.closeLink(n.links.get(1), silent)
		want(t, "at the loss", asksSent(t, n), mac("p", "t"))
		n.Advance()
		// p's own ask, over q, a few milliseconds later.
		ask := &wire.AnnounceRequestFor{ID: 99, Requester: macOf("p"), Targets: mac("u")}
		n.Receive(now.Add(3*time.Millisecond), 2, ask.Append(nil))
		n.Advance()
		n.Step(now.Add(n.cfg.AskWindow), Tick{})
		want(t, "after AskWindow", asksSent(t, n))
	})
	t.Run("silent, the peer does not ask", func(t *testing.T) {
		n, now := setup(t)
		n.closeLink(n.links.get(1), silent)
		n.Advance()
		n.Step(now.Add(n.cfg.AskWindow-time.Nanosecond), Tick{})
		want(t, "before AskWindow", asksSent(t, n))
		n.Step(now.Add(n.cfg.AskWindow), Tick{})
		want(t, "after AskWindow", asksSent(t, n), mac("u"))
	})
	t.Run("silent, the peer asked first", func(t *testing.T) {
		n, now := setup(t)
		ask := &wire.AnnounceRequestFor{ID: 99, Requester: macOf("p"), Targets: mac("u")}
		n.Receive(now, 2, ask.Append(nil))
		n.Advance()
		n.closeLink(n.links.get(1), silent)
		want(t, "at the loss", asksSent(t, n), mac("p", "t"))
		n.Advance()
		n.Step(now.Add(n.cfg.AskWindow), Tick{})
		want(t, "after AskWindow", asksSent(t, n))
	})
	t.Run("closed", func(t *testing.T) {
		n, _ := setup(t)
		n.closeLink(n.links.get(1), ErrDuplicateLink)
		want(t, "at the loss", asksSent(t, n), mac("p", "t", "u"))
	})
}
