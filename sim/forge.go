package sim

import (
	"fmt"
	"time"

	"github.com/invpn/invpn/wire"
)

// A forger is a member with a valid certificate that announces another
// member's MAC, as if relaying it, with a round newer than any of the
// victim's (docs/protocol.md#signed-announcements). A node that took the
// round would route the victim's traffic to the forger, which is on no
// path of that round. The forger sends a signature with it that it cannot
// have made: a real member holds no other member's key.

// forgedRound is one forgery: the victim, the round, the forger.
type forgedRound struct {
	victim, forger int
	id             uint64
	taken          map[int]bool // the nodes found holding it
}

// ForgeFault makes Node forge an announcement of Victim on every
// extended link it has.
type ForgeFault struct {
	Node, Victim NodeRef
}

// Action returns "forge".
func (ForgeFault) Action() string { return "forge" }

func (f ForgeFault) apply(w *World, _ faultEnv, _ time.Duration) {
	i, v := f.Node.pick(w), f.Victim.pick(w)
	if i != v {
		w.Forge(i, v)
	}
}

// Forge makes node i send, on each of its extended links, a 0x8D with a
// signature of victim v's next hour that is not v's, and a 0x85 of that
// round with the path [i]. It does nothing while i is down.
func (w *World) Forge(i, v int) {
	c := w.cluster
	sn := c.nodes[i]
	if sn.n == nil || i == v {
		return
	}
	id := uint64(c.nodeTime(i).Add(time.Hour).UnixMilli())
	victim := c.nodes[v]
	forgery := wire.InfoPath{PathKnown: true, Path: []wire.MAC{sn.mac},
		Info: wire.Info{ID: id, MAC: victim.mac, Port: Port, Addr: victim.addr.Addr()}}
	sig := wire.Signatures{Entries: []wire.Signature{{MAC: victim.mac, ID: id, Port: Port, Sig: make([]byte, simSigLen)}}}
	for _, cn := range w.net.connsOf(i) { // in link order: map order must not reach the trace
		if !cn.e.ext || cn.directory {
			continue
		}
		c.inject(i, cn, sig.Append(nil))
		c.inject(i, cn, forgery.Append(nil))
	}
	w.forged = append(w.forged, &forgedRound{victim: v, forger: i, id: id, taken: map[int]bool{}})
	w.trace.record(traceRec{kind: evAction, node: int32(i), peer: int32(v), aux: id})
	// Without signatures the round is taken near the forger until the
	// victim hears of it and announces above it, a flood time later:
	// look every millisecond until then, not only at the probes.
	for d := time.Millisecond; d <= forgeWatch; d += time.Millisecond {
		w.After(d, w.checkForged)
	}
}

// forgeWatch is how long after a forgery the world looks every
// millisecond for nodes that took it.
const forgeWatch = 100 * time.Millisecond

// inject sends msg from node i on cn as if its engine had: the forger's
// own messages.
func (c *cluster) inject(i int, cn *conn, msg []byte) {
	w := c.w
	end := 0
	if cn.end[1].node == i {
		end = 1
	}
	cp := w.net.pool.share(msg)
	w.net.pool.hold(cp)
	w.net.transmit(cn, end, cp, true)
}

// checkForged records a "forged route" violation for every node other
// than the forger that holds a forged round; the measurer calls it at
// every probe.
func (w *World) checkForged() {
	for _, f := range w.forged {
		victim := w.cluster.nodes[f.victim].mac
		for j, sn := range w.cluster.nodes {
			if j == f.forger || sn.n == nil || f.taken[j] {
				continue
			}
			if ri, ok := sn.n.Route(victim); ok && ri.ID == f.id {
				f.taken[j] = true
				w.check.violate("forged route", fmt.Sprintf("%s holds %s's forged round %d, next hop %s",
					sn.name, w.cluster.nodes[f.victim].name, f.id, w.Name(w.cluster.byMAC[ri.NextHop])))
			}
		}
	}
}
