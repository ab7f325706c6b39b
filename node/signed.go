package node

import (
	"bytes"
	"errors"

	"github.com/invpn/invpn/wire"
)

// Signed announcements (docs/protocol.md#signed-announcements). A member
// that takes another member's MAC in a relayed announcement (a 0x85 or
// 0x88 entry naming A with a high id, sent by C) would draw A's traffic:
// the link authenticates only its peer, and relays believed what they
// were told. With an Authenticator, a node signs each of its rounds (its
// MAC, the id and its port) with its certificate's key and sends the
// signature in a 0x8D before the announcement on every extended link;
// relays keep a member's signature with its route and send it, unchanged,
// before every copy they pass on, after the member's certificate (0x8E)
// the first time they name that member on a link. A receiver checks each
// signature once against the member's certificate and believes a relayed
// announcement from an extended link only when it carries the signature
// of its round. An announcement from the link's peer about itself needs
// none (the link's certificate is the peer's), and one from a
// seed-protocol link (an original node) cannot have one: it is believed,
// as before. The address is not signed: a member does not know the
// address others see it at (NAT); a forged address only makes dials
// fail, as the dialled peer must prove the MAC.

// Authenticator signs this node's announcements and checks other
// members' (docs/protocol.md#signed-announcements). The daemon implements
// it with the members' certificates; the simulator with a model that costs
// what the real one costs on the wire. The node calls it from Step.
type Authenticator interface {
	// Sign returns this node's signature of its round id with port.
	Sign(id uint64, port uint16) []byte
	// Learn takes a member's certificate that came over a link: it
	// checks it against the group's CA and keeps it for Verify, and
	// returns the member's MAC, and whether it keeps this certificate
	// now where it held none or an older one of the member (a renewal):
	// then the node passes it on again.
	Learn(der []byte) (mac wire.MAC, fresh bool, err error)
	// Certificate returns the certificate kept for mac, to pass on (this
	// node's own for its MAC); nil if none.
	Certificate(mac wire.MAC) []byte
	// Verify checks sig, mac's signature of its round id with port,
	// against mac's certificate. It returns an error wrapping
	// ErrNoCertificate when none is kept for mac.
	Verify(mac wire.MAC, id uint64, port uint16, sig []byte) error
}

// ErrNoCertificate is what Authenticator.Verify wraps when it holds no
// certificate of the member.
var ErrNoCertificate = errors.New("no certificate of the member")

// signature is a member's signature of one of its rounds, kept with its
// route to pass on.
type signature struct {
	id   uint64
	port uint16
	sig  []byte
}

// signing is the node's signature state.
type signing struct {
	// sigs holds the newest checked signature of each member.
	sigs map[macKey]signature
	own  signature // this node's, of its latest round
	// vouches are the signatures the next 0x8D to a link carries.
	vouches []wire.Signature
	certs   []wire.MAC // the certificates to send before it
}

// signs reports whether the node signs and checks announcements.
func (n *Node) signs() bool { return n.cfg.Auth != nil }

// ownSignature returns this node's signature of its latest round.
func (n *Node) ownSignature() signature {
	id, port := n.clock.announced, n.ownInfo(n.clock.announced).Port
	if n.sign.own.sig == nil || n.sign.own.id != id || n.sign.own.port != port {
		n.sign.own = signature{id: id, port: port, sig: n.cfg.Auth.Sign(id, port)}
	}
	return n.sign.own
}

// vouch notes that an announcement of mac's round id with port is about
// to go to l: the next sendVouches sends its signature, and mac's
// certificate if l has not had it. Nothing is noted for a seed-protocol
// link, or when the node holds no signature of that round.
func (n *Node) vouch(l *link, mac wire.MAC, id uint64, port uint16) {
	if !n.signs() || !l.extended || l.directory {
		return
	}
	var s signature
	if mac == n.cfg.MAC {
		s = n.ownSignature()
	} else if s = n.sign.sigs[keyOf(mac)]; s.sig == nil {
		return
	}
	if s.id != id || s.port != port {
		return
	}
	if _, ok := l.certsHeld[keyOf(mac)]; !ok {
		n.sign.certs = append(n.sign.certs, mac)
	}
	n.sign.vouches = append(n.sign.vouches, wire.Signature{MAC: mac, ID: id, Port: port, Sig: s.sig})
}

// sendVouches sends l the certificates and signatures noted by vouch,
// before the announcements they vouch for. A certificate the node does
// not hold is not marked sent: it goes once the node has it.
func (n *Node) sendVouches(l *link) {
	for _, mac := range n.sign.certs {
		if der := n.cfg.Auth.Certificate(mac); len(der) > 0 && len(der) < wire.MaxMessage {
			if l.certsHeld == nil {
				l.certsHeld = map[macKey]struct{}{}
			}
			l.certsHeld[keyOf(mac)] = struct{}{}
			n.send(l, n.encode(&wire.Certificate{DER: der}), true)
		}
	}
	v := n.sign.vouches
	for len(v) > 0 {
		size, k := 3, 0
		for k < len(v) && size+wire.SignatureLen(&v[k]) <= wire.MaxMessage {
			size += wire.SignatureLen(&v[k])
			k++
		}
		n.send(l, n.encode(&wire.Signatures{Entries: v[:k]}), true)
		v = v[k:]
	}
	clear(n.sign.vouches)
	n.sign.vouches, n.sign.certs = n.sign.vouches[:0], n.sign.certs[:0]
}

// sendVouched sends l msg, an announcement of mac's round id with port,
// after its signature and certificate (vouch, sendVouches).
func (n *Node) sendVouched(l *link, msg []byte, mac wire.MAC, id uint64, port uint16) {
	n.vouch(l, mac, id, port)
	n.sendVouches(l)
	n.send(l, msg, true)
}

// sendOwnCertificate gives a new extended link this node's certificate,
// first, so that the peer can check the signatures of its rounds.
func (n *Node) sendOwnCertificate(l *link) {
	if !n.signs() || !l.extended {
		return
	}
	if der := n.cfg.Auth.Certificate(n.cfg.MAC); len(der) > 0 {
		if l.certsHeld == nil {
			l.certsHeld = map[macKey]struct{}{}
		}
		l.certsHeld[keyOf(n.cfg.MAC)] = struct{}{}
		n.send(l, n.encode(&wire.Certificate{DER: der}), true)
	}
}

// receiveCertificate hands a member's certificate to the Authenticator.
func (n *Node) receiveCertificate(l *link, msg []byte) {
	m, err := wire.DecodeCertificate(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if !n.signs() {
		return
	}
	mac, fresh, err := n.cfg.Auth.Learn(m.DER)
	if err != nil {
		n.drop(DropBadCertificate, l.peer)
		return
	}
	if fresh {
		// A renewed certificate: the neighbours that had the old one get
		// this one before the member's next signature.
		for _, links := range [][]*link{n.links.order, n.links.directory} {
			for _, o := range links {
				delete(o.certsHeld, keyOf(mac))
			}
		}
	}
	if l.certsHeld == nil {
		l.certsHeld = map[macKey]struct{}{}
	}
	l.certsHeld[keyOf(mac)] = struct{}{} // the peer has it: never sent back
}

// receiveSignatures checks the signatures of a 0x8D and keeps, per
// member, the newest that verifies. A copy of a signature already held
// is not checked again.
func (n *Node) receiveSignatures(l *link, msg []byte) {
	m, err := wire.DecodeSignatures(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if !n.signs() {
		return
	}
	if n.sign.sigs == nil {
		n.sign.sigs = map[macKey]signature{}
	}
	for _, e := range m.Entries {
		k := keyOf(e.MAC)
		held, ok := n.sign.sigs[k]
		if ok && (e.ID < held.id || e.ID == held.id && e.Port == held.port && bytes.Equal(e.Sig, held.sig)) {
			continue
		}
		if err := n.cfg.Auth.Verify(e.MAC, e.ID, e.Port, e.Sig); err != nil {
			if errors.Is(err, ErrNoCertificate) {
				n.drop(DropUnverifiable, e.MAC)
			} else {
				n.stats.Forgeries++
				n.stats.Drops[DropForged]++
				n.event(Event{Kind: EventDrop, MAC: e.MAC, Link: l.id, Drop: DropForged, Err: err})
			}
			continue
		}
		n.sign.sigs[k] = signature{id: e.ID, port: e.Port, sig: bytes.Clone(e.Sig)}
	}
}

// believed reports whether an announcement of info that came over l may
// be used: always without an Authenticator, or from the member itself
// (the link's certificate is its own); from a seed-protocol link (an
// original node signs nothing) unless Config.RefuseOriginalRelays;
// otherwise only with a checked signature of its round, unless
// Config.AcceptUnsigned. This node's own MAC is no exception: a round of
// ours newer than any we sent must carry our signature.
func (n *Node) believed(l *link, info wire.Info) bool {
	if !n.signs() || info.MAC == l.peer {
		return true
	}
	if info.MAC == n.cfg.MAC && info.ID <= n.clock.announced {
		// An echo of a round of ours, or an older one: harmless. A newer
		// one makes us announce above it, so it needs our own signature
		// (a restart that lost the id floor finds its signed rounds in
		// the mesh): else a member could push our ids to the end of
		// their range.
		return true
	}
	if !l.extended {
		if n.cfg.RefuseOriginalRelays {
			n.drop(DropUnsigned, info.MAC)
			return false
		}
		n.stats.UnsignedFromOriginal++
		return true
	}
	if s, ok := n.sign.sigs[keyOf(info.MAC)]; ok && s.id == info.ID && s.port == info.Port {
		return true
	}
	if r := n.routes.get(info.MAC); r != nil && info.ID <= r.id {
		// An older round, dropped as such, or another copy of the round
		// the route took, which was believed then: it may be a backup,
		// whose path any member may really be on.
		return true
	}
	n.stats.Unsigned++
	if n.cfg.AcceptUnsigned {
		return true
	}
	n.drop(DropUnsigned, info.MAC)
	return false
}

// forgetSignatures drops the signatures of members no longer routed.
func (n *Node) forgetSignatures() {
	for k := range n.sign.sigs {
		if n.routes.get(k.mac()) == nil {
			delete(n.sign.sigs, k)
		}
	}
}
