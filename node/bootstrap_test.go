package node

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// cached reports whether n's peer cache holds mac.
func cached(n *Node, mac wire.MAC) bool {
	return slices.ContainsFunc(n.Cache(), func(p Peer) bool { return p.MAC == mac })
}

// directoryLinks returns the peers of n's directory links.
func directoryLinks(n *Node) []wire.MAC {
	var out []wire.MAC
	for _, l := range n.Links() {
		if l.Directory {
			out = append(out, l.Peer)
		}
	}
	return out
}

// announcementsIn counts the announcements (0x00, 0x01, 0x85, 0x88)
// among msgs.
func announcementsIn(msgs [][]byte) int {
	k := 0
	for _, m := range msgs {
		switch wire.Type(m[0]) {
		case wire.TypeInitialInfo, wire.TypeInfo, wire.TypeInfoPath, wire.TypeInfoBatch:
			k++
		}
	}
	return k
}

// docs/protocol.md#link-limit: a node that knows only a bootstrap peer
// takes its table over a directory link into the cache, routes nothing
// over it, links to cached peers, and closes the directory link once it
// has MinLinks mesh links.
func TestBootstrapDirectoryLink(t *testing.T) {
	tn := newNet(t, "b", "c", "d")
	tn.link("c", "b")
	tn.link("d", "b")
	tn.link("d", "c")
	tn.run()
	tn.advance(time.Second)

	boot := Peer{MAC: macOf("b"), Addr: addrOf("b")}
	j := tn.add("j", 9, func(_ string, c *Config) { c.Bootstrap, c.MinLinks = []Peer{boot}, 2 })
	if got := tn.dials["j"]; len(got) != 1 || got[0] != boot {
		t.Fatalf("a new node dials %v, want its bootstrap peer alone", got)
	}
	tn.reset()
	tn.link("j", "b")
	tn.run()
	if got := directoryLinks(j); len(got) != 1 || got[0] != macOf("b") {
		t.Fatalf("directory links %v, want the one to b", got)
	}
	if !cached(j, macOf("c")) || !cached(j, macOf("d")) {
		t.Errorf("cache %v, want c and d from b's table", j.Cache())
	}
	if _, ok := j.Route(macOf("c")); ok {
		t.Errorf("a route to c over the directory link")
	}
	if k := announcementsIn(tn.sentOn("j", "b")); k != 0 {
		t.Errorf("j sent %d announcements over its directory link, want none", k)
	}

	// Below MinLinks, j dials the cached peers at once, not b again.
	tn.advance(10 * time.Millisecond)
	dials := tn.dials["j"]
	if !slices.ContainsFunc(dials, func(p Peer) bool { return p.MAC == macOf("c") }) ||
		slices.ContainsFunc(dials, func(p Peer) bool { return p.MAC == macOf("b") }) {
		t.Fatalf("dials %v, want c (and d), not b", dials)
	}
	tn.link("j", "c")
	tn.link("j", "d")
	tn.run()
	tn.advance(4 * DefaultConfig().BatchDelay)
	var done bool
	for _, c := range tn.closes["j"] {
		done = done || errors.Is(c.Reason, ErrDirectoryDone)
	}
	if !done || len(directoryLinks(j)) != 0 {
		t.Fatalf("closes %v, directory links %v: want the link to b closed as done", tn.closes["j"], directoryLinks(j))
	}
	if hop := tn.nextHop("j", "b"); hop != "c" && hop != "d" {
		t.Errorf("j routes to b via %q, want c or d", hop)
	}
	for _, e := range tn.eventsOf("b", EventRouteWithdrawn) {
		t.Errorf("b withdrew a route when j's directory link closed: %+v", e)
	}
}

// docs/protocol.md#link-limit: a node at MaxLinks mesh links answers a
// link dialled to it with a 0x8A first, then its table to a dialler new
// to the mesh (none to one it has a route to); the dialler takes the
// link as a directory link and does not redial at once.
func TestLinkFull(t *testing.T) {
	tn := newNetWith(t, func(name string, c *Config) {
		if name == "b" {
			c.MinLinks, c.MaxLinks = 1, 1
		}
	}, "a", "b", "c")
	tn.link("a", "b")
	tn.run()
	tn.reset()

	tn.link("c", "b")
	out := tn.sentOn("b", "c")
	if len(out) == 0 || wire.Type(out[0][0]) != wire.TypeLinkFull {
		t.Fatalf("b's first message to c: %x, want a 0x8A", out)
	}
	if announcementsIn(out) == 0 {
		t.Errorf("b sent c, new to the mesh, no table")
	}
	tn.run()
	if mesh, dir := tn.nodes["b"].LinkCounts(); mesh != 1 || dir != 1 {
		t.Errorf("b has %d mesh and %d directory links, want 1 and 1", mesh, dir)
	}
	c := tn.nodes["c"]
	if got := directoryLinks(c); len(got) != 1 || got[0] != macOf("b") {
		t.Fatalf("c's directory links %v, want b", got)
	}
	if !cached(c, macOf("a")) {
		t.Errorf("c's cache %v lacks a", c.Cache())
	}
	if _, ok := c.Route(macOf("a")); ok {
		t.Errorf("c routes to a over the directory link")
	}
	// The hold runs out; c, left with no mesh link, does not redial b
	// at once (b said it is full) but dials a.
	tn.advance(directoryHold)
	if got := directoryLinks(c); len(got) != 0 {
		t.Fatalf("directory links %v after the hold", got)
	}
	tn.advance(10 * time.Millisecond)
	if slices.ContainsFunc(tn.dials["c"], func(p Peer) bool { return p.MAC == macOf("b") }) {
		t.Errorf("c redialled b within its backoff: %v", tn.dials["c"])
	}
	if !slices.ContainsFunc(tn.dials["c"], func(p Peer) bool { return p.MAC == macOf("a") }) {
		t.Errorf("c did not dial a from its cache: %v", tn.dials["c"])
	}

	// A dialler b routes to already has the mesh's addresses: 0x8A alone.
	tn.link("c", "a")
	tn.run()
	tn.reset()
	tn.dials = map[string][]Peer{}
	tn.nodes["c"].Step(tn.now, Tick{})
	tn.link("c", "b") // as if its backoff were over
	out = tn.sentOn("b", "c")
	if len(out) != 1 || wire.Type(out[0][0]) != wire.TypeLinkFull {
		t.Errorf("b sent %d messages to c, which it routes to: want the 0x8A alone", len(out))
	}
}
