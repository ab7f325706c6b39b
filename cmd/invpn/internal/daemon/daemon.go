// Package daemon binds the pure node engine to links and the TAP device.
//
// One goroutine, the loop in [Daemon.Run], owns the *node.Node and every
// value marked "loop" below. Other goroutines only read and write: one
// reader and one writer per link, one TAP reader, one TAP writer, one
// cache saver, one accepter per listener and one goroutine per dial in
// progress. They hand their results to the loop over channels; the loop
// feeds them to the node, then carries out the node's Ready (sends to the
// link queues, closes, frames to the TAP writer, dials, cache snapshots
// to the saver, health answers, events) and calls Advance. Nothing on the
// loop waits for the disk or the TAP device's write. The control socket
// and the metrics endpoint have goroutines of their own that reach the
// loop only through the same kind of channel (see control.go).
//
// Data flows one way through each direction: TAP reader → loop → link queue
// → link writer on the way out ("inside" to "outside"), link reader → loop
// → TAP writer on the way in. Back-pressure is per link (link.go): a
// reader holding a frame for a congested link waits for that link only.
package daemon

import (
	"context"
	crand "crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/meshmap"
	"github.com/invpn/invpn/cmd/invpn/internal/metrics"
	"github.com/invpn/invpn/cmd/invpn/internal/peercache"
	"github.com/invpn/invpn/cmd/invpn/internal/revocation"
	"github.com/invpn/invpn/cmd/invpn/internal/sdnotify"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/tapdev"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// Defaults of the zero fields of [Options].
const (
	DefaultDialTimeout       = 15 * time.Second
	DefaultCacheSaveInterval = time.Second
	DefaultQueueLimit        = 256
)

// inboundBatch is how many inputs the loop feeds the node before it
// processes one Ready: messages and frames that arrive together are
// handled together, and their sends are batched per link.
const inputBatch = 32

// Transport is how the daemon reaches its peers.
type Transport struct {
	// Dialer opens links to peers. Required.
	Dialer transport.Dialer
	// Listen opens the listeners that accept links; nil for a node that
	// takes no incoming links. The daemon closes the listeners when it
	// stops and before it calls the Listen of a reloaded Transport.
	Listen func() ([]transport.Listener, error)
	// ListenAddrs are the addresses Listen listens on, as configured, one
	// per listener: host:port for TLS over TCP, quic:host:port for QUIC.
	ListenAddrs []string
	// Rekey, when set, gives a running listener this transport's identity
	// in place. A reload whose ListenAddrs are the running ones rekeys the
	// listeners instead of closing them and listening anew, so that no
	// connection is refused meanwhile; an error falls back to that.
	Rekey func(transport.Listener) error
}

// Reloaded is what Options.Reload gives the daemon on SIGHUP: what a
// reload can change without a restart.
type Reloaded struct {
	// CAs replace the CAs a revocation list must be signed by, and
	// Revocation, when set, is the configuration's list ([ssl] crl),
	// installed if newer than the one in force.
	CAs        []*x509.Certificate
	Revocation *revocation.List
	// Certificate, when set, is the node's certificate from now on (a
	// renewed one); links that are up keep the one they began with.
	Certificate *x509.Certificate
	// Seeds and Bootstrap replace the running `init` seeds and
	// bootstrap peers ([node.SetSeeds]); nil means none.
	Seeds, Bootstrap []node.Peer
	// Transport is used for the links made from now on: its Dialer for
	// new dials (nil keeps the running one), its Listen in place of the
	// running listeners. Links that are up stay up.
	Transport Transport
	// File names what was reloaded (the configuration file) in the log.
	File string
}

// Options configure a Daemon.
type Options struct {
	// Node configures the engine: its identity (Node.MAC, the
	// certificate's Common Name and the TAP device's MAC, is required;
	// Port, NoIncoming, NoRelay), timers, link counts and `init` seeds.
	// New replaces Node.Cache and Node.IDFloor with what it loads from
	// CacheFile, and fills in Node.Rand, when nil, with a generator
	// seeded from crypto/rand.
	Node node.Config
	// CacheFile is the path of the peer cache ([network] cache): loaded
	// by New, saved while the daemon runs and when it stops. Empty means
	// none.
	CacheFile string
	// Transport reaches the peers. Its Dialer is required.
	Transport Transport
	// TAP is the frame device, opened by the caller with Node.MAC.
	// Required. Run closes it when it returns.
	TAP tapdev.Device
	// Logger receives the daemon's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Signals delivers the signals the daemon obeys: SIGHUP reloads
	// (Options.Reload), any other signal stops it. nil means none.
	Signals <-chan os.Signal
	// Reload is called on SIGHUP. An error keeps the running
	// configuration. nil means SIGHUP is only logged.
	Reload func() (*Reloaded, error)
	// Notify, when set, is told the daemon's state for the service
	// manager (sd_notify(3) assignments, package sdnotify): READY=1 once
	// the TAP is up, the listeners are open and the loop runs;
	// RELOADING=1 and READY=1 around a SIGHUP reload; STOPPING=1 when it
	// starts to stop.
	Notify func(state string)

	// DialTimeout bounds one dial (default DefaultDialTimeout).
	DialTimeout time.Duration
	// QueueLimit is the most data messages queued per link (default
	// DefaultQueueLimit); more are dropped, control messages never.
	QueueLimit int
	// CacheSaveInterval is the least time between two saves of the peer
	// cache (default DefaultCacheSaveInterval). The id floor is saved at
	// once, and the cache when the daemon stops.
	CacheSaveInterval time.Duration

	// Version is the version the control socket reports.
	Version string
	// ControlSocket is the path of the control socket ([control] socket)
	// that `invpn status` and `invpn health` use; empty means none. Run
	// creates it (root only, its directory 0700 if missing) before the
	// loop starts and removes it when it stops.
	ControlSocket string
	// MetricsListen is the host:port of the Prometheus endpoint ([metrics]
	// listen); empty means off. Run opens it before the loop starts and
	// closes it when it stops.
	MetricsListen string
	// Map serves the live map of the mesh at /map/ on the metrics
	// listener ([metrics] map); MapToken, when not empty, is the token a
	// browser must give for it ([metrics] map_token).
	Map      bool
	MapToken string

	// Revocations is the store of the group's revocation list that the
	// transport's handshakes consult (tlstransport.Config.Revoked); nil
	// means revocation is off. CAs are the CAs a list must be signed by,
	// and Revocation, when set, the list of the configuration ([ssl]
	// crl). The daemon installs the newest of it and the list saved next
	// to the peer cache (CacheFile + ".crl") at start, and every newer
	// list a neighbour sends that verifies.
	Revocations *revocation.Store
	CAs         []*x509.Certificate
	Revocation  *revocation.List
	// Certificate is this node's certificate, for status and the metrics
	// (its expiry); nil leaves it out.
	Certificate *x509.Certificate
}

// Daemon runs one mesh member. Create it with New and start it with Run.
type Daemon struct {
	opts Options
	mac  wire.MAC
	log  *slog.Logger
	tap  tapdev.Device
	// offload is tap as a device with offloads, nil when it has none.
	offload tapdev.OffloadDevice
	// segments is the TAP writer's buffer for cutting a super-frame for a
	// TAP device without offloads; nil until one comes.
	segments []byte

	// Owned by the loop.
	node       *node.Node
	transport  Transport
	listeners  []transport.Listener
	links      map[node.LinkID]*peerLink
	lastLinkID node.LinkID
	dialing    map[wire.MAC]netip.AddrPort // dials in progress, for log lines
	cache      cacheFile
	saver      *cacheSaver // writes cache snapshots off the loop; started by Run
	queueDrops uint64      // data messages dropped at full link queues, all links
	// hops is where unicast frames go, for the readers' back-pressure:
	// the loop rebuilds it when hopsStale, at most every hopRebuild.
	hops      hopTable
	hopsStale bool
	hopsBuilt time.Time
	started   time.Time
	// routeChanges counts EventRouteChanged: the node counts failovers
	// and withdrawals itself, not changes.
	routeChanges uint64
	// revocationsRefused counts lists from neighbours that did not verify.
	revocationsRefused uint64
	cert               *x509.Certificate      // this node's, for status
	forgeryLog         rateLog                // forged signatures, logged once a second
	health             map[uint64]*healthWait // health requests of control clients, by id
	seeds              []node.Peer            // the `init` seeds running now
	// preauthClosed adds up the pre-authentication refusals of the
	// listeners closed since Run started (the open ones count their own).
	preauthClosed [tlstransport.NumRefusals]uint64

	// known holds the addresses of the peers the daemon knows: the loop
	// writes it, the listeners read it (admission.go).
	known *knownAddrs

	// Opened by Run before the loop starts; their goroutines stop with
	// d.ctx.
	control   *control.Server
	metrics   *metrics.Registry // nil when metrics are off
	metricsLn net.Listener
	meshmap   *meshmap.Server // nil when the map is off

	// Channels from the other goroutines to the loop.
	in       chan loopInput
	held     []loopInput   // the inputs whose Ready the loop is processing
	tapOut   chan tapWrite // frames for the TAP writer
	down     chan linkDown
	dialed   chan dialResult
	accepted chan transport.Link
	ctrl     chan func()

	// heldSpace is where receive keeps the inputs of one batch: a field,
	// not a local array, because d.held points into it (a local would
	// move to the heap, 2.5 KB per batch, and wake the GC).
	heldSpace [inputBatch]loopInput

	ctx     context.Context // cancelled when the loop stops: ends dials and accepts
	cancel  context.CancelFunc
	done    chan struct{} // closed when the loop stops: senders give up
	stopped chan struct{} // closed when Run has returned
	wg      sync.WaitGroup
}

// loopInput is a message from a link, or a frame from the TAP when link is
// 0, in a pooled buffer the loop returns after the node is done with it.
type loopInput struct {
	link node.LinkID
	buf  *[]byte
	off  int // where the message or frame starts in buf
	n    int
	// offload is a TAP frame's offload fields, from a device with
	// offloads (tapdev.OffloadDevice).
	offload gso.Meta
	// held is the link the frame goes to, as its reader saw it, which
	// counts weight in its load until the loop has taken the frame
	// (back-pressure, link.go); nil when not counted.
	held   *peerLink
	weight int
}

type linkDown struct {
	link node.LinkID
	err  error
}

type dialResult struct {
	peer node.Peer
	link transport.Link
	err  error
}

// New checks opts and builds the node from opts.Node, with the peer
// cache and id floor loaded from opts.CacheFile (a damaged cache is logged
// and ignored).
func New(opts Options) (*Daemon, error) {
	switch {
	case opts.TAP == nil:
		return nil, errors.New("daemon: no TAP device")
	case opts.Transport.Dialer == nil:
		return nil, errors.New("daemon: no dialer")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = DefaultQueueLimit
	}
	if opts.CacheSaveInterval <= 0 {
		opts.CacheSaveInterval = DefaultCacheSaveInterval
	}
	d := &Daemon{
		opts:      opts,
		mac:       opts.Node.MAC,
		log:       opts.Logger,
		tap:       opts.TAP,
		transport: opts.Transport,
		links:     map[node.LinkID]*peerLink{},
		dialing:   map[wire.MAC]netip.AddrPort{},
		health:    map[uint64]*healthWait{},
		known:     newKnownAddrs(),
		seeds:     slices.Clone(opts.Node.Seeds),
		cert:      opts.Certificate,
		in:        make(chan loopInput, 256),
		tapOut:    make(chan tapWrite, tapQueue),
		down:      make(chan linkDown),
		dialed:    make(chan dialResult),
		accepted:  make(chan transport.Link),
		ctrl:      make(chan func()),
		done:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	if od, ok := opts.TAP.(tapdev.OffloadDevice); ok && od.Offloads() {
		d.offload = od
	}
	d.cache = cacheFile{path: opts.CacheFile, interval: opts.CacheSaveInterval, known: d.known}
	st, err := peercache.Load(opts.CacheFile)
	if err != nil {
		d.log.Warn("peer cache ignored", "file", opts.CacheFile, "err", err)
	}
	d.cache.st = st
	for _, addr := range st.Peers {
		d.known.add(addr.Addr())
	}
	for _, p := range d.seeds {
		d.known.add(p.Addr.Addr())
	}
	n, err := node.New(withState(opts.Node, st))
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	d.node = n
	return d, nil
}

// withState returns nc with the persisted state st: the cached peers
// sorted by MAC and the id floor, and a randomness source and an index
// seed if nc has none.
func withState(nc node.Config, st peercache.State) node.Config {
	if nc.Rand == nil {
		var seed [32]byte
		crand.Read(seed[:]) // never fails
		nc.Rand = rand.New(rand.NewChaCha8(seed))
	}
	if nc.IndexSeed == 0 {
		var seed [8]byte
		crand.Read(seed[:]) // never fails
		nc.IndexSeed = binary.LittleEndian.Uint64(seed[:])
	}
	nc.Seeds = slices.Clone(nc.Seeds)
	nc.Cache, nc.IDFloor = nil, st.IDFloor
	for mac, addr := range st.Peers {
		nc.Cache = append(nc.Cache, node.Peer{MAC: mac, Addr: addr})
	}
	slices.SortFunc(nc.Cache, func(a, b node.Peer) int { return a.MAC.Compare(b.MAC) })
	return nc
}

// NodeConfig returns the node's configuration with defaults filled in.
func (d *Daemon) NodeConfig() node.Config { return d.node.Config() }

// Run opens the listeners, starts reading the TAP device and runs the loop
// until ctx is done or a stop signal arrives; then it closes the
// listeners, the control socket, the metrics endpoint, the links and the
// TAP device, saves the peer cache, waits for its goroutines and returns
// nil. It fails only when the control socket, the metrics endpoint or the
// listeners cannot be opened. Run may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	defer close(d.stopped)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.started = time.Now()
	if err := d.openServers(); err != nil {
		d.cancel()
		d.tap.Close()
		return fmt.Errorf("daemon: %w", err)
	}
	if d.transport.Listen != nil {
		if err := d.listen(d.transport.Listen); err != nil {
			d.cancel()
			d.closeServers()
			d.tap.Close()
			return fmt.Errorf("daemon: %w", err)
		}
	}
	d.serve()
	d.saver = newCacheSaver(d.cache.path, d.log)
	go d.saver.run()
	d.wg.Add(2)
	go d.readTAP()
	go d.writeTAPFrames()
	d.log.Info("daemon started", "mac", d.mac, "tap", d.tap.Name(), "port", d.opts.Node.Port,
		"listeners", len(d.listeners), "seeds", len(d.opts.Node.Seeds), "cached_peers", len(d.cache.st.Peers))
	d.notify(sdnotify.Ready + "\n" + sdnotify.Status(fmt.Sprintf("%s on %s, %d listeners", d.mac, d.tap.Name(), len(d.listeners))))

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	d.startRevocation()
	d.node.Step(time.Now(), node.Tick{})
	d.process()
	for {
		timer.Reset(d.untilDeadline())
		select {
		case <-ctx.Done():
			return d.shutdown("context done")
		case sig := <-d.opts.Signals:
			if sig == syscall.SIGHUP {
				d.reload()
				continue
			}
			return d.shutdown("signal " + sig.String())
		case m := <-d.in:
			d.receive(m)
		case ld := <-d.down:
			d.linkDown(ld)
		case r := <-d.dialed:
			delete(d.dialing, r.peer.MAC)
			d.known.remove(r.peer.Addr.Addr())
			if r.err != nil {
				d.node.Step(time.Now(), node.DialFailed{Peer: r.peer.MAC, Err: r.err})
				d.process()
				continue
			}
			d.linkUp(r.link)
		case l := <-d.accepted:
			d.linkUp(l)
		case f := <-d.ctrl:
			f()
		case <-timer.C:
			now := time.Now()
			d.node.Step(now, node.Tick{})
			d.process()
			if d.cache.due(now) {
				d.saveCache()
			}
		}
	}
}

// untilDeadline returns how long the loop may wait for input: until the
// node's next deadline, a debounced cache save or a debounced rebuild of
// the hop table.
func (d *Daemon) untilDeadline() time.Duration {
	dl := d.node.NextDeadline()
	if at, ok := d.cache.saveAt(); ok && (dl.IsZero() || at.Before(dl)) {
		dl = at
	}
	if at := d.hopsBuilt.Add(hopRebuild); d.hopsStale && (dl.IsZero() || at.Before(dl)) {
		dl = at
	}
	if dl.IsZero() {
		return time.Hour
	}
	return max(time.Until(dl), 0)
}

// receive hands the node m and, without waiting, whatever else is already
// queued (up to inboundBatch), then processes one Ready and returns the
// buffers.
func (d *Daemon) receive(m loopInput) {
	held := &d.heldSpace
	k := 0
	for {
		now := time.Now()
		msg := (*m.buf)[m.off : m.off+m.n]
		switch {
		case m.link == 0 && d.offload != nil:
			d.node.OffloadFromTAP(now, m.offload, (*m.buf)[:m.off+m.n], m.off)
		case m.link == 0:
			d.node.FrameFromTAP(now, msg)
		default:
			if pl := d.links[m.link]; pl != nil {
				pl.framesIn++
				pl.bytesIn += uint64(m.n)
			}
			d.node.Receive(now, m.link, msg)
		}
		held[k] = m
		k++
		if k == len(held) {
			break
		}
		select {
		case m = <-d.in:
			continue
		default:
		}
		break
	}
	d.held = held[:k]
	d.process() // the node's outputs may point into the held buffers
	d.held = nil
	for i := range held[:k] {
		if pl := held[i].held; pl != nil {
			pl.taken(held[i].weight)
		}
		if held[i].buf != nil { // not taken over by the TAP writer
			putBuf(held[i].buf)
		}
	}
	clear(held[:k]) // no buffer or link stays reachable from here
}

// process carries out the node's Ready and advances it.
func (d *Daemon) process() {
	r := d.node.Ready()
	// Events first: they name links that Closes below forget.
	for i := range r.Events {
		switch r.Events[i].Kind {
		case node.EventRouteChanged:
			d.routeChanges++
			d.hopsStale = true
		case node.EventRouteLearned, node.EventRouteFailover, node.EventRouteWithdrawn, node.EventRouteExpired:
			d.hopsStale = true
		}
		d.logEvent(&r.Events[i])
	}
	for _, s := range r.Sends {
		pl := d.links[s.Link]
		if pl == nil {
			continue
		}
		if !pl.push(s) {
			pl.queueDrops++
			d.queueDrops++
			if d.log.Enabled(context.Background(), slog.LevelDebug) {
				d.log.Debug("drop", "reason", node.DropQueueFull.String(), "peer", pl.peer, "addr", pl.addr, "link", pl.id)
			}
		}
	}
	for _, c := range r.Closes {
		d.forgetLink(c.Link)
	}
	for _, f := range r.TAP {
		d.queueTAP(f)
	}
	for _, p := range r.Dials {
		d.dial(p)
	}
	for _, p := range r.CacheStore {
		d.cache.store(p.MAC, p.Addr)
	}
	for _, mac := range r.CacheRemove {
		d.cache.remove(mac)
	}
	if r.IDFloor != 0 {
		d.cache.st.IDFloor = r.IDFloor
		d.saveCache()
	}
	for _, h := range r.Health {
		d.healthAnswer(h)
	}
	for _, hl := range r.HealthLinks {
		if w := d.health[hl.ID]; w != nil {
			w.links = append(w.links, hl)
		}
	}
	heard := d.checkRevocations(r.Revocations)
	d.node.Advance()
	d.rebuildHops()
	for _, h := range heard {
		d.installRevocation(h.list, h.from, fmt.Sprintf("link %d", h.from))
	}
}

// rebuildHops publishes the node's next hops for the readers when they
// changed, at most every hopRebuild.
func (d *Daemon) rebuildHops() {
	if !d.hopsStale {
		return
	}
	now := time.Now()
	if now.Sub(d.hopsBuilt) < hopRebuild {
		return
	}
	d.hopsStale, d.hopsBuilt = false, now
	m := make(map[wire.MAC]*peerLink, len(d.links))
	d.node.EachNextHop(func(target wire.MAC, via node.LinkID) {
		if pl := d.links[via]; pl != nil {
			m[target] = pl
		}
	})
	d.hops.m.Store(&m)
}

// linkUp starts a new link's goroutines and tells the node.
func (d *Daemon) linkUp(l transport.Link) {
	if list := d.revocationList(); list != nil && d.revoked(l, list) {
		// Its handshake began before the list came.
		d.log.Warn("link of a revoked member refused", "peer", l.Peer(), "addr", l.RemoteAddr(), "list", list.Number)
		l.Close()
		return
	}
	d.lastLinkID++ // never reused
	pl := newPeerLink(d.lastLinkID, l, d.opts.QueueLimit)
	d.links[pl.id] = pl
	d.hopsStale = true // it may take over another link's routes
	d.known.add(pl.addr.Addr())
	d.wg.Add(2)
	go d.readLink(pl)
	go d.writeLink(pl)
	d.node.Step(time.Now(), node.LinkUp{Link: pl.id, Peer: pl.peer, Addr: pl.addr, Dialed: l.Dialed(), Extended: l.Extended()})
	d.process()
}

// linkDown handles a link whose reader stopped. A link the node closed is
// already forgotten.
func (d *Daemon) linkDown(ld linkDown) {
	pl := d.links[ld.link]
	if pl == nil {
		return
	}
	err := ld.err
	if werr := pl.writeErr(); werr != nil {
		err = werr
	}
	d.dropLink(ld.link, err)
}

// dropLink tells the node that link id is gone, for err, and forgets it.
func (d *Daemon) dropLink(id node.LinkID, err error) {
	d.node.Step(time.Now(), node.LinkDown{Link: id, Reason: err})
	d.process() // logs the event while the link is still known
	d.forgetLink(id)
}

// forgetLink closes a link and forgets it.
func (d *Daemon) forgetLink(id node.LinkID) {
	if pl := d.links[id]; pl != nil {
		pl.close()
		delete(d.links, id)
		d.hopsStale = true
		d.known.remove(pl.addr.Addr())
	}
}

// dial starts a goroutine that dials p and reports back to the loop.
func (d *Daemon) dial(p node.Peer) {
	d.dialing[p.MAC] = p.Addr
	d.known.add(p.Addr.Addr())   // its answer may come as an incoming link; removed with the result
	dialer := d.transport.Dialer // a reload changes it for later dials only
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, d.opts.DialTimeout)
		l, err := dialer.Dial(ctx, p.MAC, p.Addr)
		cancel()
		select {
		case d.dialed <- dialResult{peer: p, link: l, err: err}:
		case <-d.done:
			if l != nil {
				l.Close()
			}
		}
	}()
}

// listen opens listeners with fn and starts an accepting goroutine for each.
func (d *Daemon) listen(fn func() ([]transport.Listener, error)) error {
	lns, err := fn()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	d.listeners = lns
	for _, ln := range lns {
		if g, ok := ln.(guardedListener); ok {
			g.SetKnown(d.known.contains)
		}
		d.log.Info("listening", "addr", ln.Addr())
		d.wg.Add(1)
		go d.accept(ln)
	}
	return nil
}

func (d *Daemon) closeListeners() {
	for _, ln := range d.listeners {
		if err := ln.Close(); err != nil {
			d.log.Warn("closing listener", "addr", ln.Addr(), "err", err)
		}
		if g, ok := ln.(guardedListener); ok {
			for i, n := range g.AdmissionStats().Refused {
				d.preauthClosed[i] += n
			}
		}
	}
	d.listeners = nil
}

// accept runs in its own goroutine per listener until the listener is
// closed or the daemon stops.
func (d *Daemon) accept(ln transport.Listener) {
	defer d.wg.Done()
	var backoff time.Duration
	for {
		l, err := ln.Accept(d.ctx)
		if err != nil {
			if d.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			d.log.Warn("accept failed", "addr", ln.Addr(), "err", err)
			select {
			case <-time.After(backoff):
			case <-d.done:
				return
			}
			continue
		}
		backoff = 0
		select {
		case d.accepted <- l:
		case <-d.done:
			l.Close()
			return
		}
	}
}

// rekey gives the running listeners the identity of tr in place when tr
// listens on the same addresses; it reports whether it did.
func (d *Daemon) rekey(tr Transport) bool {
	if tr.Rekey == nil || !slices.Equal(tr.ListenAddrs, d.transport.ListenAddrs) {
		return false
	}
	for _, ln := range d.listeners {
		if err := tr.Rekey(ln); err != nil {
			d.log.Warn("reload: cannot change a listener's identity in place; listening anew", "addr", ln.Addr(), "err", err)
			return false
		}
	}
	d.log.Info("reload: listeners kept, new identity in place", "listeners", len(d.listeners))
	return true
}

// notify tells the service manager state, if the daemon has one.
func (d *Daemon) notify(state string) {
	if d.opts.Notify != nil {
		d.opts.Notify(state)
	}
}

// reload applies a SIGHUP: new TLS identity for new links, new seeds. The
// TAP device and the links that are up stay.
func (d *Daemon) reload() {
	if d.opts.Reload == nil {
		d.log.Warn("SIGHUP ignored: this daemon has no reload")
		return
	}
	d.notify(sdnotify.Reloading())
	defer d.notify(sdnotify.Ready)
	r, err := d.opts.Reload()
	if err != nil {
		d.log.Error("reload failed; keeping the running configuration", "err", err)
		return
	}
	if r.Transport.Dialer != nil {
		d.transport.Dialer = r.Transport.Dialer
	}
	old := d.transport.Listen
	switch {
	case r.Transport.Listen == nil && old != nil:
		d.log.Warn("reload: no_incoming changed; restart to apply it (still listening with the old certificate)")
	case r.Transport.Listen != nil && old == nil:
		d.log.Warn("reload: no_incoming changed; restart to apply it (still not listening)")
	case r.Transport.Listen != nil && d.rekey(r.Transport):
		d.transport.Listen, d.transport.Rekey = r.Transport.Listen, r.Transport.Rekey
	case r.Transport.Listen != nil:
		d.closeListeners()
		if err := d.listen(r.Transport.Listen); err != nil {
			d.log.Error("reload: cannot listen with the new configuration; keeping the old", "err", err)
			if err := d.listen(old); err != nil {
				d.log.Error("reload: cannot listen again; no incoming links until the next reload", "err", err)
			}
		} else {
			d.transport.Listen, d.transport.ListenAddrs, d.transport.Rekey = r.Transport.Listen, r.Transport.ListenAddrs, r.Transport.Rekey
		}
	}
	for _, p := range d.seeds {
		d.known.remove(p.Addr.Addr())
	}
	if r.Certificate != nil {
		d.cert = r.Certificate
	}
	if d.opts.Revocations != nil && r.CAs != nil {
		d.opts.CAs = r.CAs
		d.opts.Revocations.SetCAs(r.CAs)
	}
	if d.opts.Revocations != nil && r.Revocation != nil {
		d.installRevocation(r.Revocation, 0, r.File)
	}
	d.seeds = slices.Clone(r.Seeds)
	for _, p := range d.seeds {
		d.known.add(p.Addr.Addr())
	}
	d.node.Step(time.Now(), node.SetSeeds{Seeds: slices.Clone(r.Seeds), Bootstrap: slices.Clone(r.Bootstrap)})
	d.log.Info("reloaded", "file", r.File, "seeds", len(r.Seeds), "listeners", len(d.listeners))
	d.node.Step(time.Now(), node.Tick{})
	d.process()
}

// shutdown stops everything; it runs on the loop.
func (d *Daemon) shutdown(why string) error {
	d.notify(sdnotify.Stopping)
	d.log.Info("stopping", "reason", why, "links", len(d.links))
	d.closeListeners()
	d.cancel()
	close(d.done)
	for id := range d.links {
		d.forgetLink(id)
	}
	d.tap.Close()
	d.saveCache()
	d.saver.stop()
	d.wg.Wait()
	d.log.Info("stopped")
	return nil
}

// saveCache hands the saver a snapshot of the cache to write.
func (d *Daemon) saveCache() {
	if st, ok := d.cache.snapshot(time.Now()); ok {
		d.saver.offer(st)
	}
}
