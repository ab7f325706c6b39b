package node

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/invpn/invpn/wire"
)

// revocationSends returns the 0x8C messages name sent on its link to peer.
func revocationSends(tn *tnet, name, peer string) []wire.RevocationList {
	var out []wire.RevocationList
	for _, msg := range tn.sentOn(name, peer) {
		if wire.Type(msg[0]) == wire.TypeRevocationList {
			m, err := wire.DecodeRevocationList(msg)
			if err != nil {
				tn.t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	return out
}

// A list installed at one node reaches every node of a ring once: each
// checks it (hands it up) and passes it on to every neighbour but the one
// it came from; copies of a number already held are not handed up again.
func TestRevocationFloodsOnceAroundARing(t *testing.T) {
	tn := newNet(t, "a", "b", "c", "d")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.link("c", "d")
	tn.link("d", "a")
	tn.run()
	tn.reset()
	tn.trust = func(Revocation) bool { return true }

	der := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	tn.nodes["a"].Step(tn.now, SetRevocation{Number: 1, DER: der})
	tn.collect("a")
	tn.run()

	for _, name := range []string{"a", "b", "c", "d"} {
		if got := tn.nodes[name].RevocationNumber(); got != 1 {
			t.Errorf("%s holds list %d, want 1", name, got)
		}
	}
	if got := tn.revocations["a"]; len(got) != 0 {
		t.Errorf("a handed up %d copies of its own list", len(got))
	}
	for _, name := range []string{"b", "c", "d"} {
		got := tn.revocations[name]
		if len(got) != 1 || got[0].Number != 1 || !bytes.Equal(got[0].DER, der) {
			t.Errorf("%s handed up %+v, want one copy of list 1", name, got)
		}
	}
	// a sends to both neighbours; b and d pass it on away from a; c,
	// which got it from b first, passes it to d only.
	want := map[[2]string]int{{"a", "b"}: 1, {"a", "d"}: 1, {"b", "c"}: 1, {"d", "c"}: 1, {"c", "d"}: 1}
	for _, pair := range [][2]string{{"a", "b"}, {"a", "d"}, {"b", "a"}, {"b", "c"}, {"c", "b"}, {"c", "d"}, {"d", "c"}, {"d", "a"}} {
		if got := len(revocationSends(tn, pair[0], pair[1])); got != want[pair] {
			t.Errorf("%s sent %d lists to %s, want %d", pair[0], got, pair[1], want[pair])
		}
	}
}

// A forged list of the next number does not shadow the true one: every
// copy newer than the held list goes up to be checked, and a list the
// driver refuses is neither held nor passed on.
func TestForgedRevocationDoesNotShadowTheTrueOne(t *testing.T) {
	tn := newNet(t, "a", "b", "c")
	tn.link("a", "b")
	tn.link("b", "c")
	tn.run()
	forged := []byte{0x30, 0x01, 0x00}
	genuine := []byte{0x30, 0x03, 0x02, 0x01, 0x02}
	tn.trust = func(r Revocation) bool { return !bytes.Equal(r.DER, forged) }

	fake := wire.RevocationList{Number: 2, DER: forged}
	tn.inject("b", "a", fake.Append(nil))
	tn.run()
	if got := tn.nodes["b"].RevocationNumber(); got != 0 {
		t.Fatalf("b holds list %d after a forged one", got)
	}
	if got := revocationSends(tn, "b", "c"); len(got) != 0 {
		t.Fatalf("b passed a list it did not install on to c: %+v", got)
	}

	tn.nodes["a"].Step(tn.now, SetRevocation{Number: 2, DER: genuine})
	tn.collect("a")
	tn.run()
	if got := len(tn.revocations["b"]); got != 2 {
		t.Errorf("b handed up %d lists, want the forged and the true one", got)
	}
	for _, name := range []string{"b", "c"} {
		if got := tn.nodes[name].RevocationNumber(); got != 2 {
			t.Errorf("%s holds list %d, want 2", name, got)
		}
	}

	// An older or equal number is not handed up at all.
	tn.reset()
	old := wire.RevocationList{Number: 1, DER: genuine}
	tn.inject("b", "c", old.Append(nil))
	same := wire.RevocationList{Number: 2, DER: genuine}
	tn.inject("b", "c", same.Append(nil))
	if got := tn.revocations["b"]; len(got) != 0 {
		t.Errorf("b handed up lists not newer than its own: %+v", got)
	}
	// A 0x8C without a list is malformed.
	tn.inject("b", "c", []byte{0x8c, 0, 0, 0, 0, 0, 0, 0, 9})
	if v := tn.eventsOf("b", EventViolation); len(v) != 1 {
		t.Errorf("a 0x8C without a list gave %d violations, want 1", len(v))
	}
}

// A node that links later gets the list from its first neighbour; a
// seed-protocol neighbour (an original node, which knows no 0x8C) never
// gets one.
func TestNewNeighbourGetsTheRevocationList(t *testing.T) {
	tn := newNet(t, "a", "b", "e", "f")
	tn.link("a", "b")
	tn.run()
	tn.trust = func(Revocation) bool { return true }
	tn.nodes["a"].Step(tn.now, SetRevocation{Number: 5, DER: []byte{0x30, 0x00}})
	tn.collect("a")
	tn.run()

	tn.link("e", "b")
	tn.link("b", "f", true)
	tn.run()
	if got := tn.nodes["e"].RevocationNumber(); got != 5 {
		t.Errorf("the joiner holds list %d, want 5", got)
	}
	if got := revocationSends(tn, "b", "f"); len(got) != 0 {
		t.Errorf("b sent %d lists to a seed-protocol neighbour", len(got))
	}
	if got := revocationSends(tn, "e", "b"); len(got) != 0 {
		t.Errorf("the joiner sent the list back where it came from")
	}
}

// A dialled link that ends before the peer sent anything counts as a
// failed dial: a member that refuses us after the TLS 1.3 handshake (as
// every member refuses a revoked one) is backed off, not redialled at
// once in a loop. A link that carried a message resets the backoff.
func TestLinkRefusedAfterHandshakeIsBackedOff(t *testing.T) {
	tn := newNetWith(t, func(name string, c *Config) {
		if name == "a" {
			c.Seeds = []Peer{{MAC: macOf("b"), Addr: addrOf("b")}}
		}
	}, "a")
	a := tn.nodes["a"]
	if len(tn.dials["a"]) != 1 {
		t.Fatalf("a dialled %v at start, want its seed", tn.dials["a"])
	}
	tn.reset()
	refuse := func(id LinkID) {
		a.Step(tn.now, LinkUp{Link: id, Peer: macOf("b"), Addr: addrOf("b"), Dialed: true, Extended: true})
		tn.collect("a")
		a.Step(tn.now, LinkDown{Link: id, Reason: errors.New("EOF")})
		tn.collect("a")
	}
	refuse(1001)
	if got := tn.eventsOf("a", EventDialFailed); len(got) != 1 || !strings.Contains(got[0].Err.Error(), "closed before the peer sent anything") {
		t.Fatalf("dial-failed events %v, want one for the refused link", got)
	}
	tn.advance(a.Config().DialBackoffMin / 4)
	if len(tn.dials["a"]) != 0 {
		t.Fatalf("a redialled a peer that refused it at once: %v", tn.dials["a"])
	}
	// The backoff grows with every refusal, as for failed dials.
	for range 3 {
		tn.advance(a.Config().DialBackoffMax)
		refuse(1002)
	}
	tn.reset()
	tn.advance(a.Config().DialBackoffMin * 2)
	if len(tn.dials["a"]) != 0 {
		t.Errorf("after four refusals a redialled within two minimum backoffs")
	}

	// A link that carried a message is a link: its end is no failed dial.
	tn.advance(a.Config().DialBackoffMax * 2)
	tn.reset()
	a.Step(tn.now, LinkUp{Link: 1003, Peer: macOf("b"), Addr: addrOf("b"), Dialed: true, Extended: true})
	tn.collect("a")
	hb := wire.Heartbeat{Seq: 1}
	a.Receive(tn.now, 1003, hb.Append(nil))
	tn.collect("a")
	a.Step(tn.now, LinkDown{Link: 1003, Reason: errors.New("EOF")})
	tn.collect("a")
	if got := tn.eventsOf("a", EventDialFailed); len(got) != 0 {
		t.Errorf("a link that carried a message ended as a failed dial: %v", got)
	}
}
