package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// Revocation in the simulator (docs/protocol.md#revocation). A revoke
// fault gives one live node a new list, as an operator's SIGHUP does; the
// engines flood it (0x8C); each node's driver "checks" it (the list is the
// world's own: a forged list would not check, and no fault forges one),
// installs it, saves it with its peer cache (it survives a crash), closes
// its links to revoked members, and refuses them in every handshake. The
// list costs its real size on the wire: about 200 bytes and 40 per entry.

// simList is a revocation list: its number and the revoked members.
type simList struct {
	number  uint64
	revoked []wire.MAC
}

var simCRLTag = [8]byte{'s', 'i', 'm', 'c', 'r', 'l', 0, 0}

// der encodes l as the engines carry it: a tag, the number, the count,
// the MACs, padded to the size of a real CRL of as many entries.
func (l simList) der() []byte {
	b := append(simCRLTag[:8:8], make([]byte, 10)...)
	binary.BigEndian.PutUint64(b[8:], l.number)
	binary.BigEndian.PutUint16(b[16:], uint16(len(l.revoked)))
	for _, m := range l.revoked {
		b = append(b, m[:]...)
	}
	return append(b, make([]byte, max(0, 200+40*len(l.revoked)-len(b)))...)
}

// parseSimList reads a list a node handed up.
func parseSimList(der []byte) (simList, error) {
	if len(der) < 18 || [8]byte(der[:8]) != simCRLTag {
		return simList{}, errors.New("sim: not a revocation list of the group")
	}
	l := simList{number: binary.BigEndian.Uint64(der[8:16])}
	k := int(binary.BigEndian.Uint16(der[16:18]))
	if len(der) < 18+6*k {
		return simList{}, errors.New("sim: revocation list cut short")
	}
	for i := range k {
		l.revoked = append(l.revoked, wire.MAC(der[18+6*i:]))
	}
	return l, nil
}

// errRevoked is the handshake's refusal of a revoked member.
var errRevoked = errors.New("certificate revoked")

// refuses reports whether node sn's list revokes mac.
func (sn *simNode) refuses(mac wire.MAC) bool { return slices.Contains(sn.crl.revoked, mac) }

// revokeWatch is one revoke fault: when the member was revoked, and when
// the last link to it closed.
type revokeWatch struct {
	target    int
	at        int64
	cutOffAt  int64 // -1 until then
	fault     string
	installer int
}

// RevokeFault revokes Node's certificate: a random other live node, not
// revoked itself, gets the new list.
type RevokeFault struct{ Node NodeRef }

// Action returns "revoke".
func (RevokeFault) Action() string { return "revoke" }

func (f RevokeFault) apply(w *World, _ faultEnv, _ time.Duration) {
	i := f.Node.pick(w)
	var up []int
	for j, sn := range w.cluster.nodes {
		if j != i && sn.n != nil && !slices.Contains(w.crl.revoked, sn.mac) {
			up = append(up, j)
		}
	}
	if len(up) > 0 {
		w.Revoke(i, up[w.Rand().IntN(len(up))])
	}
}

// Revoke adds node i to the group's revocation list and gives the new
// list to node at, as `invpn cert revoke` and a SIGHUP of that member do.
func (w *World) Revoke(i, at int) {
	c := w.cluster
	w.crl = simList{number: w.crl.number + 1, revoked: append(slices.Clone(w.crl.revoked), c.nodes[i].mac)}
	w.revokes = append(w.revokes, &revokeWatch{target: i, at: w.now, cutOffAt: -1,
		fault: fmt.Sprintf("revoke %s at %s", w.Name(i), w.Name(at)), installer: at})
	w.trace.record(traceRec{kind: evAction, node: int32(at), peer: int32(i), aux: w.crl.number})
	c.install(at, w.crl, 0)
	for d := time.Millisecond; d <= revokeWatchFor; d += time.Millisecond {
		w.After(d, w.checkRevoked)
	}
}

// revokeWatchFor is how long after a revocation the world looks every
// millisecond for links still up to the revoked member.
const revokeWatchFor = 5 * time.Second

// install makes l node i's list if it is newer than the one it holds:
// the engine gets it (and floods it on, not back over from), it is kept
// with the peer cache, and the node's links to revoked members close.
func (c *cluster) install(i int, l simList, from node.LinkID) {
	sn := c.nodes[i]
	if sn.n == nil || l.number <= sn.crl.number {
		return
	}
	sn.crl = l
	sn.n.Step(c.nodeTime(i), node.SetRevocation{Number: l.number, DER: l.der(), From: from})
	c.drain(i)
	for _, cn := range c.w.net.connsOf(i) {
		k := 0
		if cn.end[1].node == i {
			k = 1
		}
		peer := c.nodes[cn.end[1-k].node]
		if sn.n == nil || !cn.end[k].up || !sn.refuses(peer.mac) {
			continue
		}
		id := cn.end[k].id
		err := fmt.Errorf("peer %s: %w (list %d)", peer.mac, errRevoked, l.number)
		sn.n.Step(c.nodeTime(i), node.LinkDown{Link: id, Reason: err})
		c.drain(i)
		c.w.net.closeByNode(i, node.Close{Link: id, Reason: err})
	}
}

// heardRevocations installs the lists node i handed up that check.
func (c *cluster) heardRevocations(i int, rs []node.Revocation) {
	for _, r := range rs {
		l, err := parseSimList(r.DER)
		if err != nil || l.number != r.Number {
			continue
		}
		c.install(i, l, r.Link)
	}
}

// checkRevoked notes when the last working link to each revoked member
// closed.
func (w *World) checkRevoked() {
	for _, r := range w.revokes {
		if r.cutOffAt >= 0 || w.now-r.at > int64(revokeWatchFor) {
			continue
		}
		linked := false
		for _, cn := range w.net.connsOf(r.target) {
			if cn.end[0].up && cn.end[1].up && !cn.end[1].accepting && !cn.reset {
				linked = true
				break
			}
		}
		if !linked {
			r.cutOffAt = w.now
		}
	}
}
