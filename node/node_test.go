package node

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// Tests cite docs/protocol.md (#behaviour, #defects-of-the-original).

func TestTwoNodesLearnEachOther(t *testing.T) {
	// Behaviour: announce right after a link comes up; learn a route from
	// a neighbour's 0x00 and cache its address with the announced port.
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	if got := tn.nextHop("a", "b"); got != "b" {
		t.Fatalf("a's next hop to b = %q, want b", got)
	}
	if got := tn.nextHop("b", "a"); got != "a" {
		t.Fatalf("b's next hop to a = %q, want a", got)
	}
	if got := tn.nodes["b"].Cache(); len(got) != 1 || got[0].Addr != addrOf("a") {
		t.Fatalf("b's cache = %v, want a at %v", got, addrOf("a"))
	}
}

func TestLineRoutesThroughRelay(t *testing.T) {
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	tn.advance(5 * time.Second) // one more announce round reaches everyone
	if got := tn.nextHop("a", "c"); got != "b" {
		t.Fatalf("a's next hop to c = %q, want b", got)
	}
	ri, _ := tn.nodes["a"].Route(macOf("c"))
	if ri.Hops != 2 {
		t.Errorf("a's route to c has %d hops, want 2", ri.Hops)
	}
	// A unicast frame from a reaches c's TAP exactly once, through b.
	f := frame(macOf("c"), macOf("a"), 1, 2, 3)
	tn.nodes["a"].FrameFromTAP(tn.now, f)
	tn.collect("a")
	tn.run()
	if len(tn.tap["c"]) != 1 || !bytes.Equal(tn.tap["c"][0], f) {
		t.Fatalf("c's TAP got %x, want one copy of %x", tn.tap["c"], f)
	}
	if tn.nodes["b"].Stats().Forwarded != 1 {
		t.Fatalf("b forwarded %d frames, want 1", tn.nodes["b"].Stats().Forwarded)
	}
}

func TestFloodNeverBackToSender(t *testing.T) {
	// Defect 1: flooding sent every announcement and broadcast back to the
	// neighbour it came from.
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.link("a", "c")
	tn.run()
	tn.reset()
	tn.advance(5 * time.Second)
	tn.nodes["a"].FrameFromTAP(tn.now, frame(wire.Broadcast, macOf("a"), 9))
	tn.collect("a")
	tn.run()
	for _, name := range []string{"b", "c"} {
		for _, s := range tn.sent[name] {
			to := tn.ends[tn.ends[s.Link].peer].node
			switch wire.Type(s.Msg[0]) {
			case wire.TypeInfoPath:
				m, _ := wire.DecodeInfoPath(s.Msg)
				if m.MAC == macOf("a") && to == "a" {
					t.Errorf("%s sent a's announcement back to a", name)
				}
			case wire.TypeBroadcastFrame:
				if to == "a" {
					t.Errorf("%s sent a's broadcast back to a", name)
				}
			}
		}
	}
	for _, name := range []string{"b", "c"} {
		if len(tn.tap[name]) != 1 {
			t.Errorf("%s's TAP got %d copies of the broadcast, want 1", name, len(tn.tap[name]))
		}
	}
	if len(tn.tap["a"]) != 0 {
		t.Errorf("the source got its own broadcast back")
	}
}

// bcast returns a 0x81 from src with id.
func bcast(src wire.MAC, id uint64) []byte {
	return (&wire.BroadcastFrame{ID: id, Src: src, Payload: []byte{0x08, 0x06, byte(id)}}).Append(nil)
}

func TestBroadcastOutOfOrderDeliveredOnce(t *testing.T) {
	// Defect 2: a broadcast that arrived after a newer one from the same
	// source (over a slower path) was dropped.
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("c", "b")
	tn.run()
	src := macOf("a")
	tn.inject("b", "a", bcast(src, 2000)) // newer, over the fast path
	tn.inject("b", "c", bcast(src, 1000)) // older, over the slow path
	tn.inject("b", "c", bcast(src, 2000)) // duplicate of the first
	tn.inject("b", "a", bcast(src, 1000)) // duplicate of the second
	if got := len(tn.tap["b"]); got != 2 {
		t.Fatalf("b delivered %d broadcasts, want 2 (ids 2000 and 1000 once each)", got)
	}
	if d := tn.nodes["b"].Stats().Duplicates; d != 2 {
		t.Fatalf("b counted %d duplicates, want 2", d)
	}
}

func TestBroadcastAndHealthIdsAreSeparate(t *testing.T) {
	// Defect 2: 0x81 and 0x02 shared one counter and dropped each other.
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	tn.inject("b", "a", bcast(macOf("a"), 5000))
	req := (&wire.HealthRequest{ID: 5000, Requester: macOf("a"), Traceroute: []wire.MAC{macOf("a")}}).Append(nil)
	tn.inject("b", "a", req)
	if len(tn.tap["b"]) != 1 {
		t.Fatalf("broadcast not delivered")
	}
	answered := false
	for _, m := range tn.sentOn("b", "a") {
		if wire.Type(m[0]) == wire.TypeHealthResponse {
			answered = true
		}
	}
	if !answered {
		t.Fatal("health request with the same id as a broadcast was not answered")
	}
}

func TestDedupWindowExpiresAndBoundsMemory(t *testing.T) {
	var w window
	span := time.Minute
	for i := range uint64(windowSize * 3) {
		if !w.check(1000+i, t0, span) {
			t.Fatalf("fresh id %d refused", 1000+i)
		}
	}
	if w.n != windowSize {
		t.Fatalf("window holds %d ids, want at most %d", w.n, windowSize)
	}
	// Ids that left the window are never delivered twice.
	if w.check(1000, t0, span) {
		t.Fatal("an evicted id was accepted again")
	}
	// After the span everything is forgotten but the floor.
	if w.check(1000+windowSize*3-1, t0.Add(span), span) {
		t.Fatal("an expired id was accepted again")
	}
	if !w.empty() {
		t.Fatal("window not empty after the span")
	}
}

func TestIDsSurviveRestartAndClockSkew(t *testing.T) {
	// Defect 3: a node that restarted with its clock behind its previous
	// ids was ignored until its clock passed them.
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	before, _ := tn.nodes["b"].Route(macOf("a"))
	floor := tn.floor["a"]
	if floor <= before.ID {
		t.Fatalf("persisted id floor %d is not above the used id %d", floor, before.ID)
	}
	// a restarts an hour in the past, with its persisted floor.
	tn.cut("a", "b")
	tn.now = tn.now.Add(time.Second)
	tn.add("a", 7, func(_ string, c *Config) { c.IDFloor = floor })
	skewed := tn.now.Add(-time.Hour)
	tn.nextID += 2
	la, lb := tn.nextID-1, tn.nextID
	tn.ends[la] = end{node: "a", peer: lb}
	tn.ends[lb] = end{node: "b", peer: la}
	tn.nodes["a"].Step(skewed, LinkUp{la, macOf("b"), addrOf("b"), true, true})
	tn.collect("a")
	tn.nodes["b"].Step(tn.now, LinkUp{lb, macOf("a"), addrOf("a"), false, true})
	tn.collect("b")
	tn.run()
	after, ok := tn.nodes["b"].Route(macOf("a"))
	if !ok || after.ID <= before.ID || after.Via != lb {
		t.Fatalf("after restart b's route to a = %+v (ok %v), want a newer id than %d via link %d", after, ok, before.ID, lb)
	}
	// The clock set back while running: ids still increase.
	n := tn.nodes["a"]
	id1 := startHealth(n, skewed)
	id2 := startHealth(n, skewed.Add(-time.Hour))
	if id2 <= id1 {
		t.Fatalf("id after clock set back %d is not above %d", id2, id1)
	}
}

func TestOwnAnnouncementEchoRaisesIDs(t *testing.T) {
	// A restarted node that lost its floor learns its old ids from the
	// echo of an original node and issues newer ones.
	tn := newNet(t, "a", "b")
	tn.link("a", "b", true)
	tn.run()
	future := uint64(t0.Add(10 * time.Hour).UnixMilli())
	echo := (&wire.Info{ID: future, MAC: macOf("a"), Port: 41744, Addr: netip.MustParseAddr("127.0.0.97")}).Append(nil)
	tn.inject("a", "b", echo)
	if id := startHealth(tn.nodes["a"], tn.now); id <= future {
		t.Fatalf("id %d after an echo of %d", id, future)
	}
}

func TestSpoofedInitialInfoClosesLink(t *testing.T) {
	// Defect 4: a 0x00 whose MAC is not the link certificate's closes the
	// link, on seed and extended links alike, and poisons nothing.
	for _, seed := range []bool{false, true} {
		tn := newNet(t, "a", "b", "c")
		tn.link("a", "b", seed)
		tn.link("b", "c")
		tn.run()
		tn.reset()
		victim := macOf("c")
		spoof := (&wire.InitialInfo{ID: uint64(t0.Add(time.Hour).UnixMilli()), MAC: victim, Port: 1}).Append(nil)
		tn.inject("b", "a", spoof)
		if len(tn.closes["b"]) != 1 || !errors.Is(tn.closes["b"][0].Reason, ErrSpoofedMAC) {
			t.Fatalf("seed=%v: closes %v, want one with ErrSpoofedMAC", seed, tn.closes["b"])
		}
		if len(tn.eventsOf("b", EventViolation)) != 1 {
			t.Errorf("seed=%v: no violation event", seed)
		}
		if got := tn.nextHop("b", "c"); got != "c" {
			t.Errorf("seed=%v: b's route to c moved to %q", seed, got)
		}
		for _, p := range tn.nodes["b"].Cache() {
			if p.MAC == victim && p.Addr.Port() == 1 {
				t.Errorf("seed=%v: cache entry of c poisoned: %v", seed, p)
			}
		}
	}
}

func TestMulticastFloodedWithRealDestination(t *testing.T) {
	// Defect 5: frames to 33:33:.. and 01:00:5e:.. were dropped. An
	// extended neighbour gets a 0x82 with the real destination; a
	// seed-protocol neighbour gets a 0x81.
	tn := newNet(t, "a", "b", "o")
	tn.link("a", "b")
	tn.link("a", "o", true)
	tn.run()
	tn.reset()
	for _, dst := range []wire.MAC{{0x33, 0x33, 0xff, 0, 0, 2}, {0x01, 0x00, 0x5e, 0, 0, 251}} {
		f := frame(dst, macOf("a"), 0x60, 0)
		tn.nodes["a"].FrameFromTAP(tn.now, f)
		tn.collect("a")
		tn.run()
		if got := tn.tap["b"]; len(got) != 1 || !bytes.Equal(got[0], f) {
			t.Fatalf("b's TAP got %x, want %x with its multicast destination", got, f)
		}
		toSeed := tn.sentOn("a", "o")
		if len(toSeed) == 0 || wire.Type(toSeed[len(toSeed)-1][0]) != wire.TypeBroadcastFrame {
			t.Fatalf("seed neighbour got %x, want a 0x81", toSeed)
		}
		tn.reset()
	}
}

func TestHealthTracerouteLine(t *testing.T) {
	// Defect 6 and "Behaviour" 0x02/0x03: the answer is built exactly to
	// the table, and a node that forwards a 0x03 appends its MAC to the
	// reverse traceroute.
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	tn.advance(5 * time.Second)
	id := startHealth(tn.nodes["a"], tn.now)
	tn.collect("a")
	tn.run()
	res := tn.health["a"]
	if len(res) != 2 {
		t.Fatalf("a got %d answers, want 2 (b and c)", len(res))
	}
	a, b, c := macOf("a"), macOf("b"), macOf("c")
	want := map[wire.MAC]wire.HealthResponse{
		b: {Dest: a, Origin: b, ID: id, Links: []wire.MAC{a, c},
			Routes:     []wire.Route{{Target: a, NextHop: a}, {Target: c, NextHop: c}},
			Traceroute: []wire.MAC{a, b}, Reverse: []wire.MAC{b}},
		c: {Dest: a, Origin: c, ID: id, Links: []wire.MAC{b},
			Routes:     []wire.Route{{Target: a, NextHop: b}, {Target: b, NextHop: b}},
			Traceroute: []wire.MAC{a, b, c}, Reverse: []wire.MAC{c, b}},
	}
	for _, r := range res {
		w := want[r.Response.Origin]
		if !equalResponse(r.Response, w) {
			t.Errorf("answer from %s:\n got %+v\nwant %+v", r.Response.Origin, r.Response, w)
		}
	}
	// The 0x03 b sent for c carries b appended to the reverse traceroute,
	// byte for byte as the table says.
	var fwd []byte
	for _, m := range tn.sentOn("b", "a") {
		if wire.Type(m[0]) == wire.TypeHealthResponse && bytes.Equal(m[8:14], c[:]) {
			fwd = m
		}
	}
	idb := make([]byte, 8)
	for i := range 8 {
		idb[i] = byte(id >> (56 - 8*i))
	}
	wantBytes := slices.Concat([]byte{0x03, 0x01}, a[:], c[:], idb,
		[]byte{0, 1}, b[:], []byte{0, 2}, a[:], b[:], b[:], b[:], []byte{0, 3}, a[:], b[:], c[:], c[:], b[:])
	if !bytes.Equal(fwd, wantBytes) {
		t.Fatalf("forwarded 0x03\n got %x\nwant %x", fwd, wantBytes)
	}
}

func equalResponse(a, b wire.HealthResponse) bool {
	return a.Dest == b.Dest && a.Origin == b.Origin && a.ID == b.ID &&
		slices.Equal(a.Links, b.Links) && slices.Equal(a.Routes, b.Routes) &&
		slices.Equal(a.Traceroute, b.Traceroute) && slices.Equal(a.Reverse, b.Reverse)
}

func TestHealthRequestNeverSentToSeedPeer(t *testing.T) {
	// docs/protocol.md#interoperating-with-an-original-node: never send 0x02 to an original node.
	tn := newNet(t, "a", "b", "o")
	tn.link("a", "b")
	tn.link("a", "o", true)
	tn.run()
	tn.reset()
	startHealth(tn.nodes["a"], tn.now)
	tn.collect("a")
	tn.run()
	for _, m := range tn.sentOn("a", "o") {
		if wire.Type(m[0]) == wire.TypeHealthRequest {
			t.Fatal("0x02 sent to a seed-protocol peer")
		}
	}
	if len(tn.health["a"]) != 1 {
		t.Fatalf("%d answers, want 1 (b)", len(tn.health["a"]))
	}
}

func TestSendQueueDropsDataNeverControl(t *testing.T) {
	// Defect 7: writes to a slow peer buffered without bound.
	q := SendQueue{DataLimit: 3}
	for i := range 5 {
		q.Push(Send{Msg: []byte{0x80, byte(i)}})
	}
	for i := range 10 {
		if !q.Push(Send{Msg: []byte{0x00, byte(i)}, Control: true}) {
			t.Fatal("control message dropped")
		}
	}
	if q.Drops() != 2 || q.Len() != 13 {
		t.Fatalf("drops %d len %d, want 2 and 13", q.Drops(), q.Len())
	}
	first, _ := q.Pop()
	if !bytes.Equal(first, []byte{0x80, 0}) {
		t.Fatalf("first out %x, want the first data message", first)
	}
	q.Release(first)
	// Popping a data message makes room for one more.
	if !q.Push(Send{Msg: []byte{0x80, 9}}) || q.Push(Send{Msg: []byte{0x80, 10}}) {
		t.Fatal("queue did not admit exactly one data message after a pop")
	}
}

func TestFailoverToBackupAtOnce(t *testing.T) {
	// Defect 8: when a link drops, routes through it move at once to a
	// neighbour that delivered the same announcement round. The route to
	// the lost peer itself is withdrawn instead (a vanished node's
	// neighbours would otherwise point at each other), and comes back
	// with the peer's own announcement, one flood later.
	tn := newNet(t, "a", "b", "c", "d")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.link("a", "c")
	tn.link("c", "d")
	tn.run()
	tn.advance(5 * time.Second)
	if got := tn.nextHop("a", "d"); got != "c" {
		t.Fatalf("a's next hop to d = %q, want c", got)
	}
	tn.reset()
	tn.hold = func(inflight) bool { return true } // nothing is delivered yet
	tn.cut("a", "c")
	if got := tn.nextHop("a", "d"); got != "b" {
		t.Fatalf("after cut, a's next hop to d = %q, want b at once", got)
	}
	if got := tn.nextHop("a", "c"); got != "" {
		t.Fatalf("after cut, a routes to the lost peer c via %q, want the route withdrawn", got)
	}
	if ev := tn.eventsOf("a", EventRouteFailover); len(ev) != 1 || ev[0].MAC != macOf("d") {
		t.Fatalf("failover events %v", ev)
	}
	f := frame(macOf("d"), macOf("a"), 7)
	tn.nodes["a"].FrameFromTAP(tn.now, f)
	tn.collect("a")
	tn.release() // c's own announcement, sent as it noticed the cut, arrives over b
	if len(tn.tap["d"]) != 1 {
		t.Fatalf("frame not delivered after failover: d's TAP %x", tn.tap["d"])
	}
	if got := tn.nextHop("a", "c"); got != "b" {
		t.Fatalf("after c's announcement, a's next hop to c = %q, want b", got)
	}
}

func TestBackupsOfAVanishedNodeAreWithdrawn(t *testing.T) {
	// When a node vanishes, every neighbour loses it at once and moves the
	// routes behind it to backups that may point at each other (each was
	// loop-free for one failure). No newer round of the targets behind it
	// comes, and the routes are withdrawn after FailoverConfirm: a frame
	// can circulate until then (bounded by the hop limit), not until expiry.
	//
	//   a - x - t      x relays for t; a, b and c are x's neighbours and
	//   |\ /|          reach t only through it, each also through the others.
	//   | b |
	//    \|/
	//     c
	tn := newNet(t, "a", "b", "c", "t", "x")
	for _, p := range [][2]string{{"x", "t"}, {"a", "x"}, {"b", "x"}, {"c", "x"}, {"a", "b"}, {"b", "c"}, {"a", "c"}} {
		tn.link(p[0], p[1])
	}
	tn.run()
	tn.advance(5 * time.Second)
	// x vanishes: its neighbours see their links reset.
	for _, p := range []string{"a", "b", "c", "t"} {
		tn.cut(p, "x")
	}
	tn.run()
	confirm := DefaultConfig().FailoverConfirm
	tn.advance(confirm - time.Millisecond)
	tn.advance(time.Millisecond)
	for _, n := range []string{"a", "b", "c"} {
		if got := tn.nextHop(n, "t"); got != "" {
			t.Errorf("%s still routes to the unreachable t via %s after FailoverConfirm", n, got)
		}
	}
}

func TestWithdrawWithoutBackup(t *testing.T) {
	// Defect 8: a destination that is gone is withdrawn at once, not kept
	// until expiry.
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	tn.advance(5 * time.Second)
	tn.cut("b", "c")
	if _, ok := tn.nodes["b"].Route(macOf("c")); ok {
		t.Fatal("b still routes to c with no link and no backup")
	}
	if len(tn.eventsOf("b", EventRouteWithdrawn)) == 0 {
		t.Fatal("no withdrawal event")
	}
	tn.nodes["b"].FrameFromTAP(tn.now, frame(macOf("c"), macOf("b")))
	tn.collect("b")
	if tn.nodes["b"].Stats().Drops[DropNoRoute] != 1 {
		t.Fatal("frame to a withdrawn route not dropped as no route")
	}
}

func TestBackupNeverLeadsBackThroughUs(t *testing.T) {
	// A copy of the round whose path already contains this node is not a
	// backup: following it would loop.
	tn := newNet(t, "b", "x", "d")
	tn.link("b", "x")
	tn.link("b", "d")
	tn.run()
	id := uint64(t0.Add(time.Hour).UnixMilli())
	target := wire.MAC{0x02, 0, 0, 0, 0, 'z'}
	info := wire.Info{ID: id, MAC: target}
	tn.inject("b", "x", (&wire.InfoPath{PathKnown: true, Path: []wire.MAC{macOf("x")}, Info: info}).Append(nil))
	tn.inject("b", "d", (&wire.InfoPath{PathKnown: true, Path: []wire.MAC{macOf("x"), macOf("b"), macOf("d")}, Info: info}).Append(nil))
	if ri, _ := tn.nodes["b"].Route(target); len(ri.Backups) != 0 {
		t.Fatalf("backups %v include a path through b", ri.Backups)
	}
	tn.inject("b", "d", (&wire.InfoPath{PathKnown: true, Path: []wire.MAC{macOf("q"), macOf("d")}, Info: info}).Append(nil))
	if ri, _ := tn.nodes["b"].Route(target); !slices.Equal(ri.Backups, []LinkID{tn.linkID("b", "d")}) {
		t.Fatalf("backups %v, want d", ri.Backups)
	}
	// A seed-protocol copy (path unknown) is never a backup.
	tn2 := newNet(t, "b", "x", "o")
	tn2.link("b", "x")
	tn2.link("b", "o", true)
	tn2.run()
	tn2.inject("b", "x", (&wire.InfoPath{PathKnown: true, Path: []wire.MAC{macOf("x")}, Info: info}).Append(nil))
	tn2.inject("b", "o", info.Append(nil))
	if ri, _ := tn2.nodes["b"].Route(target); len(ri.Backups) != 0 {
		t.Fatalf("backup over a path of unknown nodes: %v", ri.Backups)
	}
}

func TestHopLimit(t *testing.T) {
	// Defect 9: a targeted frame had no hop limit.
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	f := frame(macOf("c"), macOf("a"), 1)
	tn.reset()
	tn.inject("b", "a", (&wire.LimitedFrame{Hops: 1, Frame: f}).Append(nil))
	if tn.nodes["b"].Stats().Drops[DropHopLimit] != 1 || len(tn.sentOn("b", "c")) != 0 {
		t.Fatal("frame with 1 hop left was forwarded")
	}
	tn.inject("b", "a", (&wire.LimitedFrame{Hops: 5, Frame: f}).Append(nil))
	sent := tn.sentOn("b", "c")
	if len(sent) != 1 || !bytes.Equal(sent[0], (&wire.LimitedFrame{Hops: 4, Frame: f}).Append(nil)) {
		t.Fatalf("forwarded %x, want the frame with 4 hops", sent)
	}
}

func TestSeedTargetedFrameGetsHopLimit(t *testing.T) {
	// A 0x80 from a seed-protocol peer enters the extended mesh with a
	// fresh hop limit; toward a seed peer it stays a 0x80.
	tn := newNet(t, "o", "b", "c")
	tn.link("o", "b", true)
	tn.link("b", "c")
	tn.run()
	tn.reset()
	f := frame(macOf("c"), macOf("o"), 1)
	tn.inject("b", "o", (&wire.TargetedFrame{Frame: f}).Append(nil))
	sent := tn.sentOn("b", "c")
	want := (&wire.LimitedFrame{Hops: 254, Frame: f}).Append(nil)
	if len(sent) != 1 || !bytes.Equal(sent[0], want) {
		t.Fatalf("b sent %x, want %x", sent, want)
	}
	tn.run()
	tn.reset()
	back := frame(macOf("o"), macOf("c"), 2)
	tn.inject("b", "c", (&wire.LimitedFrame{Hops: 9, Frame: back}).Append(nil))
	sent = tn.sentOn("b", "o")
	if len(sent) != 1 || !bytes.Equal(sent[0], (&wire.TargetedFrame{Frame: back}).Append(nil)) {
		t.Fatalf("b sent %x toward the seed peer, want a 0x80", sent)
	}
}

func TestRouteLoopDropped(t *testing.T) {
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	// b's route to a points at a; a frame for a arriving from a is a loop.
	tn.inject("b", "a", (&wire.LimitedFrame{Hops: 9, Frame: frame(macOf("a"), macOf("z"))}).Append(nil))
	if tn.nodes["b"].Stats().Drops[DropRouteLoop] != 1 {
		t.Fatal("frame sent back where it came from")
	}
}

func TestMalformedInput(t *testing.T) {
	// Defect 11 and "Malformed input": never forwarded; dropped on a seed
	// link (which stays up), a violation on an extended link.
	bad := [][]byte{
		{}, // zero length
		append((&wire.InitialInfo{ID: 1, MAC: macOf("a"), Port: 1}).Append(nil), 0), // trailing
		{0x80, 2, 0, 0, 0, 0, 'c'},                                  // 0x80 with a 6-byte body
		{0x00, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 'a', 0, 1}, // version 2
	}
	for i, msg := range bad {
		for _, seed := range []bool{true, false} {
			tn := newNet(t, "a", "b", "c")
			tn.link("a", "b", seed)
			tn.link("b", "c")
			tn.run()
			tn.reset()
			tn.inject("b", "a", msg)
			for _, m := range tn.sentOn("b", "c") {
				// A closed link makes b announce itself and ask for a new
				// round (0x86); nothing else may go out.
				if info, err := wire.DecodeInitialInfo(m); err == nil && info.MAC == macOf("b") {
					continue
				}
				if _, err := wire.DecodeAnnounceRequest(m); err == nil {
					continue
				}
				t.Errorf("case %d seed=%v: malformed message forwarded: %x", i, seed, m)
			}
			closed := len(tn.closes["b"]) == 1
			if seed && (closed || tn.nodes["b"].Stats().Drops[DropMalformed] != 1) {
				t.Errorf("case %d: seed link closed=%v drops=%d, want open and 1 drop", i, closed, tn.nodes["b"].Stats().Drops[DropMalformed])
			}
			if !seed && !closed {
				t.Errorf("case %d: extended link not closed", i)
			}
		}
	}
}

func TestUnknownTypeDroppedNotClosed(t *testing.T) {
	// A later extension may add types: count and skip them.
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	tn.inject("b", "a", []byte{0x7e, 1, 2})
	if len(tn.closes["b"]) != 0 || tn.nodes["b"].Stats().Drops[DropUnknownType] != 1 {
		t.Fatal("unknown type not dropped and counted, or link closed")
	}
}

func TestFrameFromTAPChecks(t *testing.T) {
	// Behaviour "Frames from the TAP": a foreign source is dropped; a
	// destination without a route is dropped.
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	n := tn.nodes["a"]
	n.FrameFromTAP(tn.now, frame(macOf("b"), macOf("z")))
	n.FrameFromTAP(tn.now, frame(macOf("q"), macOf("a")))
	tn.collect("a")
	s := n.Stats()
	if s.Drops[DropNotOwnSource] != 1 || s.Drops[DropNoRoute] != 1 {
		t.Fatalf("drops %v", s.Drops)
	}
}

func TestBroadcastFromUnknownSourceDropped(t *testing.T) {
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	tn.inject("b", "a", bcast(wire.MAC{2, 9, 9, 9, 9, 9}, 5))
	if len(tn.tap["b"]) != 0 || tn.nodes["b"].Stats().Drops[DropUnknownSource] != 1 {
		t.Fatal("broadcast from a source never linked or announced was delivered")
	}
}

func TestNoIncomingAnnouncesNoAddress(t *testing.T) {
	tn := newNetWith(t, func(name string, c *Config) { c.NoIncoming = name == "a" }, "a", "b", "o")
	tn.link("a", "b")
	tn.link("a", "o", true)
	tn.run()
	for _, m := range tn.sentOn("a", "o") {
		if wire.Type(m[0]) == wire.TypeInitialInfo {
			t.Fatal("no_incoming node sent a 0x00")
		}
	}
	seedMsgs := tn.sentOn("a", "o")
	info, err := wire.DecodeInfo(seedMsgs[0])
	if err != nil || info.Addr.IsValid() || info.MAC != macOf("a") {
		t.Fatalf("no_incoming announcement to seed peer: %+v, %v", info, err)
	}
	for _, p := range tn.nodes["b"].Cache() {
		if p.MAC == macOf("a") {
			t.Fatal("b cached an address for a no_incoming node")
		}
	}
	if tn.nextHop("b", "a") != "a" {
		t.Fatal("no_incoming node not routable")
	}
}

func TestNoRelayCarriesNothingForOthers(t *testing.T) {
	tn := newNetWith(t, func(name string, c *Config) { c.NoRelay = name == "b" }, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	tn.advance(5 * time.Second)
	if tn.nextHop("a", "c") != "" {
		t.Fatal("a routes to c through a no_relay node")
	}
	if tn.nextHop("a", "b") != "b" || tn.nextHop("b", "c") != "c" {
		t.Fatal("no_relay node itself is not routable")
	}
	tn.inject("b", "a", (&wire.LimitedFrame{Hops: 9, Frame: frame(macOf("c"), macOf("a"))}).Append(nil))
	if tn.nodes["b"].Stats().Drops[DropNoRelay] != 1 {
		t.Fatal("no_relay node forwarded a frame")
	}
}

func TestRouteExpiry(t *testing.T) {
	// "Route expiry", with the timer configurable: a route not refreshed
	// within RouteExpiry is purged, within a tenth of it.
	tn := newNetWith(t, func(_ string, c *Config) {
		c.RouteExpiry = time.Minute
		c.AnnounceInterval = time.Hour // no refresh
		c.RefreshInterval = 0
		c.LinkTimeout = 2 * time.Hour
	}, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	// a learnt c's route when b-c came up; now c stays silent.
	if tn.nextHop("a", "c") != "b" {
		t.Fatal("no route to c")
	}
	tn.advance(59 * time.Second)
	if tn.nextHop("a", "c") == "" {
		t.Fatal("route expired early")
	}
	tn.advance(7 * time.Second)
	if tn.nextHop("a", "c") != "" {
		t.Fatal("route not expired 66 s after its last announcement with a 60 s expiry")
	}
	if len(tn.eventsOf("a", EventRouteExpired)) == 0 {
		t.Fatal("no expiry event")
	}
}

func TestTimersConfigurable(t *testing.T) {
	tn := newNetWith(t, func(_ string, c *Config) { c.AnnounceInterval = 2 * time.Second }, "a", "b")
	tn.link("a", "b")
	tn.run()
	tn.reset()
	tn.advance(time.Second)
	if len(tn.sentOn("a", "b")) != 0 {
		t.Fatal("announced before the interval")
	}
	tn.advance(time.Second)
	if len(tn.sentOn("a", "b")) != 1 {
		t.Fatalf("sent %d messages at the 2 s interval, want 1 announcement", len(tn.sentOn("a", "b")))
	}
	if d := tn.nodes["a"].NextDeadline(); !d.Equal(tn.now.Add(2 * time.Second)) {
		t.Fatalf("next deadline %v, want %v", d, tn.now.Add(2*time.Second))
	}
}

func TestLinkTimeoutClosesSilentLink(t *testing.T) {
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	tn.hold = func(m inflight) bool { return m.to == "a" } // b goes silent
	tn.advance(10 * time.Second)
	if len(tn.closes["a"]) != 0 {
		t.Fatal("closed before the timeout")
	}
	tn.advance(5 * time.Second)
	if len(tn.closes["a"]) != 1 || !errors.Is(tn.closes["a"][0].Reason, ErrLinkSilent) {
		t.Fatalf("closes %v, want one for a silent link after 15 s", tn.closes["a"])
	}
}

func TestSelfAndDuplicateLinks(t *testing.T) {
	// "Identity and links": a link to one's own MAC is closed; one link
	// per peer, both ends keeping the one dialled by the smaller MAC.
	tn := newNet(t, "a", "b")
	n := tn.nodes["a"]
	n.Step(tn.now, LinkUp{100, macOf("a"), addrOf("a"), true, true})
	tn.collect("a")
	if len(tn.closes["a"]) != 1 || !errors.Is(tn.closes["a"][0].Reason, ErrSelfLink) {
		t.Fatalf("closes %v, want the self link", tn.closes["a"])
	}
	tn.reset()
	// Simultaneous dials: link 1 dialled by a, link 2 dialled by b.
	tn.link("a", "b") // a dials: ids 1 (a) / 2 (b)
	tn.link("b", "a") // b dials: ids 3 (b) / 4 (a)
	// a < b, so both keep the link a dialled. The other (3 at b, 4 at a)
	// is retiring: nothing more is sent on it, but the frames b put on
	// it before it saw link 1 are taken, until a closes it after its
	// detection time (docs/protocol.md#link-liveness).
	tn.run()
	if ca, cb := tn.closes["a"], tn.closes["b"]; len(ca)+len(cb) != 0 {
		t.Fatalf("closes a=%v b=%v, want none before the duplicate's detection time", ca, cb)
	}
	tn.reset()
	uni := wire.LimitedFrame{Hops: 8, Frame: frame(macOf("a"), macOf("b"), 1)}
	bc := wire.BroadcastFrame{ID: 1 << 40, Src: macOf("b"), Payload: frame(wire.Broadcast, macOf("b"), 2)[12:]}
	n.Receive(tn.now, 4, uni.Append(nil))
	n.Receive(tn.now, 4, bc.Append(nil))
	tn.collect("a")
	if len(tn.tap["a"]) != 2 {
		t.Fatalf("a's TAP took %d frames from the retiring link, want its unicast and its broadcast", len(tn.tap["a"]))
	}
	if len(tn.sent["a"]) != 0 {
		t.Fatalf("a sent %d messages after the frames of the retiring link (%v), want none: not back to b over link 1, nothing on 4",
			len(tn.sent["a"]), tn.sent["a"][0])
	}
	tn.advance(n.cfg.DeadAfter - time.Millisecond)
	if ca := tn.closes["a"]; len(ca) != 0 {
		t.Fatalf("a closed %v before the detection time", ca)
	}
	tn.advance(time.Millisecond)
	// a closes its end; b hears of it (LinkDown) before its own time is
	// up, and only forgets its end.
	ca, cb := tn.closes["a"], tn.closes["b"]
	if len(ca) != 1 || ca[0].Link != 4 || !errors.Is(ca[0].Reason, ErrDuplicateLink) || len(cb) != 0 {
		t.Fatalf("closes a=%v b=%v, want a to close 4 as a duplicate and b nothing", ca, cb)
	}
	tn.reset()
	n.Receive(tn.now, 4, uni.Append(nil))
	tn.collect("a")
	if len(tn.tap["a"]) != 0 {
		t.Fatalf("a took a frame on link 4 after closing it")
	}
	if l := tn.nodes["b"].links.retired(3); l != nil {
		t.Fatalf("b still keeps link 3 retiring after it went down")
	}
}

func TestConnectPolicy(t *testing.T) {
	// "Connect policy": dial the seed and cached peers up to dialTarget
	// (half way from MinLinks 2 to MaxLinks 8: 5), back off a peer whose
	// dial failed, and retry quickly below MinLinks.
	var cache []Peer
	for i := range 6 {
		cache = append(cache, Peer{MAC: wire.MAC{2, 1, 0, 0, 0, byte(i)}, Addr: netip.MustParseAddrPort("127.0.1.1:41744")})
	}
	seed := Peer{MAC: macOf("s"), Addr: addrOf("s")}
	tn := newNetWith(t, func(_ string, c *Config) {
		c.Cache, c.Seeds, c.MinLinks, c.MaxLinks = cache, []Peer{seed}, 2, 8
	}, "a")
	dials := tn.dials["a"]
	if len(dials) != 5 || dials[0] != seed {
		t.Fatalf("dials %v, want the seed then 4 cached peers (dialTarget 5)", dials)
	}
	n := tn.nodes["a"]
	// Every dial fails: those peers are backed off and the other two are
	// dialled at once, because a has fewer than MinLinks links.
	for _, d := range dials {
		n.Step(tn.now, DialFailed{d.MAC, errors.New("refused")})
	}
	tn.collect("a")
	tn.dials = map[string][]Peer{}
	tn.advance(100 * time.Millisecond)
	if got := tn.dials["a"]; len(got) != 2 || slices.Contains(got, seed) {
		t.Fatalf("after failures dials %v, want the 2 peers not yet tried", got)
	}
	for _, d := range tn.dials["a"] {
		n.Step(tn.now, DialFailed{d.MAC, errors.New("refused")})
	}
	tn.collect("a")
	tn.dials = map[string][]Peer{}
	// Everything is backed off now. A first failure backs off at most
	// 1.5 s: by 2 s the seed is dialled again, well before the 60 s
	// connect interval, and nothing is due before its backoff ends.
	if dl := n.NextDeadline(); dl.Sub(tn.now) > 2*time.Second || !dl.After(tn.now) {
		t.Fatalf("next deadline in %v, want a quick retry below MinLinks", dl.Sub(tn.now))
	}
	tn.advance(2 * time.Second)
	if !slices.Contains(tn.dials["a"], seed) {
		t.Fatalf("seed not redialled after its backoff: %v", tn.dials["a"])
	}
}

func TestNoBusyDeadlineAtMaxDials(t *testing.T) {
	// Below MinLinks but with MaxLinks dials pending, nothing can be dialled:
	// the next deadline must not be due already (a driver would spin).
	var cache []Peer
	for i := range 3 {
		cache = append(cache, Peer{MAC: wire.MAC{2, 1, 0, 0, 0, byte(i)}, Addr: netip.MustParseAddrPort("127.0.1.1:41744")})
	}
	tn := newNetWith(t, func(_ string, c *Config) { c.Cache, c.MinLinks, c.MaxLinks = cache, 2, 2 }, "a")
	if len(tn.dials["a"]) != 2 {
		t.Fatalf("dials %v, want 2", tn.dials["a"])
	}
	if d := tn.nodes["a"].NextDeadline(); !d.After(tn.now) {
		t.Fatalf("deadline %v is not after now %v", d, tn.now)
	}
}

func TestClockStepsBack(t *testing.T) {
	// A driver clock stepped back does not freeze the node's timers: the
	// node announces one interval of elapsed time after the step.
	tn := newNet(t, "a", "b")
	tn.link("a", "b")
	tn.run()
	n := tn.nodes["a"]
	back := tn.now.Add(-time.Hour)
	n.Step(back, Tick{})
	tn.collect("a")
	tn.reset()
	if d := n.NextDeadline(); d.Sub(back) > 5*time.Second || d.Before(back) {
		t.Fatalf("next deadline %v is not within one interval of the stepped-back clock %v", d, back)
	}
	n.Step(back.Add(5*time.Second), Tick{})
	tn.collect("a")
	if len(tn.sentOn("a", "b")) == 0 {
		t.Fatal("no announcement one interval after the clock stepped back")
	}
}

func TestNothingTooLongIsSent(t *testing.T) {
	// Every message a node builds fits the 2-byte length: a frame that
	// would not fit its encoding is dropped as too long, never sent.
	tn := newNet(t, "o", "b", "c")
	tn.link("o", "b", true)
	tn.link("b", "c")
	tn.run()
	tn.reset()
	big := make([]byte, wire.MaxMessage-1) // a 0x80 of 65535 bytes
	copy(big, frame(macOf("c"), macOf("o")))
	tn.inject("b", "o", (&wire.TargetedFrame{Frame: big}).Append(nil))
	group := make([]byte, wire.MaxMessage-2)
	copy(group, frame(wire.MAC{0x33, 0x33, 0, 0, 0, 1}, macOf("b")))
	tn.nodes["b"].FrameFromTAP(tn.now, group)
	tn.collect("b")
	trace := make([]wire.MAC, (wire.MaxMessage-16)/6)
	tn.inject("b", "c", (&wire.HealthRequest{ID: 9, Requester: macOf("c"), Traceroute: trace}).Append(nil))
	for _, s := range tn.sent["b"] {
		if len(s.Msg) > wire.MaxMessage {
			t.Errorf("b sent a %d-byte %v", len(s.Msg), wire.Type(s.Msg[0]))
		}
	}
	if d := tn.nodes["b"].Stats().Drops[DropTooLong]; d != 3 {
		t.Errorf("%d drops as too long, want 3 (relayed 0x80, group frame, health answer)", d)
	}
}

func TestRestartWithoutFloorLearnsIDsFromNeighbour(t *testing.T) {
	// A node restarted without its id floor and with its clock behind gets
	// its own route back from the neighbour's route copy, takes it as an
	// echo, and issues newer ids: it is routable at once.
	tn := newNet(t, "x", "a", "b")
	tn.link("x", "a")
	tn.link("a", "b")
	tn.run()
	tn.advance(5 * time.Second)
	tn.cut("x", "a")
	tn.add("x", 9, func(_ string, c *Config) {}) // no IDFloor
	back := tn.now.Add(-10 * time.Minute)
	tn.nodes["x"].Step(back, Tick{})
	tn.collect("x")
	tn.nextID += 2
	lx, la := tn.nextID-1, tn.nextID
	tn.ends[lx] = end{node: "x", peer: la}
	tn.ends[la] = end{node: "a", peer: lx}
	tn.nodes["x"].Step(back, LinkUp{lx, macOf("a"), addrOf("a"), true, true})
	tn.collect("x")
	tn.nodes["a"].Step(tn.now, LinkUp{la, macOf("x"), addrOf("x"), false, true})
	tn.collect("a")
	tn.run()
	// x's next announcement carries an id above the mesh's.
	tn.nodes["x"].Step(back.Add(5*time.Second), Tick{})
	tn.collect("x")
	tn.run()
	if tn.nextHop("b", "x") != "a" || tn.nextHop("a", "x") != "x" {
		t.Fatalf("restarted node not routable: a->%q b->%q", tn.nextHop("a", "x"), tn.nextHop("b", "x"))
	}
}

func TestStaleRoutesNotCopied(t *testing.T) {
	// A route nobody refreshed is not handed to a new link, so links that
	// come up after a node left cannot keep its route alive.
	tn := newNetWith(t, func(_ string, c *Config) { c.LinkTimeout = time.Hour }, "x", "a", "b", "c")
	tn.link("x", "a")
	tn.link("a", "b")
	tn.run()
	tn.advance(5 * time.Second)
	tn.cut("x", "a")
	tn.hold = func(m inflight) bool { return false }
	// b's route to x was withdrawn or kept; either way, a minute later a
	// new neighbour of b must not learn x from b.
	for range 12 {
		tn.advance(5 * time.Second)
	}
	tn.link("c", "b")
	tn.run()
	if tn.nextHop("c", "x") != "" {
		t.Fatal("c learned a route to a node that left a minute ago")
	}
}

func TestReplacedLinkIsNotALostPeer(t *testing.T) {
	// A redial that replaces a link to the same peer does not flood a 0x86.
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	tn.reset()
	tn.link("a", "b") // a redials b: a replaces the old link
	tn.run()
	for _, s := range tn.sent["a"] {
		if wire.Type(s.Msg[0]) == wire.TypeAnnounceRequest {
			t.Fatal("the node that replaced its link flooded a 0x86")
		}
	}
	if tn.nextHop("a", "c") != "b" {
		t.Fatal("route through the replaced link not restored")
	}
}

func TestExtensionTypesRefusedOnSeedLinks(t *testing.T) {
	// Extensions exist only where negotiated: from a seed-protocol peer a
	// 0x85 is an unknown type, not a trusted path.
	tn := newNet(t, "o", "b")
	tn.link("o", "b", true)
	tn.run()
	info := wire.Info{ID: uint64(t0.Add(time.Hour).UnixMilli()), MAC: macOf("z")}
	tn.inject("b", "o", (&wire.InfoPath{PathKnown: true, Path: []wire.MAC{macOf("o")}, Info: info}).Append(nil))
	if tn.nextHop("b", "z") != "" || tn.nodes["b"].Stats().Drops[DropUnknownType] != 1 {
		t.Fatal("0x85 from a seed-protocol link was used")
	}
}

// docs/protocol.md#health: a relay forwards a 0x8B toward its requester
// unchanged over an extended link, and drops it where the next hop is an
// original node, which knows no 0x8B.
func TestHealthLinksRelay(t *testing.T) {
	hl := wire.HealthLinks{Dest: macOf("a"), Origin: macOf("c"), ID: 5,
		Links: []wire.LinkRTT{{Peer: macOf("b"), RTT: 700 * time.Microsecond}}}
	msg := hl.Append(nil)
	for _, seed := range []bool{false, true} {
		tn := newNet(t, "a", "b", "c")
		tn.link("b", "a", seed)
		tn.link("b", "c")
		tn.run()
		tn.reset()
		tn.inject("b", "c", msg)
		var relayed [][]byte
		for _, m := range tn.sentOn("b", "a") {
			if wire.Type(m[0]) == wire.TypeHealthLinks {
				relayed = append(relayed, m)
			}
		}
		drops := tn.nodes["b"].Stats().Drops[DropUnknownType]
		switch {
		case !seed && (len(relayed) != 1 || !bytes.Equal(relayed[0], msg)):
			t.Errorf("over an extended link: relayed %x, want the 0x8B unchanged", relayed)
		case seed && (len(relayed) != 0 || drops != 1):
			t.Errorf("toward an original node: relayed %x, %d dropped; want it dropped", relayed, drops)
		}
	}
}

// TestRetiringLinkChecks: a retiring duplicate (link 4 at a, from
// simultaneous dials) takes only what a live link would: a malformed
// frame on it is a violation (the peer leaves the cache and is backed
// off), and it closes when the link it gave way to goes down.
func TestRetiringLinkChecks(t *testing.T) {
	setup := func() *tnet {
		tn := newNet(t, "a", "b")
		tn.link("a", "b") // a dials: ids 1 (a) / 2 (b), kept
		tn.link("b", "a") // b dials: ids 3 (b) / 4 (a), retiring
		tn.run()
		tn.reset()
		return tn
	}
	tn := setup()
	n := tn.nodes["a"]
	n.Receive(tn.now, 4, []byte{byte(wire.TypeLimitedFrame)}) // no hops byte, no frame
	tn.collect("a")
	if v := tn.eventsOf("a", EventViolation); len(v) != 1 || !errors.Is(v[0].Err, ErrMalformed) {
		t.Errorf("violations %v, want one for the malformed frame", v)
	}
	if ca := tn.closes["a"]; len(ca) != 1 || ca[0].Link != 4 {
		t.Errorf("closes %v, want the retiring link 4 closed for it", ca)
	}
	if n.links.retired(4) != nil || n.links.get(1) == nil {
		t.Errorf("after the violation: link 4 retiring %v, link 1 live %v; want 4 gone, 1 kept", n.links.retired(4) != nil, n.links.get(1) != nil)
	}

	tn = setup()
	n = tn.nodes["a"]
	n.Step(tn.now, LinkDown{1, errors.New("test: kept link down")})
	tn.collect("a")
	if ca := tn.closes["a"]; len(ca) != 1 || ca[0].Link != 4 {
		t.Errorf("closes %v after the kept link went down, want the retiring link 4", ca)
	}
	if n.links.retired(4) != nil {
		t.Errorf("link 4 still retiring after the link it gave way to went down")
	}
}
