package daemon

import (
	"bytes"
	"fmt"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/revocation"
	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/transport"
)

// The daemon's side of docs/protocol.md#revocation: it checks the lists
// the node hands up, installs the newest in the store that the TLS
// handshakes consult (Options.Revocations) and in the node, which floods
// it, saves it next to the peer cache, and closes the links of members it
// revokes.

// revocationSuffix names the saved list: the peer cache's path with it.
const revocationSuffix = ".crl"

// revocationPath is where the list is saved; empty when there is no
// peer cache.
func (d *Daemon) revocationPath() string {
	if d.opts.CacheFile == "" {
		return ""
	}
	return d.opts.CacheFile + revocationSuffix
}

// startRevocation installs, before the first link, the newest of the
// saved list and the configured one (Options.Revocation).
func (d *Daemon) startRevocation() {
	if d.opts.Revocations == nil {
		return
	}
	if path := d.revocationPath(); path != "" {
		saved, err := revocation.Load(path, d.opts.CAs)
		if err != nil {
			d.log.Warn("saved revocation list ignored", "err", err)
		}
		if saved != nil {
			d.installRevocation(saved, 0, "saved")
		}
	}
	if d.opts.Revocation != nil {
		d.installRevocation(d.opts.Revocation, 0, "configuration")
	}
}

// heardRevocation is a list a neighbour sent that verified.
type heardRevocation struct {
	list *revocation.List
	from node.LinkID
}

// checkRevocations verifies the lists of a Ready (their DER is valid only
// until Advance) and returns those to install. A list that does not
// verify is counted and logged, and its link kept: during a change of CA
// a member may pass on a list that another member cannot yet check.
func (d *Daemon) checkRevocations(rs []node.Revocation) []heardRevocation {
	if d.opts.Revocations == nil || len(rs) == 0 {
		return nil
	}
	var out []heardRevocation
	for _, r := range rs {
		l, err := d.opts.Revocations.Parse(r.DER)
		if err == nil && l.Number != r.Number {
			err = fmt.Errorf("message says list %d, the signed list is %d", r.Number, l.Number)
		}
		if err != nil {
			d.revocationsRefused++
			d.log.Warn("revocation list refused", "peer", r.Peer, "link", r.Link, "number", r.Number, "err", err)
			continue
		}
		out = append(out, heardRevocation{l, r.Link})
	}
	return out
}

// installRevocation makes l the list in force if it is newer than the
// held one: the handshakes refuse what it revokes from now on, the node
// passes it on (to every neighbour but from), it is saved, and the links
// of revoked members close. It reports whether l was installed.
func (d *Daemon) installRevocation(l *revocation.List, from node.LinkID, source string) bool {
	if !d.opts.Revocations.Offer(l) {
		return false
	}
	d.log.Info("revocation list installed", "number", l.Number, "revoked", l.Len(), "issuer", l.Issuer, "from", source)
	if path := d.revocationPath(); path != "" {
		if err := revocation.Save(path, l); err != nil {
			d.log.Error("saving the revocation list", "err", err)
		}
	}
	d.node.Step(time.Now(), node.SetRevocation{Number: l.Number, DER: bytes.Clone(l.DER), From: from})
	d.process()
	d.dropRevoked(l)
	return true
}

// revoked reports whether l's peer authenticated with a certificate the
// list in force revokes.
func (d *Daemon) revoked(l transport.Link, list *revocation.List) bool {
	cl, ok := l.(transport.CertifiedLink)
	return ok && list.Revokes(cl.PeerCertificate())
}

// dropRevoked closes every link whose peer's certificate list revokes.
func (d *Daemon) dropRevoked(list *revocation.List) {
	var gone []*peerLink
	for _, pl := range d.links {
		if d.revoked(pl.link, list) {
			gone = append(gone, pl)
		}
	}
	for _, pl := range gone {
		err := fmt.Errorf("peer %s: %w (list %d)", pl.peer, transport.ErrRevoked, list.Number)
		d.log.Warn("closing the link of a revoked member", "peer", pl.peer, "addr", pl.addr, "link", pl.id, "list", list.Number)
		d.dropLink(pl.id, err)
	}
}

// revocationList returns the list in force; nil for none.
func (d *Daemon) revocationList() *revocation.List {
	if d.opts.Revocations == nil {
		return nil
	}
	return d.opts.Revocations.Current()
}
