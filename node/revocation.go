package node

import (
	"fmt"

	"github.com/invpn/invpn/wire"
)

// The group's certificate revocation list travels as a 0x8C
// (docs/protocol.md#revocation). The node does not parse or check it:
// crypto belongs to the driver. The node holds the newest list the driver
// installed (SetRevocation), hands every newer one that arrives to the
// driver to check (Ready.Revocations), floods a list once it is installed,
// and gives it to every extended neighbour that links later, so a node
// that joins gets it from its first neighbour. Closing the links of
// revoked members, and refusing them, is the driver's too: only it knows
// the certificates.

// revocation is the list the node holds: its number and its 0x8C,
// encoded once and never changed in place (sends alias it).
type revocation struct {
	number uint64
	msg    []byte
}

// SetRevocation installs a revocation list the driver checked: from its
// configuration, from its own store at start, or one that came in
// Ready.Revocations over link From (0 for none). A list whose Number is
// not above the one held is ignored; a newer one replaces it and goes to
// every extended neighbour but From. DER is copied.
type SetRevocation struct {
	Number uint64
	DER    []byte
	From   LinkID
}

func (SetRevocation) isInput() {}

func (in SetRevocation) String() string {
	return fmt.Sprintf("set revocation list %d (%d bytes) from link %d", in.Number, len(in.DER), in.From)
}

// Revocation is a list that came over a link with a Number above the one
// the node holds. The driver checks its signature and number and, if it
// believes it, gives it back as SetRevocation{From: Link}. DER aliases
// the received message: valid until Advance.
type Revocation struct {
	Link   LinkID
	Peer   wire.MAC
	Number uint64
	DER    []byte
}

// RevocationNumber returns the number of the list the node holds; 0 for
// none.
func (n *Node) RevocationNumber() uint64 { return n.revocation.number }

// setRevocation handles SetRevocation.
func (n *Node) setRevocation(in SetRevocation) {
	if in.Number <= n.revocation.number || len(in.DER) == 0 || len(in.DER) > wire.MaxRevocationList {
		return
	}
	m := wire.RevocationList{Number: in.Number, DER: in.DER}
	n.revocation = revocation{number: in.Number, msg: m.Append(nil)}
	for _, links := range [][]*link{n.links.order, n.links.directory} {
		for _, l := range links {
			if l.id != in.From {
				n.sendRevocation(l)
			}
		}
	}
}

// sendRevocation gives l the list the node holds, if any and if l is
// extended (an original node knows no 0x8C).
func (n *Node) sendRevocation(l *link) {
	if n.revocation.number != 0 && l.extended {
		n.send(l, n.revocation.msg, true)
	}
}

// receiveRevocation hands a list newer than the one held to the driver.
// Every copy goes up, not only the first: a member could send a forged
// list of the next number first, and the true one must still get through.
func (n *Node) receiveRevocation(l *link, msg []byte) {
	m, err := wire.DecodeRevocationList(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if m.Number <= n.revocation.number {
		return
	}
	n.ready.Revocations = append(n.ready.Revocations, Revocation{Link: l.id, Peer: l.peer, Number: m.Number, DER: m.DER})
}
