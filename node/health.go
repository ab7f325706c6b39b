package node

import (
	"slices"

	"github.com/invpn/invpn/wire"
)

// startHealth floods a health request (0x02); its id goes to
// Ready.HealthStarted, answers arrive as Ready.Health. Requests go only to
// extended neighbours: an original node's handler loops or crashes on 0x02
// (docs/protocol.md#interoperating-with-an-original-node).
func (n *Node) startHealth() {
	id := n.newID()
	n.ready.HealthStarted = append(n.ready.HealthStarted, id)
	n.healthPending[id] = n.clock.now
	n.dedup.health.first(n.cfg.MAC, id, n.clock.now, n.cfg.DedupSpan)
	req := wire.HealthRequest{ID: id, Requester: n.cfg.MAC, Traceroute: []wire.MAC{n.cfg.MAC}}
	msg := n.encode(&req)
	for _, l := range n.links.order {
		if l.extended {
			n.send(l, msg, true)
		}
	}
}

// receiveHealthRequest answers a 0x02 and floods it on with this node
// appended to its traceroute. Its de-duplication is separate from that of
// broadcasts (defect 2).
func (n *Node) receiveHealthRequest(l *link, msg []byte) {
	req, err := wire.DecodeHealthRequest(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if req.Requester == n.cfg.MAC {
		return
	}
	if !n.known(req.Requester) {
		n.drop(DropUnknownSource, req.Requester) // no window per made-up MAC
		return
	}
	if !n.dedup.health.first(req.Requester, req.ID, n.clock.now, n.cfg.DedupSpan) {
		n.stats.Duplicates++
		return
	}
	req.Traceroute = append(req.Traceroute, n.cfg.MAC)
	if len(req.Traceroute)*6+16 > wire.MaxMessage {
		n.drop(DropTooLong, req.Requester)
		return
	}
	n.answerHealth(req)
	if n.cfg.NoRelay {
		return
	}
	var out []byte
	for _, o := range n.links.order {
		if o == l || !o.extended {
			continue
		}
		if out == nil {
			out = n.encode(&req)
		}
		n.send(o, out, true)
	}
}

// answerHealth sends this node's 0x03 toward the requester, built exactly
// to the packet table (defect 6): its links, its routes (target and
// next-hop MAC), the traceroute it received, and a reverse traceroute that
// starts with itself.
func (n *Node) answerHealth(req wire.HealthRequest) {
	resp := wire.HealthResponse{
		Dest: req.Requester, Origin: n.cfg.MAC, ID: req.ID,
		Traceroute: req.Traceroute, Reverse: []wire.MAC{n.cfg.MAC},
	}
	for _, l := range n.links.order {
		resp.Links = append(resp.Links, l.peer)
	}
	slices.SortFunc(resp.Links, wire.MAC.Compare)
	for _, ri := range n.Routes() {
		resp.Routes = append(resp.Routes, wire.Route{Target: ri.Target, NextHop: ri.NextHop})
	}
	// Keep the answer within one message: drop routes from the end.
	for resp.EncodedLen() > wire.MaxMessage && len(resp.Routes) > 0 {
		resp.Routes = resp.Routes[:len(resp.Routes)-1]
	}
	if resp.EncodedLen() > wire.MaxMessage {
		n.drop(DropTooLong, req.Requester) // the traceroute alone is too long
		return
	}
	next := n.nextHop(req.Requester)
	if next == nil {
		n.drop(DropNoRoute, req.Requester)
		return
	}
	n.send(next, n.encode(&resp), true)
	if next.extended {
		// The RTTs of our links, which the 0x03 has no room for, the
		// same way (docs/protocol.md#health).
		hl := wire.HealthLinks{Dest: req.Requester, Origin: n.cfg.MAC, ID: req.ID}
		for _, l := range n.links.order {
			if len(hl.Links) == wire.MaxHealthLinks {
				break
			}
			hl.Links = append(hl.Links, wire.LinkRTT{Peer: l.peer, RTT: l.hb.rtt.srtt})
		}
		slices.SortFunc(hl.Links, func(a, b wire.LinkRTT) int { return a.Peer.Compare(b.Peer) })
		n.send(next, n.encode(&hl), true)
	}
}

// receiveHealthLinks delivers a 0x8B to a request of ours, or forwards it
// toward its requester over an extended link, as a 0x03 goes.
func (n *Node) receiveHealthLinks(l *link, msg []byte) {
	hl, err := wire.DecodeHealthLinks(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if hl.Dest == n.cfg.MAC {
		if _, ok := n.healthPending[hl.ID]; ok {
			n.ready.HealthLinks = append(n.ready.HealthLinks, hl)
		}
		return
	}
	if n.cfg.NoRelay {
		n.drop(DropNoRelay, hl.Dest)
		return
	}
	next := n.nextHop(hl.Dest)
	switch {
	case next == nil:
		n.drop(DropNoRoute, hl.Dest)
	case next == l:
		n.drop(DropRouteLoop, hl.Dest)
	case !next.extended:
		n.drop(DropUnknownType, hl.Dest) // an original node knows no 0x8B
	default:
		n.send(next, msg, true)
	}
}

// receiveHealthResponse delivers an answer to a request of ours, or
// forwards it toward its requester with this node appended to the reverse
// traceroute.
func (n *Node) receiveHealthResponse(l *link, msg []byte) {
	resp, err := wire.DecodeHealthResponse(msg)
	if err != nil {
		n.malformed(l, err)
		return
	}
	if resp.Dest == n.cfg.MAC {
		if _, ok := n.healthPending[resp.ID]; ok {
			n.ready.Health = append(n.ready.Health, HealthResult{Response: resp, At: n.clock.input})
		}
		return
	}
	if n.cfg.NoRelay {
		n.drop(DropNoRelay, resp.Dest)
		return
	}
	if len(resp.Reverse) > wire.MaxPath {
		n.drop(DropHopLimit, resp.Dest)
		return
	}
	resp.Reverse = append(resp.Reverse, n.cfg.MAC)
	if resp.EncodedLen() > wire.MaxMessage {
		n.drop(DropTooLong, resp.Dest)
		return
	}
	next := n.nextHop(resp.Dest)
	switch {
	case next == nil:
		n.drop(DropNoRoute, resp.Dest)
	case next == l:
		n.drop(DropRouteLoop, resp.Dest)
	default:
		n.send(next, n.encode(&resp), true)
	}
}
