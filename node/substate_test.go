package node

import (
	"slices"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// The engine's sub-states, each tested alone. The stories that use them
// together are the transcripts (testdata/) and node_test.go.

func TestLinkSetKeepsIDOrderAndOnePeer(t *testing.T) {
	s := newLinkSet()
	l5 := &link{id: 5, peer: macOf("b")}
	l2 := &link{id: 2, peer: macOf("c")}
	l9 := &link{id: 9, peer: macOf("b")} // replaces l5
	s.add(l5)
	s.add(l2)
	if got := []LinkID{s.order[0].id, s.order[1].id}; !slices.Equal(got, []LinkID{2, 5}) {
		t.Fatalf("order %v, want [2 5]: floods go out in link id order", got)
	}
	s.add(l9)
	if s.to(macOf("b")) != l9 {
		t.Fatal("the newest link to b is not the one its peer maps to")
	}
	s.remove(l5)
	if s.to(macOf("b")) != l9 || s.get(5) != nil || s.len() != 2 {
		t.Fatalf("removing the replaced link lost its peer or kept the link: to(b)=%v get(5)=%v len %d", s.to(macOf("b")), s.get(5), s.len())
	}
	s.remove(l9)
	if s.to(macOf("b")) != nil || len(s.order) != 1 || s.order[0] != l2 {
		t.Fatal("removing the last link to b left it linked or broke the order")
	}
}

// routeWith adds a route to mac with next hop via, backups and path.
func routeWith(t *routeTable, mac wire.MAC, via LinkID, backups []LinkID, path []wire.MAC) *route {
	r := t.add(mac)
	r.via = via
	for _, b := range backups {
		r.addBackup(linkRef(b)) // the test's refs are its link ids
	}
	r.pathKnown = path != nil
	t.setPath(r, path)
	return r
}

func TestRouteTableFailoverTakesFirstLiveBackup(t *testing.T) {
	d, e, f := macOf("d"), macOf("e"), macOf("f")
	var tbl routeTable
	routeWith(&tbl, d, 1, []LinkID{2, 3}, []wire.MAC{macOf("x")})
	routeWith(&tbl, e, 1, nil, nil)
	routeWith(&tbl, f, 3, []LinkID{1}, nil)
	live := func(ref linkRef) (LinkID, bool) { return LinkID(ref), ref == 3 } // 2 went down too
	got := tbl.failover(1, 1, macOf("x"), live)
	if !slices.Equal(got, []wire.MAC{d, e}) {
		t.Fatalf("affected %v, want [d e] sorted", got)
	}
	if r := tbl.get(d); r.via != 3 || r.nBackups != 0 || r.pathKnown || len(tbl.path(r)) != 0 {
		t.Fatalf("d: via %d backups %v pathKnown %v: want via 3 (2 is dead), no path kept", r.via, r.backupList(), r.pathKnown)
	}
	if tbl.get(e).via != 0 {
		t.Fatal("e had no backup but was not withdrawn")
	}
	if b := tbl.get(f).backupList(); len(b) != 0 {
		t.Fatalf("the lost link stayed a backup of f: %v", b)
	}
	if tbl.via(e) != 0 || tbl.via(d) != 3 || tbl.via(macOf("z")) != 0 {
		t.Fatal("via does not report the live next hops")
	}
}

func TestRouteTableExpire(t *testing.T) {
	t1 := t0.Add(time.Minute)
	var tbl routeTable
	routeWith(&tbl, macOf("c"), 4, nil, nil).refreshed = stampOf(t0)
	routeWith(&tbl, macOf("b"), 0, nil, nil).refreshed = stampOf(t0)
	routeWith(&tbl, macOf("d"), 0, nil, nil).refreshed = stampOf(t1)
	got := tbl.expire(t0)
	if len(got) != 2 || got[0].target != macOf("b") || got[1].target != macOf("c") || got[1].via != 4 {
		t.Fatalf("expired %v, want b then c (refreshed at the cutoff), c via 4", got)
	}
	if tbl.get(macOf("d")) == nil || tbl.len() != 1 {
		t.Fatal("a route refreshed after the cutoff expired")
	}
	// The freed slots are reused, and a reused slot starts empty.
	r := tbl.add(macOf("g"))
	if len(tbl.slots) != 3 || r.via != 0 || r.refreshed != 0 || r.key != keyOf(macOf("g")) {
		t.Fatalf("a new route after expiry: %d slots, via %d refreshed %d; want a reused empty slot", len(tbl.slots), r.via, r.refreshed)
	}
}

func TestRouteTableBackupsInOrder(t *testing.T) {
	var r route
	for id := linkRef(1); id <= maxBackups+2; id++ {
		r.addBackup(id)
	}
	r.addBackup(0) // none: a link without a ref is no backup
	r.addBackup(3)
	if r.nBackups != maxBackups || r.backups[0] != 1 || r.backups[maxBackups-1] != maxBackups {
		t.Fatalf("backups %v: want 1..%d, the first kept, no duplicate", r.backupList(), maxBackups)
	}
	r.dropBackup(2)
	r.firstBackup(9)
	if want := []linkRef{9, 1, 3, 4, 5, 6, 7}; !slices.Equal(r.backupList(), want) {
		t.Fatalf("after dropping 2 and putting 9 first: %v, want %v", r.backupList(), want)
	}
	r.firstBackup(10)
	if r.backups[0] != 10 || r.nBackups != maxBackups || r.backups[maxBackups-1] != 6 {
		t.Fatalf("putting one first in a full list: %v, want the last dropped", r.backupList())
	}
}

func TestRouteTablePathArena(t *testing.T) {
	var tbl routeTable
	long := make([]wire.MAC, 200)
	for i := range long {
		long[i] = wire.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}
	}
	rs := make([]wire.MAC, 0, 64)
	for i := range 64 {
		m := wire.MAC{2, 1, 0, 0, 0, byte(i)}
		rs = append(rs, m)
		routeWith(&tbl, m, 1, nil, long[:i%5])
	}
	// Paths that grow move to the end of the arena; the arena is
	// compacted once most of it is dead, and every path stays intact.
	for round := range 200 {
		for i, m := range rs {
			r := tbl.get(m)
			n := (i + round) % 200
			tbl.setPath(r, long[:n])
			if got := tbl.path(r); !slices.Equal(got, long[:n]) {
				t.Fatalf("round %d route %d: path of %d MACs reads back as %d", round, i, n, len(got))
			}
		}
	}
	for i, m := range rs {
		if n := (i + 199) % 200; !slices.Equal(tbl.path(tbl.get(m)), long[:n]) {
			t.Fatalf("route %d lost its path", i)
		}
	}
	if live := 64 * 200; len(tbl.paths) > 3*live {
		t.Fatalf("arena of %d MACs for at most %d live: not compacted", len(tbl.paths), live)
	}
}

func TestSeenIDsPerSourceAndExpiry(t *testing.T) {
	s := seenIDs{}
	a, b := macOf("a"), macOf("b")
	span := time.Minute
	for _, c := range []struct {
		src  wire.MAC
		id   uint64
		want bool
	}{{a, 200, true}, {a, 100, true}, {a, 100, false}, {b, 100, true}, {a, 200, false}} {
		if got := s.first(c.src, c.id, t0, span); got != c.want {
			t.Fatalf("first(%s, %d) = %v, want %v", c.src, c.id, got, c.want)
		}
	}
	s.expire(t0.Add(span), span)
	if len(s) != 0 {
		t.Fatalf("%d windows left after the span: empty windows must go", len(s))
	}
	// What left the window by age is below its floor: still a duplicate
	// while the window lives.
	s.first(a, 300, t0, span)
	s.first(a, 400, t0.Add(span), span)
	if s.first(a, 300, t0.Add(span), span) {
		t.Fatal("an id that aged out of a live window was taken as new")
	}
}

func TestIDClock(t *testing.T) {
	c := newIDClock(1000, 100)
	if !c.advance(t0) || c.advance(t0) {
		t.Fatal("advance reports the first input wrongly")
	}
	ms := uint64(t0.UnixMilli())
	id, persist := c.next()
	if id != ms || persist != ms+100 {
		t.Fatalf("next = %d, %d; want the clock %d and a floor a reserve ahead", id, persist, ms)
	}
	if id, persist = c.next(); id != ms+1 || persist != 0 {
		t.Fatalf("next = %d, %d; want last+1 and no new floor within half the reserve", id, persist)
	}
	c.advance(t0.Add(-time.Hour)) // the driver's clock steps back
	if c.now != t0 {
		t.Fatalf("own clock followed the driver back to %v", c.now)
	}
	if id, _ = c.next(); id != ms+2 {
		t.Fatalf("id %d after the clock stepped back, want %d", id, ms+2)
	}
	c.advance(t0) // the driver's clock is back: echoes are within reach of it
	c.announced = ms + 2
	if !c.observe(ms+50) || c.observe(ms+1) {
		t.Fatal("observe must report only ids newer than the latest announcement")
	}
	if id, _ = c.next(); id != ms+51 {
		t.Fatalf("id %d after an echo of %d", id, ms+50)
	}
	if c.observe(1 << 62) {
		t.Fatal("an id far ahead of the clock was taken")
	}
	before := newIDClock(0, 100)
	before.advance(time.Unix(-5, 0))
	if id, _ := before.next(); id != 1 {
		t.Fatalf("a clock before 1970 gave id %d, want 1", id)
	}
}

func TestMACKeyRoundTrip(t *testing.T) {
	for _, m := range []wire.MAC{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x02, 0x50, 0x56, 0x00, 0x01, 0x02}} {
		if got := keyOf(m).mac(); got != m {
			t.Fatalf("keyOf(%s).mac() = %s", m, got)
		}
	}
	if keyOf(wire.MAC{0, 0, 0, 0, 0, 1}) == keyOf(wire.MAC{1, 0, 0, 0, 0, 0}) {
		t.Fatal("two MACs share a key")
	}
}

// TestBatchQueuesARouteOnce: a route queued twice on a link is one item
// (a change wins over a refresh, and a retract is kept), whether the
// link finds it by its pending bit or, past 16 links, by the batch's
// index; sending or dropping the batch clears the bits.
func TestBatchQueuesARouteOnce(t *testing.T) {
	n := &Node{cfg: DefaultConfig()}
	n.cfg.MAC = macOf("a")
	s := newLinkSet()
	var ls []*link
	for id := LinkID(1); id <= 17; id++ {
		l := &link{id: id, peer: wire.MAC{2, 0, 0, 0, 1, byte(id)}}
		s.add(l)
		ls = append(ls, l)
	}
	if ls[0].ref != 1 || ls[15].ref != 16 || ls[16].ref != 17 || ls[16].pendingBit() != 0 || s.link(17) != ls[16] {
		t.Fatalf("refs %d, %d, %d: want 1, 16 and 17 for the 17th link, which has no pending bit", ls[0].ref, ls[15].ref, ls[16].ref)
	}
	r := n.routes.add(macOf("t"))
	for _, l := range []*link{ls[3], ls[16]} {
		n.queueRoute(l, macOf("t"), r.slot, false, false)
		n.queueRoute(l, macOf("t"), r.slot, true, false)
		n.queueRoute(l, n.cfg.MAC, -1, false, false)
		n.queueRoute(l, macOf("t"), r.slot, false, true)
		n.queueRoute(l, n.cfg.MAC, -1, true, false)
		b := l.batch.items
		if len(b) != 2 || b[0].mac != macOf("t") || b[1].mac != n.cfg.MAC {
			t.Fatalf("link ref %d: items %+v: want the route once, then our own", l.ref, b)
		}
		if c, rt := n.flags(l, &b[0]); !c || !rt {
			t.Fatalf("link ref %d: the route's item is change %v, retract %v: want both", l.ref, c, rt)
		}
		if c, rt := n.flags(l, &b[1]); !c || rt {
			t.Fatalf("link ref %d: our own item is change %v, retract %v: want a change only", l.ref, c, rt)
		}
	}
	if r.pending != 1<<3 {
		t.Fatalf("pending bits %b, want only link ref 4's", r.pending)
	}
	n.dropBatch(ls[3])
	if r.pending != 0 || r.changes != 0 || r.retracts != 0 || len(ls[3].batch.items) != 0 || ls[3].batch.own != 0 {
		t.Fatalf("after the batch went: pending %b, changes %b, retracts %b, %d items, own at %d",
			r.pending, r.changes, r.retracts, len(ls[3].batch.items), ls[3].batch.own)
	}
	n.queueRoute(ls[3], macOf("t"), r.slot, false, false)
	if c, rt := n.flags(ls[3], &ls[3].batch.items[0]); c || rt {
		t.Fatalf("a refresh queued after the batch went is change %v, retract %v: the bits outlived it", c, rt)
	}
	s.remove(ls[3])
	if s.link(4) != nil {
		t.Fatal("a removed link's ref still names it")
	}
	l := &link{id: 99}
	s.add(l)
	if l.ref != 4 || s.link(4) != l {
		t.Fatalf("a new link took ref %d, want the freed 4", l.ref)
	}
}

// TestSoonerDeadlineIsTold: an announcement triggered within TriggerGap
// of the last waits for a deadline; when that is sooner than the one the
// driver was given, Ready.Sooner says to ask again, and not otherwise.
func TestSoonerDeadlineIsTold(t *testing.T) {
	tn := newNetWith(t, withHeartbeats, "a", "b")
	tn.link("a", "b")
	tn.run()
	n := tn.nodes["a"]
	n.Advance()
	n.NextDeadline()
	n.timers.given = n.clock.now.Add(time.Hour) // the driver sleeps long
	n.timers.lastTriggered = n.clock.now
	n.triggerAnnounce()
	if n.timers.announceDue.IsZero() || !n.Ready().Sooner {
		t.Fatalf("an announcement due at %v, sooner than the driver's deadline: Sooner %v, want true", n.timers.announceDue, n.Ready().Sooner)
	}
	n.Advance()
	n.timers.announceDue = time.Time{}
	n.timers.given = n.clock.now // the driver wakes now anyway
	n.triggerAnnounce()
	if n.Ready().Sooner {
		t.Fatal("Sooner set for a deadline after the driver's")
	}
}

// TestAdvanceGivesBackABurst: Advance keeps the room of ordinary outputs
// for the next input, and drops that of a burst (the start of a mesh
// outputs an event and a cache store per route), which every node of a
// large simulation would otherwise hold for good.
func TestAdvanceGivesBackABurst(t *testing.T) {
	n := &Node{cfg: DefaultConfig()}
	for i := range 10 {
		n.event(Event{Kind: EventRouteLearned, MAC: wire.MAC{2, 0, 0, 0, 0, byte(i)}})
	}
	n.Advance()
	if len(n.ready.Events) != 0 || cap(n.ready.Events) < 10 {
		t.Fatalf("after 10 events: len %d, cap %d; want 0 and the room kept", len(n.ready.Events), cap(n.ready.Events))
	}
	for i := range readyKeep + 1 {
		n.event(Event{Kind: EventRouteLearned, MAC: wire.MAC{2, 0, 0, 0, 1, byte(i)}})
		n.ready.CacheStore = append(n.ready.CacheStore, Peer{MAC: wire.MAC{2, 0, 0, 0, 1, byte(i)}})
	}
	n.Advance()
	if cap(n.ready.Events) != 0 || cap(n.ready.CacheStore) != 0 {
		t.Fatalf("after a burst of %d: events cap %d, cache stores cap %d; want the room dropped", readyKeep+1, cap(n.ready.Events), cap(n.ready.CacheStore))
	}
}
