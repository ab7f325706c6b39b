package meshmap

import (
	"reflect"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

func mac(last byte) wire.MAC { return wire.MAC{2, 0, 0, 0, 0, last} }

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// answer is node origin's answer to request id of requester 1, which
// travelled out along path (from node 1) and back along path reversed.
func answer(id uint64, rtt time.Duration, path []wire.MAC, links ...wire.MAC) node.HealthResult {
	origin := path[len(path)-1]
	var back []wire.MAC
	for i := len(path) - 1; i > 0; i-- {
		back = append(back, path[i])
	}
	return node.HealthResult{At: t0.Add(rtt), Response: wire.HealthResponse{Dest: mac(1), Origin: origin, ID: id,
		Links: links, Traceroute: path, Reverse: back}}
}

// square is a 4-node ring 1-2, 1-3, 2-4, 3-4 as node 1 sees it.
func square(id uint64, at time.Time) (*control.Status, *control.Health) {
	st := &control.Status{MAC: mac(1),
		Links: []control.LinkStatus{
			{Peer: mac(2), Transport: "tls", RTTSeconds: 0.0012, Liveness: "up"},
			{Peer: mac(3), Transport: "tls", RTTSeconds: 0.0021, Liveness: "suspect"},
			{Peer: mac(9), Transport: "tls", Directory: true}, // a joiner taking the table: not drawn
		},
		Routes: []control.RouteStatus{
			{Target: mac(2), NextHop: mac(2), Hops: 1, Backups: []wire.MAC{}},
			{Target: mac(4), NextHop: mac(2), Hops: 2, Backups: []wire.MAC{mac(3)}},
			{Target: mac(3), NextHop: mac(3), Hops: 1, Backups: []wire.MAC{}},
		}}
	h := &control.Health{Requester: mac(1), ID: id, Start: at,
		Answers: []node.HealthResult{
			answer(id, 2*time.Millisecond, []wire.MAC{mac(1), mac(2)}, mac(1), mac(4)),
			answer(id, 3*time.Millisecond, []wire.MAC{mac(1), mac(3)}, mac(1), mac(4)),
			answer(id, 5*time.Millisecond, []wire.MAC{mac(1), mac(2), mac(4)}, mac(2), mac(3)),
		},
		// Node 4's links (0x8B); node 2's 0x8B is of another request.
		Links: []wire.HealthLinks{
			{Dest: mac(1), Origin: mac(4), ID: id, Links: []wire.LinkRTT{{Peer: mac(2), RTT: 3500 * time.Microsecond}, {Peer: mac(3)}}},
			{Dest: mac(1), Origin: mac(2), ID: id + 100, Links: []wire.LinkRTT{{Peer: mac(4), RTT: time.Second}}},
		},
		Routes: []node.RouteInfo{{Target: mac(2)}, {Target: mac(3)}, {Target: mac(4)}}}
	for i := range h.Answers {
		h.Answers[i].At = at.Add(h.Answers[i].At.Sub(t0))
	}
	return st, h
}

func TestUpdateDrawsTheMesh(t *testing.T) {
	st, h := square(7, t0)
	g := NewTracker(DefaultForget).Update(st, h)
	want := Graph{Self: "02:00:00:00:00:01", At: t0, Answered: 4,
		Nodes: []Node{
			{MAC: "02:00:00:00:00:01", State: StateSelf, Links: 2, Routes: 3, LastSeen: t0},
			{MAC: "02:00:00:00:00:02", State: StateAnswered, Hops: 1, RTTMillis: 2, Links: 2, LastSeen: t0},
			{MAC: "02:00:00:00:00:03", State: StateAnswered, Hops: 1, RTTMillis: 3, Links: 2, LastSeen: t0},
			{MAC: "02:00:00:00:00:04", State: StateAnswered, Hops: 2, RTTMillis: 5, Links: 2, LastSeen: t0},
		},
		Links: []Link{
			{A: "02:00:00:00:00:01", B: "02:00:00:00:00:02", Transport: "tls", RTTMillis: 1.2, Liveness: "up", OnPath: true},
			{A: "02:00:00:00:00:01", B: "02:00:00:00:00:03", Transport: "tls", RTTMillis: 2.1, Liveness: "suspect", OnPath: true},
			{A: "02:00:00:00:00:02", B: "02:00:00:00:00:04", RTTMillis: 3.5, OnPath: true},
			{A: "02:00:00:00:00:03", B: "02:00:00:00:00:04"},
		},
		Routes: []Route{
			{Target: "02:00:00:00:00:02", NextHop: "02:00:00:00:00:02", Hops: 1, Backups: []string{}},
			{Target: "02:00:00:00:00:03", NextHop: "02:00:00:00:00:03", Hops: 1, Backups: []string{}},
			{Target: "02:00:00:00:00:04", NextHop: "02:00:00:00:00:02", Hops: 2, Backups: []string{"02:00:00:00:00:03"}},
		}}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("graph:\n got %+v\nwant %+v", g, want)
	}
}

// TestUpdateAfterACut: node 4 lost its link to node 3 and node 3 listed
// it still (its answer is older): the link is one-sided. Then node 4
// stops answering: it stays on the map, silent, until Forget has passed.
func TestUpdateAfterACut(t *testing.T) {
	tr := NewTracker(time.Minute)
	st, h := square(1, t0)
	tr.Update(st, h)

	st, h = square(2, t0.Add(2*time.Second))
	h.Answers[2].Response.Links = []wire.MAC{mac(2)} // 4 no longer lists 3
	g := tr.Update(st, h)
	if l := g.Links[3]; l.A != "02:00:00:00:00:03" || l.B != "02:00:00:00:00:04" || !l.OneSided {
		t.Errorf("link 3-4 = %+v, want it one-sided", l)
	}
	if g.Links[2].OneSided {
		t.Errorf("link 2-4 = %+v, want both ends", g.Links[2])
	}

	// Node 4 crashed: 2 and 3 no longer list it, no route names it.
	st, h = square(3, t0.Add(4*time.Second))
	h.Answers = h.Answers[:2]
	h.Answers[0].Response.Links = []wire.MAC{mac(1)}
	h.Answers[1].Response.Links = []wire.MAC{mac(1)}
	h.Routes = h.Routes[:2]
	g = tr.Update(st, h)
	if len(g.Nodes) != 4 || g.Nodes[3].State != StateSilent || !g.Nodes[3].LastSeen.Equal(t0.Add(2*time.Second)) {
		t.Errorf("nodes = %+v, want node 4 silent, last seen at +2s", g.Nodes)
	}
	if len(g.Links) != 2 || g.Answered != 3 {
		t.Errorf("links = %+v, answered %d; want only node 1's two links and 3 answers", g.Links, g.Answered)
	}

	_, h = square(4, t0.Add(2*time.Second+time.Minute+time.Millisecond))
	h.Answers, h.Routes = h.Answers[:2], h.Routes[:2]
	for i := range h.Answers {
		h.Answers[i].Response.Links = []wire.MAC{mac(1)}
	}
	if g = tr.Update(st, h); len(g.Nodes) != 3 {
		t.Errorf("nodes = %+v, want node 4 forgotten after a minute", g.Nodes)
	}
}

// TestUpdateNamesTheUnanswered: a node that a route names but that did
// not answer is silent, and a link to it is not one-sided (its own end
// could not list it).
func TestUpdateNamesTheUnanswered(t *testing.T) {
	st, h := square(1, t0)
	h.Answers = h.Answers[:2] // node 4 did not answer
	g := NewTracker(DefaultForget).Update(st, h)
	n4 := g.Nodes[3]
	if n4.MAC != "02:00:00:00:00:04" || n4.State != StateSilent || !n4.LastSeen.IsZero() {
		t.Errorf("node 4 = %+v, want silent, never seen", n4)
	}
	for _, l := range g.Links[2:] {
		if l.OneSided {
			t.Errorf("link %+v to a silent node is marked one-sided", l)
		}
	}
}

// TestUpdateDropsOtherAnswers: an answer to another request, or a
// second answer of one node, does not draw links.
func TestUpdateDropsOtherAnswers(t *testing.T) {
	st, h := square(1, t0)
	stray := answer(9, time.Millisecond, []wire.MAC{mac(1), mac(5)}, mac(1), mac(6))
	h.Answers = append(h.Answers, stray)
	g := NewTracker(DefaultForget).Update(st, h)
	for _, n := range g.Nodes {
		if n.MAC == "02:00:00:00:00:05" || n.MAC == "02:00:00:00:00:06" {
			t.Errorf("node %s from another request's answer is on the map", n.MAC)
		}
	}
}
