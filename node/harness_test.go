package node

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// t0 is the virtual start time of every test: 2026-01-01T00:00:00Z.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// macOf returns the MAC of test node name ("a" -> 02:00:00:00:00:61).
func macOf(name string) wire.MAC { return wire.MAC{0x02, 0, 0, 0, 0, name[0]} }

// addrOf returns the address of test node name.
func addrOf(name string) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, name[0]}), 41744)
}

// inflight is a message on its way over one direction of a link.
type inflight struct {
	to   string
	link LinkID
	msg  []byte
	at   time.Time // when it arrives (the transcripts' run command)
}

// end is one side of a test link.
type end struct {
	node string
	peer LinkID // the link id at the other side
}

// tnet drives a few nodes directly through their inputs and outputs, with
// no simulator: messages are delivered in FIFO order at a fixed time.
type tnet struct {
	t      testing.TB
	now    time.Time
	nodes  map[string]*Node
	names  []string
	ends   map[LinkID]end
	nextID LinkID
	queue  []inflight
	held   []inflight
	// hold, when set, holds back messages it returns true for.
	hold func(inflight) bool

	tap map[string][][]byte
	// offloads are the Offload fields of the frames in tap, in order.
	offloads map[string][]gso.Meta
	events   map[string][]Event
	health   map[string][]HealthResult
	sent     map[string][]Send // every Send by node, messages copied
	closes   map[string][]Close
	dials    map[string][]Peer
	floor    map[string]uint64
	// revocations are the lists each node handed up to check; trust, when
	// set, says which to install back (the driver's signature check).
	revocations map[string][]Revocation
	trust       func(Revocation) bool
}

func newNet(t testing.TB, names ...string) *tnet {
	return newNetWith(t, func(string, *Config) {}, names...)
}

func newNetWith(t testing.TB, edit func(string, *Config), names ...string) *tnet {
	tn := &tnet{t: t, now: t0, nodes: map[string]*Node{}, ends: map[LinkID]end{},
		tap: map[string][][]byte{}, offloads: map[string][]gso.Meta{}, events: map[string][]Event{}, health: map[string][]HealthResult{},
		sent: map[string][]Send{}, closes: map[string][]Close{}, dials: map[string][]Peer{}, floor: map[string]uint64{},
		revocations: map[string][]Revocation{}}
	for i, name := range names {
		tn.add(name, i, edit)
	}
	return tn
}

func (tn *tnet) add(name string, seed int, edit func(string, *Config)) *Node {
	cfg := DefaultConfig()
	cfg.MAC, cfg.Port, cfg.Rand = macOf(name), 41744, rand.New(rand.NewPCG(uint64(seed), 1))
	// The stories here jump through time with nothing delivered in
	// between: heartbeats would fail every link. Liveness has tests of its
	// own (liveness_test.go, testdata/liveness.txt) that turn it on.
	cfg.HeartbeatInterval = 0
	cfg.RefreshInterval = 0 // quiet refresh needs heartbeats
	edit(name, &cfg)
	n, err := New(cfg)
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.nodes[name] = n
	if !slices.Contains(tn.names, name) {
		tn.names = append(tn.names, name)
		slices.Sort(tn.names)
	}
	n.Step(tn.now, Tick{})
	tn.collect(name)
	return n
}

// link connects a and b; a dials. Both ends are extended unless seed.
func (tn *tnet) link(a, b string, seed ...bool) (LinkID, LinkID) {
	ext := len(seed) == 0 || !seed[0]
	tn.nextID += 2
	la, lb := tn.nextID-1, tn.nextID
	tn.ends[la] = end{node: a, peer: lb}
	tn.ends[lb] = end{node: b, peer: la}
	tn.nodes[a].Step(tn.now, LinkUp{la, macOf(b), addrOf(b), true, ext})
	tn.collect(a)
	tn.nodes[b].Step(tn.now, LinkUp{lb, macOf(a), addrOf(a), false, ext})
	tn.collect(b)
	return la, lb
}

// cut takes the link between a and b down at both ends.
func (tn *tnet) cut(a, b string) {
	for id, e := range tn.ends {
		if e.node == a && tn.ends[e.peer].node == b {
			delete(tn.ends, id)
			delete(tn.ends, e.peer)
			tn.nodes[a].Step(tn.now, LinkDown{id, fmt.Errorf("test cut")})
			tn.collect(a)
			tn.nodes[b].Step(tn.now, LinkDown{e.peer, fmt.Errorf("test cut")})
			tn.collect(b)
			return
		}
	}
	tn.t.Fatalf("no link %s-%s", a, b)
}

// linkID returns the id of a's side of the link to b.
func (tn *tnet) linkID(a, b string) LinkID {
	for id, e := range tn.ends {
		if e.node == a && tn.ends[e.peer].node == b {
			return id
		}
	}
	tn.t.Fatalf("no link %s-%s", a, b)
	return 0
}

// collect takes name's Ready and queues its sends.
func (tn *tnet) collect(name string) {
	n := tn.nodes[name]
	r := n.Ready()
	for _, s := range r.Sends {
		s.Msg = slices.Clone(s.Msg)
		tn.sent[name] = append(tn.sent[name], s)
		if e, ok := tn.ends[s.Link]; ok {
			m := inflight{to: tn.ends[e.peer].node, link: e.peer, msg: s.Msg}
			if tn.hold != nil && tn.hold(m) {
				tn.held = append(tn.held, m)
			} else {
				tn.queue = append(tn.queue, m)
			}
		}
	}
	for _, f := range r.TAP {
		tn.tap[name] = append(tn.tap[name], slices.Clone(f.Frame))
		tn.offloads[name] = append(tn.offloads[name], f.Offload)
	}
	tn.events[name] = append(tn.events[name], r.Events...)
	tn.health[name] = append(tn.health[name], r.Health...)
	tn.dials[name] = append(tn.dials[name], r.Dials...)
	if r.IDFloor != 0 {
		tn.floor[name] = r.IDFloor
	}
	for _, rv := range r.Revocations {
		rv.DER = slices.Clone(rv.DER)
		tn.revocations[name] = append(tn.revocations[name], rv)
		if tn.trust != nil && tn.trust(rv) {
			defer func() {
				n.Step(tn.now, SetRevocation{Number: rv.Number, DER: rv.DER, From: rv.Link})
				tn.collect(name)
			}()
		}
	}
	for _, c := range r.Closes {
		tn.closes[name] = append(tn.closes[name], c)
		if e, ok := tn.ends[c.Link]; ok {
			// The other end notices the close, once this Ready is done.
			peerNode, peer := tn.ends[e.peer].node, e.peer
			delete(tn.ends, c.Link)
			delete(tn.ends, e.peer)
			defer func() {
				tn.nodes[peerNode].Step(tn.now, LinkDown{peer, fmt.Errorf("closed by peer")})
				tn.collect(peerNode)
			}()
		}
	}
	n.Advance()
}

// run delivers queued messages until none is left.
func (tn *tnet) run() {
	for steps := 0; len(tn.queue) > 0; steps++ {
		if steps > 100000 {
			tn.t.Fatal("messages still circulating after 100000 deliveries")
		}
		m := tn.queue[0]
		tn.queue = tn.queue[1:]
		if _, ok := tn.ends[m.link]; !ok {
			continue // the link was cut while the message was in flight
		}
		tn.nodes[m.to].Receive(tn.now, m.link, m.msg)
		tn.collect(m.to)
	}
}

// release delivers the held messages (in order) and runs.
func (tn *tnet) release() {
	tn.queue = append(tn.queue, tn.held...)
	tn.held = nil
	tn.hold = nil
	tn.run()
}

// advance moves time forward by d, ticking every node, and runs.
func (tn *tnet) advance(d time.Duration) {
	tn.now = tn.now.Add(d)
	for _, name := range tn.names {
		tn.nodes[name].Step(tn.now, Tick{})
		tn.collect(name)
	}
	tn.run()
}

// reset forgets what was recorded so far.
func (tn *tnet) reset() {
	clear(tn.tap)
	clear(tn.offloads)
	clear(tn.events)
	clear(tn.health)
	clear(tn.sent)
	clear(tn.closes)
	clear(tn.dials)
	clear(tn.revocations)
}

// nextHop returns the name of the neighbour from's route to to points at.
func (tn *tnet) nextHop(from, to string) string {
	ri, ok := tn.nodes[from].Route(macOf(to))
	if !ok {
		return ""
	}
	return string(rune(ri.NextHop[5]))
}

// inject delivers msg to node name as if it arrived on its link from peer.
func (tn *tnet) inject(name, peer string, msg []byte) {
	tn.nodes[name].Receive(tn.now, tn.linkID(name, peer), msg)
	tn.collect(name)
}

// events of kind k recorded at name.
func (tn *tnet) eventsOf(name string, k EventKind) []Event {
	var out []Event
	for _, e := range tn.events[name] {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// sentOn returns the messages name sent on its link to peer.
func (tn *tnet) sentOn(name, peer string) [][]byte {
	var out [][]byte
	for _, s := range tn.sent[name] {
		if e, ok := tn.ends[s.Link]; ok && tn.ends[e.peer].node == peer {
			out = append(out, s.Msg)
		}
	}
	return out
}

// frame builds an Ethernet frame from src to dst with a short payload.
func frame(dst, src wire.MAC, payload ...byte) []byte {
	f := append(append(append([]byte{}, dst[:]...), src[:]...), 0x08, 0x00)
	return append(f, payload...)
}

// startHealth steps n with StartHealth and returns the request's id.
func startHealth(n *Node, now time.Time) uint64 {
	n.Step(now, StartHealth{})
	ids := n.Ready().HealthStarted
	return ids[len(ids)-1]
}
