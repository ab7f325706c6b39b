package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
)

// fakeAuth is an Authenticator whose certificates are "cert", a MAC and
// a generation byte (a renewal has a higher one), and whose signatures
// are "sig", the MAC, the id and the port: only the member's own fakeAuth
// makes them, as only a member holds its key.
type fakeAuth struct {
	mac   wire.MAC
	known map[wire.MAC]bool
	gen   map[wire.MAC]byte
}

func newFakeAuth(mac wire.MAC) *fakeAuth {
	return &fakeAuth{mac: mac, known: map[wire.MAC]bool{mac: true}, gen: map[wire.MAC]byte{}}
}

func fakeSig(mac wire.MAC, id uint64, port uint16) []byte {
	b := append([]byte("sig"), mac[:]...)
	b = binary.BigEndian.AppendUint64(b, id)
	return binary.BigEndian.AppendUint16(b, port)
}

func (a *fakeAuth) Sign(id uint64, port uint16) []byte { return fakeSig(a.mac, id, port) }

func (a *fakeAuth) Learn(der []byte) (wire.MAC, bool, error) {
	if len(der) != 11 || string(der[:4]) != "cert" {
		return wire.MAC{}, false, errors.New("not a certificate of the group")
	}
	mac := wire.MAC(der[4:10])
	fresh := !a.known[mac] || der[10] > a.gen[mac]
	if fresh {
		a.known[mac], a.gen[mac] = true, der[10]
	}
	return mac, fresh, nil
}

func (a *fakeAuth) Certificate(mac wire.MAC) []byte {
	if !a.known[mac] {
		return nil
	}
	return append(append([]byte("cert"), mac[:]...), a.gen[mac])
}

func (a *fakeAuth) Verify(mac wire.MAC, id uint64, port uint16, sig []byte) error {
	if !a.known[mac] {
		return fmt.Errorf("%s: %w", mac, ErrNoCertificate)
	}
	if !bytes.Equal(sig, fakeSig(mac, id, port)) {
		return errors.New("bad signature")
	}
	return nil
}

// signedNet is a line a - b - c - d of signing nodes, with m, a member
// with a valid certificate but no key of anyone else's, linked to c; and
// x, a node that signs nothing (an older version), between a and e.
func signedNet(t *testing.T, quiet bool, edit func(string, *Config)) *tnet {
	tn := newNetWith(t, func(name string, c *Config) {
		if name != "x" {
			c.Auth = newFakeAuth(macOf(name))
		}
		if quiet {
			c.HeartbeatInterval, c.RefreshInterval = 250*time.Millisecond, 120*time.Second
		}
		edit(name, c)
	}, "a", "b", "c", "d", "m", "x", "e")
	for _, l := range [][2]string{{"a", "b"}, {"b", "c"}, {"c", "d"}, {"m", "c"}, {"a", "x"}, {"x", "e"}} {
		tn.link(l[0], l[1])
	}
	tn.run()
	if quiet {
		for range 5 {
			tn.advance(100 * time.Millisecond) // batches wait up to BatchDelay
		}
	}
	return tn
}

// Relayed announcements carry their member's signature and certificate:
// every signing node routes to every other through signing relays. A
// forged announcement of a with a high id, from a member that cannot sign
// for a, is dropped with or without a forged signature, and a's traffic
// keeps its path.
func TestSignedAnnouncementsRefuseForgery(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		t.Run(fmt.Sprintf("quiet=%v", quiet), func(t *testing.T) {
			tn := signedNet(t, quiet, func(string, *Config) {})
			for _, pair := range [][2]string{{"d", "a"}, {"a", "d"}, {"m", "a"}, {"d", "m"}} {
				if tn.nextHop(pair[0], pair[1]) == "" {
					t.Fatalf("%s has no route to %s through signing relays", pair[0], pair[1])
				}
			}
			if got := tn.nextHop("d", "a"); got != "c" {
				t.Fatalf("d routes to a via %s, want c", got)
			}
			ri, _ := tn.nodes["d"].Route(macOf("a"))
			forgery := wire.InfoPath{PathKnown: true, Path: []wire.MAC{macOf("m")},
				Info: wire.Info{ID: ri.ID + 1_000_000, MAC: macOf("a"), Port: 41744}}
			tn.inject("c", "m", forgery.Append(nil))
			sigs := wire.Signatures{Entries: []wire.Signature{{MAC: macOf("a"), ID: forgery.ID, Port: 41744, Sig: []byte("forged")}}}
			tn.inject("c", "m", sigs.Append(nil))
			tn.inject("c", "m", forgery.Append(nil))
			tn.run()
			if quiet {
				tn.advance(300 * time.Millisecond)
			}
			st := tn.nodes["c"].Stats()
			if st.Drops[DropUnsigned] != 2 || st.Forgeries != 1 {
				t.Errorf("c: %d unsigned drops, %d forgeries; want 2 and 1", st.Drops[DropUnsigned], st.Forgeries)
			}
			for _, name := range []string{"c", "d"} {
				if got := tn.nextHop(name, "a"); got == "m" {
					t.Errorf("%s routes a's traffic to the forger", name)
				}
				if ri, _ := tn.nodes[name].Route(macOf("a")); ri.ID == forgery.ID {
					t.Errorf("%s holds the forged round", name)
				}
			}
			// The node that signs nothing: its relays of a reach e, which
			// is no signing node's business, but e's own rounds, relayed
			// by x, carry no signature, and a drops them.
			if got := tn.nextHop("a", "e"); got != "" {
				t.Errorf("a routes to e via %s on an unsigned relay", got)
			}
		})
	}
}

// An original node's own announcement is believed (its link's certificate
// is its own); what it relays of others is believed and counted, or
// refused with RefuseOriginalRelays.
func TestRelaysOfOriginalNodes(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		tn := newNetWith(t, func(name string, c *Config) {
			if name != "o" {
				c.Auth = newFakeAuth(macOf(name))
			}
			c.RefuseOriginalRelays = refuse
		}, "a", "o", "z")
		tn.link("a", "o", true) // a seed-protocol link: o is an original node
		tn.link("o", "z", true)
		tn.run()
		if tn.nextHop("a", "o") != "o" {
			t.Errorf("refuse=%v: a has no route to the original node itself", refuse)
		}
		got, st := tn.nextHop("a", "z"), tn.nodes["a"].Stats()
		switch {
		case refuse && (got != "" || st.Drops[DropUnsigned] == 0):
			t.Errorf("refusing: a routes to z via %q, %d unsigned drops", got, st.Drops[DropUnsigned])
		case !refuse && (got != "o" || st.UnsignedFromOriginal == 0):
			t.Errorf("believing: a routes to z via %q, %d counted", got, st.UnsignedFromOriginal)
		}
	}
}

// A renewed certificate travels on: a node that learns it passes it to
// its neighbours before the member's next signature, though they had the
// old one.
func TestRenewedCertificateTravels(t *testing.T) {
	tn := signedNet(t, false, func(string, *Config) {})
	macA := macOf("a")
	renewed := append(append([]byte("cert"), macA[:]...), 1)
	c := wire.Certificate{DER: renewed}
	tn.reset()
	tn.inject("b", "a", c.Append(nil))
	tn.nodes["a"].Step(tn.now, Tick{})
	tn.advance(tn.nodes["a"].Config().AnnounceInterval) // a's next round
	for _, name := range []string{"c", "d"} {
		if got := tn.nodes[name].cfg.Auth.(*fakeAuth).gen[macOf("a")]; got != 1 {
			t.Errorf("%s holds generation %d of a's certificate, want the renewal", name, got)
		}
	}
}

// With AcceptUnsigned (an upgrade, while some nodes sign nothing yet),
// unsigned relayed rounds are believed and counted; forged signatures are
// still refused.
func TestAcceptUnsignedDuringAnUpgrade(t *testing.T) {
	tn := signedNet(t, false, func(_ string, c *Config) { c.AcceptUnsigned = true })
	if got := tn.nextHop("a", "e"); got != "x" {
		t.Errorf("a routes to e via %q, want x", got)
	}
	if tn.nodes["a"].Stats().Unsigned == 0 {
		t.Error("a counted no unsigned announcements")
	}
}
