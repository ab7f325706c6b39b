package daemon

import (
	"crypto/x509"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// Snapshot is the state of a running daemon, taken in its loop.
type Snapshot struct {
	MAC     wire.MAC         // the node's identity
	Started time.Time        // when Run started
	Now     time.Time        // when the snapshot was taken
	Links   []LinkStatus     // the links that are up
	Routes  []node.RouteInfo // the routing table
	// Stats are the node's counters; Stats.Drops[node.DropQueueFull]
	// counts the data messages the daemon dropped at full link queues.
	Stats node.Stats
	// RouteChanges counts routes moved by a newer announcement
	// (node.EventRouteChanged).
	RouteChanges uint64
	// Cache is the peer cache, sorted by MAC.
	Cache []node.Peer
	// Preauth is what the listeners are handshaking now and what they
	// refused before authentication since Run started
	// (docs/security.md#admission); KnownAddrs how many addresses they
	// treat as known peers'.
	Preauth    tlstransport.AdmissionStats
	KnownAddrs int
	// Revocation is the revocation list in force: its number (0: none)
	// and how many certificates it revokes; RevocationsRefused counts the
	// lists from neighbours that did not verify.
	Revocation         RevocationStatus
	RevocationsRefused uint64
	// Certificate is this node's certificate; nil when Options had none.
	Certificate *x509.Certificate
}

// RevocationStatus describes the revocation list in force.
type RevocationStatus struct {
	Number  uint64
	Revoked int
	Issuer  string
	Issued  time.Time // the list's ThisUpdate
}

// LinkStatus is one live link and its traffic.
type LinkStatus struct {
	node.LinkInfo
	Transport           string // the transport that carries it (transport.Link.Transport)
	FramesIn, FramesOut uint64 // messages read from and written to the link
	BytesIn, BytesOut   uint64 // their bytes; out also counts each 2-byte length prefix
	QueueDrops          uint64 // data messages dropped at the link's full queue
	Queued              int    // messages waiting for the writer
	// CertExpires is when the peer's certificate expires; zero when the
	// transport shows none.
	CertExpires time.Time
}

// Status returns a snapshot of the running daemon, taken by its loop. It
// returns the zero Snapshot once Run has returned, and blocks until Run
// has started.
func (d *Daemon) Status() Snapshot {
	reply := make(chan Snapshot, 1)
	select {
	case d.ctrl <- func() { reply <- d.snapshot() }:
	case <-d.stopped:
		return Snapshot{}
	}
	select {
	case s := <-reply:
		return s
	case <-d.stopped:
		return Snapshot{}
	}
}

// snapshot runs on the loop.
func (d *Daemon) snapshot() Snapshot {
	// The engine's clock moves only with its inputs: bring it to now, so
	// that the ages and silences it reports are measured to the same
	// instant as Now.
	now := time.Now()
	d.node.Step(now, node.Tick{})
	d.process()
	s := Snapshot{
		MAC: d.mac, Started: d.started, Now: now,
		Routes: d.node.Routes(), Stats: d.node.Stats(), Cache: d.node.Cache(),
		RouteChanges: d.routeChanges,
		Preauth:      d.preauthStats(), KnownAddrs: d.known.len(),
		RevocationsRefused: d.revocationsRefused, Certificate: d.cert,
	}
	if l := d.revocationList(); l != nil {
		s.Revocation = RevocationStatus{Number: l.Number, Revoked: l.Len(), Issuer: l.Issuer, Issued: l.ThisUpdate}
	}
	s.Stats.Drops[node.DropQueueFull] += d.queueDrops
	for _, li := range d.node.Links() {
		ls := LinkStatus{LinkInfo: li}
		if pl := d.links[li.ID]; pl != nil {
			ls.Transport = pl.link.Transport()
			ls.FramesIn, ls.BytesIn, ls.QueueDrops = pl.framesIn, pl.bytesIn, pl.queueDrops
			ls.FramesOut, ls.BytesOut = pl.framesOut.Load(), pl.bytesOut.Load()
			ls.Queued = pl.queued()
			if cl, ok := pl.link.(transport.CertifiedLink); ok {
				ls.CertExpires = cl.PeerCertificate().NotAfter
			}
		}
		s.Links = append(s.Links, ls)
	}
	return s
}
