package node

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/invpn/invpn/wire"
)

// TestTranscripts runs the transcripts in testdata/: each is a story of a
// few nodes told as commands, with every output the engine produced
// printed under the command. They double as the protocol's worked
// examples; docs/protocol.md cites them. Rewrite the expected output
// after a deliberate change with
//
//	go test ./node -run Transcripts -rewrite
//
// and read the diff.
//
// Commands (names are single lower-case letters; a node's MAC is
// 02:00:00:00:00:<letter>, its address 127.0.0.<letter>:41744):
//
//	add NAME... [heartbeat=D] [dead-after=D] [refresh=D] [batch=D] [no-relay] [no-incoming] [seeds=B,C] [cache=B,C]
//	    [min-links=N] [max-links=N] [announce=D] [expiry=D] [link-timeout=D] [dedup=D]
//	link A B [seed]        A dials B; both ends get LinkUp (seed: no extensions)
//	cut A B                the link goes down at both ends (a cut the transport saw)
//	tick [D]               time moves on by D; every node gets a Tick
//	deliver [N]            deliver in-flight messages in order (all, or N)
//	hold A B / release A B messages from A to B wait / may go again
//	blackhole A B / heal A B   messages between A and B vanish, silently
//	delay A B D            messages between A and B take D each way (run)
//	run D                  time runs for D: every node is ticked at its
//	                       deadlines and messages arrive after their delay
//	tap A DST [src=S] [len=N]  A's TAP hands it a frame to DST (a name,
//	                       broadcast, or a MAC such as 33:33:00:00:00:01)
//	inject TO FROM KIND [field=value...]  TO receives a crafted message on its
//	                       link from FROM; KIND is initial-info, info,
//	                       targeted, limited, broadcast,
//	                       health-request, raw (hex=...)
//	health A               A starts a health request
//	restart A [lose-floor] A's process restarts with its cache (and id floor)
//	skew A D               A's clock runs D ahead (negative: behind)
//	queue limit=N data|control|pop...  a link's SendQueue, step by step
//	dial-failed A B        A's dial to B failed
//	routes A / links A / cache A / stats A   print A's state
//
// Output lines: "a -> b: MSG" a send, "b <- a: MSG" a delivery, "a: tap
// FRAME" a frame written to a's TAP, "a: EVENT" an event, "a: close b:
// REASON", "a: dial b", "a: cache store/remove", "a: id floor N", "a:
// health answer MSG", "a: health links MSG".
func TestTranscripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := newScript(t)
		datadriven.RunTest(t, path, s.run)
	})
}

// tEpoch is the transcripts' start: the Unix epoch, so message ids (the
// clock in milliseconds) read as milliseconds since the story began.
var tEpoch = time.Unix(0, 0).UTC()

// script is the world of one transcript.
type script struct {
	t      *testing.T
	now    time.Time
	nodes  map[string]*Node
	names  []string
	ends   map[LinkID]end    // live links; reuses the harness's end type
	peers  map[LinkID]string // every link ever made: the peer's name
	nextID LinkID
	queue  []inflight
	held   map[[2]string]bool
	lost   map[[2]string]bool          // blackholed directions: messages vanish
	delay  map[[2]string]time.Duration // one-way latency of a direction (run)
	skew   map[string]time.Duration    // how far each node's clock is off
	floor  map[string]uint64           // each node's persisted id floor
	cfgs   map[string]Config           // each node's configuration, for restarts
	out    *strings.Builder
	desc   wire.Describer
}

func newScript(t *testing.T) *script {
	s := &script{t: t, now: tEpoch, nodes: map[string]*Node{}, ends: map[LinkID]end{}, peers: map[LinkID]string{}, held: map[[2]string]bool{}, lost: map[[2]string]bool{}, delay: map[[2]string]time.Duration{},
		skew: map[string]time.Duration{}, floor: map[string]uint64{}, cfgs: map[string]Config{}}
	s.desc = wire.Describer{Name: s.nameOfMAC}
	return s
}

func (s *script) nameOfMAC(m wire.MAC) string {
	if m[0] == 0x02 && m[1] == 0 && m[2] == 0 && m[3] == 0 && m[4] == 0 {
		if _, ok := s.nodes[string(rune(m[5]))]; ok {
			return string(rune(m[5]))
		}
	}
	return ""
}

// peerOf returns the name of the node at the other end of name's link id.
func (s *script) peerOf(id LinkID) string {
	if p, ok := s.peers[id]; ok {
		return p
	}
	return fmt.Sprintf("link %d", id)
}

func (s *script) linkBetween(a, b string) (LinkID, bool) {
	for id, e := range s.ends {
		if e.node == a && s.ends[e.peer].node == b {
			return id, true
		}
	}
	return 0, false
}

func (s *script) run(t *testing.T, d *datadriven.TestData) string {
	var b strings.Builder
	s.out = &b
	args := d.CmdArgs
	arg := func(i int) string {
		if i >= len(args) {
			d.Fatalf(t, "%s: missing argument %d", d.Cmd, i+1)
		}
		return args[i].Key
	}
	switch d.Cmd {
	case "add":
		s.add(t, d)
	case "link":
		seed := len(args) > 2 && arg(2) == "seed"
		s.link(arg(0), arg(1), !seed)
	case "cut":
		a, bn := arg(0), arg(1)
		la, ok := s.linkBetween(a, bn)
		if !ok {
			d.Fatalf(t, "no link %s-%s", a, bn)
		}
		lb := s.ends[la].peer
		delete(s.ends, la)
		delete(s.ends, lb)
		s.step(a, LinkDown{la, fmt.Errorf("cut")})
		s.step(bn, LinkDown{lb, fmt.Errorf("cut")})
	case "tick":
		if len(args) > 0 {
			dur, err := time.ParseDuration(arg(0))
			if err != nil {
				d.Fatalf(t, "tick: %v", err)
			}
			s.now = s.now.Add(dur)
		}
		fmt.Fprintf(&b, "time %v\n", s.now.Sub(tEpoch))
		for _, name := range s.names {
			s.step(name, Tick{})
		}
	case "deliver":
		limit := -1
		if len(args) > 0 {
			limit, _ = strconv.Atoi(arg(0))
		}
		s.deliver(t, limit)
	case "hold", "release":
		s.held[[2]string{arg(0), arg(1)}] = d.Cmd == "hold"
	case "blackhole", "heal":
		// Both directions, silently: neither end is told.
		s.lost[[2]string{arg(0), arg(1)}] = d.Cmd == "blackhole"
		s.lost[[2]string{arg(1), arg(0)}] = d.Cmd == "blackhole"
	case "delay":
		dur, err := time.ParseDuration(arg(2))
		if err != nil {
			d.Fatalf(t, "delay: %v", err)
		}
		s.delay[[2]string{arg(0), arg(1)}] = dur
		s.delay[[2]string{arg(1), arg(0)}] = dur
	case "run":
		dur, err := time.ParseDuration(arg(0))
		if err != nil {
			d.Fatalf(t, "run: %v", err)
		}
		s.runFor(t, dur)
	case "tap":
		s.tap(t, d)
	case "inject":
		s.inject(t, d)
	case "restart":
		s.restart(t, d)
	case "skew":
		dur, err := time.ParseDuration(arg(1))
		if err != nil {
			d.Fatalf(t, "skew: %v", err)
		}
		s.skew[arg(0)] = dur
	case "queue":
		s.queueStory(t, d)
	case "health":
		s.step(arg(0), StartHealth{})
	case "dial-failed":
		s.step(arg(0), DialFailed{macOf(arg(1)), fmt.Errorf("connection refused")})
	case "routes":
		s.printRoutes(arg(0))
	case "links":
		for _, l := range s.node(t, arg(0)).Links() {
			dir, proto := "accepted", "invpn/1"
			if l.Dialed {
				dir = "dialled"
			}
			if !l.Extended {
				proto = "seed protocol"
			}
			fmt.Fprintf(&b, "%s at %s, %s, %s, up %v", s.desc.MAC(l.Peer), l.Addr, dir, proto, l.Age)
			if l.Heartbeats {
				state := "up"
				if l.Suspect {
					state = "suspect"
				}
				fmt.Fprintf(&b, ", %s, rtt %v, silent %v, fails after %v", state, l.RTT, l.Silent, l.DetectAfter)
			}
			b.WriteString("\n")
		}
	case "cache":
		for _, p := range s.node(t, arg(0)).Cache() {
			fmt.Fprintf(&b, "%s at %s\n", s.desc.MAC(p.MAC), p.Addr)
		}
	case "stats":
		s.printStats(arg(0))
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	if b.Len() == 0 {
		return "ok\n"
	}
	return b.String()
}

// clock is the time name's clock shows.
func (s *script) clock(name string) time.Time { return s.now.Add(s.skew[name]) }

// restart stops name (its links close, as when a process dies: the peers
// see their connections end) and starts it again with its persisted peer
// cache and, unless lose-floor, its id floor.
func (s *script) restart(t *testing.T, d *datadriven.TestData) {
	name := d.CmdArgs[0].Key
	c := s.cfgs[name]
	c.Cache = s.node(t, name).Cache()
	c.IDFloor = s.floor[name]
	if d.HasArg("lose-floor") {
		c.IDFloor = 0
	}
	var peers []LinkID
	for id, e := range s.ends {
		if e.node == name {
			peers = append(peers, e.peer)
			delete(s.ends, id)
		}
	}
	slices.Sort(peers)
	for _, p := range peers {
		peer := s.ends[p].node
		delete(s.ends, p)
		s.step(peer, LinkDown{p, fmt.Errorf("closed by peer")})
	}
	n, err := New(c)
	if err != nil {
		d.Fatalf(t, "restart %s: %v", name, err)
	}
	s.nodes[name] = n
	s.step(name, Tick{})
}

func (s *script) node(t *testing.T, name string) *Node {
	n, ok := s.nodes[name]
	if !ok {
		t.Fatalf("no node %q", name)
	}
	return n
}

func (s *script) add(t *testing.T, d *datadriven.TestData) {
	var names []string
	cfg := DefaultConfig()
	// Most stories jump through time with nothing delivered in between,
	// where heartbeats would fail every link: liveness is off unless the
	// story turns it on (heartbeat=D).
	cfg.HeartbeatInterval = 0
	// Quiet refresh needs heartbeats; the stories of the original's
	// cadence run without it unless they turn it on (refresh=D).
	cfg.RefreshInterval = 0
	var seeds, cache []string
	for _, a := range d.CmdArgs {
		val := func() string {
			if len(a.Vals) == 0 {
				d.Fatalf(t, "add: %s needs a value", a.Key)
			}
			return a.Vals[0]
		}
		dur := func() time.Duration {
			v, err := time.ParseDuration(val())
			if err != nil {
				d.Fatalf(t, "add: %s: %v", a.Key, err)
			}
			return v
		}
		num := func() int {
			v, err := strconv.Atoi(val())
			if err != nil {
				d.Fatalf(t, "add: %s: %v", a.Key, err)
			}
			return v
		}
		switch a.Key {
		case "no-relay":
			cfg.NoRelay = true
		case "no-incoming":
			cfg.NoIncoming = true
		case "seeds":
			seeds = a.Vals
		case "cache":
			cache = a.Vals
		case "min-links":
			cfg.MinLinks = num()
		case "max-links":
			cfg.MaxLinks = num()
		case "announce":
			cfg.AnnounceInterval = dur()
		case "expiry":
			cfg.RouteExpiry = dur()
		case "link-timeout":
			cfg.LinkTimeout = dur()
		case "dedup":
			cfg.DedupSpan = dur()
		case "heartbeat":
			cfg.HeartbeatInterval = dur()
		case "dead-after":
			cfg.DeadAfter = dur()
		case "refresh":
			cfg.RefreshInterval = dur()
		case "batch":
			cfg.BatchDelay = dur()
		default:
			if len(a.Key) != 1 || a.Key[0] < 'a' || a.Key[0] > 'z' {
				d.Fatalf(t, "add: %q is neither an option nor a node name (one letter)", a.Key)
			}
			names = append(names, a.Key)
		}
	}
	for _, p := range seeds {
		cfg.Seeds = append(cfg.Seeds, Peer{MAC: macOf(p), Addr: addrOf(p)})
	}
	for _, p := range cache {
		cfg.Cache = append(cfg.Cache, Peer{MAC: macOf(p), Addr: addrOf(p)})
	}
	for _, name := range names {
		c := cfg
		c.MAC, c.Port = macOf(name), 41744
		c.Rand = rand.New(rand.NewPCG(uint64(name[0]), 1))
		n, err := New(c)
		if err != nil {
			d.Fatalf(t, "add %s: %v", name, err)
		}
		s.nodes[name], s.cfgs[name] = n, c
		if !slices.Contains(s.names, name) {
			s.names = append(s.names, name)
			slices.Sort(s.names)
		}
		s.step(name, Tick{})
	}
}

func (s *script) link(a, b string, ext bool) {
	s.nextID += 2
	la, lb := s.nextID-1, s.nextID
	s.ends[la] = end{node: a, peer: lb}
	s.ends[lb] = end{node: b, peer: la}
	s.peers[la], s.peers[lb] = b, a
	s.step(a, LinkUp{la, macOf(b), addrOf(b), true, ext})
	s.step(b, LinkUp{lb, macOf(a), netip.AddrPortFrom(addrOf(a).Addr(), 50000), false, ext})
}

// step gives name one input and prints what it asked for.
func (s *script) step(name string, in Input) {
	s.nodes[name].Step(s.clock(name), in)
	s.collect(name)
}

// collect prints name's Ready, queues its sends and applies its closes.
func (s *script) collect(name string) {
	n := s.nodes[name]
	r := n.Ready()
	w := s.out
	for _, e := range r.Events {
		fmt.Fprintf(w, "%s: %s\n", name, s.describeEvent(e))
	}
	for _, snd := range r.Sends {
		to := s.peerOf(snd.Link)
		kind := ""
		if !snd.Control {
			kind = " (data)"
		}
		fmt.Fprintf(w, "%s -> %s: %s%s\n", name, to, s.desc.Message(snd.Msg), kind)
		if e, ok := s.ends[snd.Link]; ok {
			to := s.ends[e.peer].node
			if s.lost[[2]string{name, to}] {
				fmt.Fprintf(w, "%s -> %s: lost\n", name, to)
				continue
			}
			at := s.now.Add(s.delay[[2]string{name, to}])
			s.queue = append(s.queue, inflight{to: to, link: e.peer, msg: slices.Clone(snd.Msg), at: at})
		}
	}
	for _, f := range r.TAP {
		fmt.Fprintf(w, "%s: tap %s\n", name, s.desc.EthernetFrame(f.Frame))
	}
	for _, p := range r.Dials {
		fmt.Fprintf(w, "%s: dial %s at %s\n", name, s.desc.MAC(p.MAC), p.Addr)
	}
	for _, p := range r.CacheStore {
		fmt.Fprintf(w, "%s: cache store %s at %s\n", name, s.desc.MAC(p.MAC), p.Addr)
	}
	for _, m := range r.CacheRemove {
		fmt.Fprintf(w, "%s: cache remove %s\n", name, s.desc.MAC(m))
	}
	if r.IDFloor != 0 {
		s.floor[name] = r.IDFloor
		fmt.Fprintf(w, "%s: id floor %d\n", name, r.IDFloor)
	}
	for _, id := range r.HealthStarted {
		fmt.Fprintf(w, "%s: health started id=%d\n", name, id)
	}
	for _, h := range r.Health {
		fmt.Fprintf(w, "%s: health answer %s\n", name, s.desc.Decoded(&h.Response))
	}
	for _, h := range r.HealthLinks {
		fmt.Fprintf(w, "%s: health links %s\n", name, s.desc.Decoded(&h))
	}
	type otherEnd struct {
		node string
		link LinkID
	}
	var closed []otherEnd
	for _, c := range r.Closes {
		fmt.Fprintf(w, "%s: close %s: %v\n", name, s.peerOf(c.Link), c.Reason)
		if e, ok := s.ends[c.Link]; ok {
			closed = append(closed, otherEnd{s.ends[e.peer].node, e.peer})
			delete(s.ends, c.Link)
			delete(s.ends, e.peer)
		}
	}
	n.Advance()
	// The other end sees the connection close once this Ready is done.
	for _, o := range closed {
		s.step(o.node, LinkDown{o.link, fmt.Errorf("closed by peer")})
	}
}

func (s *script) describeEvent(e Event) string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	b.WriteString(" " + s.desc.MAC(e.MAC))
	switch e.Kind {
	case EventRouteLearned, EventRouteChanged, EventRouteFailover:
		b.WriteString(" via " + s.peerOf(e.Link))
	}
	if e.From != 0 {
		b.WriteString(" (was via " + s.peerOf(e.From) + ")")
	}
	if e.Kind == EventDrop {
		b.WriteString(": " + e.Drop.String())
	}
	if e.Err != nil && e.Kind != EventLinkDown {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (s *script) deliver(t *testing.T, limit int) {
	for n := 0; limit < 0 || n < limit; n++ {
		if n > 10000 {
			t.Fatal("messages still circulating after 10000 deliveries")
		}
		i := slices.IndexFunc(s.queue, func(m inflight) bool {
			e, ok := s.ends[m.link]
			return !ok || !s.held[[2]string{s.ends[e.peer].node, m.to}]
		})
		if i < 0 {
			return
		}
		m := s.queue[i]
		s.queue = slices.Delete(s.queue, i, i+1)
		e, ok := s.ends[m.link]
		if !ok {
			continue // the link went down with the message in flight
		}
		from := s.ends[e.peer].node
		fmt.Fprintf(s.out, "%s <- %s: %s\n", m.to, from, s.desc.Message(m.msg))
		s.nodes[m.to].Receive(s.clock(m.to), m.link, m.msg)
		s.collect(m.to)
	}
}

// macArg parses a node name, "broadcast" or a MAC.
func (s *script) macArg(t *testing.T, v string) wire.MAC {
	switch {
	case v == "broadcast":
		return wire.Broadcast
	case len(v) == 1:
		return macOf(v)
	}
	m, err := wire.ParseMAC(v)
	if err != nil {
		t.Fatalf("bad MAC %q: %v", v, err)
	}
	return m
}

func (s *script) tap(t *testing.T, d *datadriven.TestData) {
	if len(d.CmdArgs) < 2 {
		d.Fatalf(t, "tap A DST [src=S] [len=N]")
	}
	name := d.CmdArgs[0].Key
	dst, src := s.macArg(t, d.CmdArgs[1].Key), macOf(name)
	size := 60
	for _, a := range d.CmdArgs[2:] {
		switch a.Key {
		case "src":
			src = s.macArg(t, a.Vals[0])
		case "len":
			size, _ = strconv.Atoi(a.Vals[0])
		}
	}
	f := frame(dst, src)
	f = append(f, make([]byte, max(0, size-len(f)))...)
	s.step(name, FromTAP{f})
}

func (s *script) inject(t *testing.T, d *datadriven.TestData) {
	if len(d.CmdArgs) < 3 {
		d.Fatalf(t, "inject TO FROM KIND [field=value...]")
	}
	to, from, kind := d.CmdArgs[0].Key, d.CmdArgs[1].Key, d.CmdArgs[2].Key
	f := map[string]string{}
	for _, a := range d.CmdArgs[3:] {
		f[a.Key] = strings.Join(a.Vals, ",")
	}
	num := func(k string, def uint64) uint64 {
		if v, ok := f[k]; ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				d.Fatalf(t, "inject: %s: %v", k, err)
			}
			return n
		}
		return def
	}
	mac := func(k, def string) wire.MAC {
		if v, ok := f[k]; ok {
			return s.macArg(t, v)
		}
		return s.macArg(t, def)
	}
	var msg []byte
	switch kind {
	case "initial-info":
		msg = (&wire.InitialInfo{ID: num("id", 1), MAC: mac("mac", from), Port: uint16(num("port", 41744))}).Append(nil)
	case "info":
		info := wire.Info{ID: num("id", 1), MAC: mac("mac", from), Port: uint16(num("port", 41744))}
		if v, ok := f["addr"]; ok {
			info.Addr = netip.MustParseAddr(v)
		}
		msg = info.Append(nil)
	case "targeted":
		msg = (&wire.TargetedFrame{Frame: frame(mac("dst", to), mac("src", from), 1)}).Append(nil)
	case "limited":
		msg = (&wire.LimitedFrame{Hops: uint8(num("hops", 255)), Frame: frame(mac("dst", to), mac("src", from), 1)}).Append(nil)
	case "broadcast":
		msg = (&wire.BroadcastFrame{ID: num("id", 1), Src: mac("src", from), Payload: []byte{0x08, 0x00, 1}}).Append(nil)
	case "health-request":
		req := wire.HealthRequest{ID: num("id", 1), Requester: mac("requester", from)}
		for _, v := range strings.Split(f["trace"], ",") {
			if v != "" {
				req.Traceroute = append(req.Traceroute, s.macArg(t, v))
			}
		}
		msg = req.Append(nil)
	case "raw":
		var err error
		if msg, err = hex.DecodeString(f["hex"]); err != nil {
			d.Fatalf(t, "inject raw: %v", err)
		}
	default:
		d.Fatalf(t, "inject: unknown kind %q", kind)
	}
	id, ok := s.linkBetween(to, from)
	if !ok {
		d.Fatalf(t, "inject: no link %s-%s", to, from)
	}
	fmt.Fprintf(s.out, "%s <- %s: %s\n", to, from, s.desc.Message(msg))
	s.nodes[to].Receive(s.clock(to), id, msg)
	s.collect(to)
}

func (s *script) printRoutes(name string) {
	n := s.nodes[name]
	for _, r := range n.Routes() {
		var backups []string
		for _, b := range r.Backups {
			backups = append(backups, s.peerOf(b))
		}
		hops := "?"
		if r.Hops >= 0 {
			hops = strconv.Itoa(r.Hops)
		}
		fmt.Fprintf(s.out, "%s via %s, %s hops, id %d, refreshed %v ago", s.desc.MAC(r.Target), s.desc.MAC(r.NextHop), hops, r.ID, r.SinceRefresh)
		if len(backups) > 0 {
			fmt.Fprintf(s.out, ", backups %s", strings.Join(backups, " "))
		}
		s.out.WriteString("\n")
	}
}

func (s *script) printStats(name string) {
	st := s.nodes[name].Stats()
	for _, d := range DropReasons() {
		if st.Drops[d] != 0 {
			fmt.Fprintf(s.out, "drop %s: %d\n", d, st.Drops[d])
		}
	}
	for _, c := range []struct {
		k string
		v uint64
	}{{"duplicates", st.Duplicates}, {"frames to TAP", st.FramesToTAP}, {"frames from TAP", st.FramesFromTAP},
		{"forwarded", st.Forwarded}, {"failovers", st.Failovers}, {"withdrawals", st.Withdrawals}, {"violations", st.Violations}} {
		if c.v != 0 {
			fmt.Fprintf(s.out, "%s: %d\n", c.k, c.v)
		}
	}
}

// queueStory pushes sends into a SendQueue of limit=N data messages and
// prints which it kept: queue limit=2 data control data data.
func (s *script) queueStory(t *testing.T, d *datadriven.TestData) {
	q := &SendQueue{}
	for _, a := range d.CmdArgs {
		switch a.Key {
		case "limit":
			q.DataLimit, _ = strconv.Atoi(a.Vals[0])
		case "data", "control":
			msg := (&wire.TargetedFrame{Frame: frame(macOf("b"), macOf("a"))}).Append(nil)
			if a.Key == "control" {
				msg = (&wire.InitialInfo{ID: 1, MAC: macOf("a"), Port: 41744}).Append(nil)
			}
			ok := q.Push(Send{Link: 1, Msg: msg, Control: a.Key == "control"})
			fmt.Fprintf(s.out, "push %s: queued %v, length %d, drops %d\n", a.Key, ok, q.Len(), q.Drops())
		case "pop":
			msg, ok := q.Pop()
			if ok {
				fmt.Fprintf(s.out, "pop: %s\n", s.desc.Message(msg))
				q.Release(msg)
			} else {
				fmt.Fprintf(s.out, "pop: empty\n")
			}
		default:
			d.Fatalf(t, "queue: unknown word %q", a.Key)
		}
	}
}

// runFor lets time run for d: messages arrive when their delay has
// passed, and each node is ticked when its deadline comes.
func (s *script) runFor(t *testing.T, d time.Duration) {
	end := s.now.Add(d)
	for steps := 0; ; steps++ {
		if steps > 100000 {
			t.Fatal("run: still busy after 100000 steps")
		}
		next := end
		for _, m := range s.queue {
			if m.at.Before(next) {
				next = m.at
			}
		}
		for _, name := range s.names {
			if dl := s.nodes[name].NextDeadline(); !dl.IsZero() {
				dl = dl.Add(-s.skew[name])
				if dl.Before(next) {
					next = dl
				}
			}
		}
		if next.After(s.now) {
			s.now = next
			fmt.Fprintf(s.out, "time %v\n", s.now.Sub(tEpoch))
		}
		if i := slices.IndexFunc(s.queue, func(m inflight) bool { return !m.at.After(s.now) }); i >= 0 {
			m := s.queue[i]
			s.queue = slices.Delete(s.queue, i, i+1)
			e, ok := s.ends[m.link]
			if !ok {
				continue
			}
			fmt.Fprintf(s.out, "%s <- %s: %s\n", m.to, s.ends[e.peer].node, s.desc.Message(m.msg))
			s.nodes[m.to].Receive(s.clock(m.to), m.link, m.msg)
			s.collect(m.to)
			continue
		}
		ticked := false
		for _, name := range s.names {
			if dl := s.nodes[name].NextDeadline(); !dl.IsZero() && !dl.Add(-s.skew[name]).After(s.now) {
				s.step(name, Tick{})
				ticked = true
			}
		}
		if !ticked && !s.now.Before(end) {
			return
		}
	}
}
