package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// logEvent writes one node event as a log line. Link events name the peer
// and its address; route events the target and the next hop's peer and
// address; drops are logged at debug level only, but for forged
// signatures, which say a member announced another's MAC: those are
// warnings, one a second at most (forgeryLog).
func (d *Daemon) logEvent(e *node.Event) {
	switch e.Kind {
	case node.EventDrop:
		if e.Drop == node.DropForged {
			if n, ok := d.forgeryLog.allow(time.Now()); ok {
				d.log.Warn("forged signature refused: a member announced another's MAC",
					append(d.linkAttrs("from", d.peerOf(e.Link), e.Link), "claimed", e.MAC, "err", errString(e.Err), "not_logged_since", n)...)
			}
			return
		}
		if d.log.Enabled(context.Background(), slog.LevelDebug) {
			d.log.Debug("drop", "reason", e.Drop.String(), "mac", e.MAC)
		}
	case node.EventLinkUp:
		attrs := d.linkAttrs("peer", e.MAC, e.Link)
		if pl := d.links[e.Link]; pl != nil {
			attrs = append(attrs, "dialed", pl.link.Dialed(), "extended", pl.link.Extended())
		}
		if e.Directory {
			d.log.Info("directory link up", attrs...) // a table for the cache, no routes
			break
		}
		d.log.Info("link up", attrs...)
	case node.EventLinkDown:
		msg := "link down"
		if e.Directory {
			msg = "directory link down"
		}
		d.log.Info(msg, append(d.linkAttrs("peer", e.MAC, e.Link), "reason", errString(e.Err))...)
	case node.EventRouteLearned, node.EventRouteChanged:
		d.log.Info(e.Kind.String(), append([]any{"target", e.MAC}, d.viaAttrs("via", e.Link)...)...)
	case node.EventRouteFailover:
		attrs := append([]any{"target", e.MAC}, d.viaAttrs("via", e.Link)...)
		d.log.Info(e.Kind.String(), append(attrs, d.viaAttrs("from", e.From)...)...)
	case node.EventRouteWithdrawn, node.EventRouteExpired:
		d.log.Info(e.Kind.String(), append([]any{"target", e.MAC}, d.viaAttrs("from", e.From)...)...)
	case node.EventViolation:
		d.log.Warn("protocol violation", append(d.linkAttrs("peer", e.MAC, e.Link), "err", errString(e.Err))...)
	case node.EventDialFailed:
		attrs := []any{"peer", e.MAC}
		if addr, ok := d.dialing[e.MAC]; ok {
			attrs = append(attrs, "addr", addr)
		}
		d.log.Info("dial failed", append(attrs, "err", errString(e.Err))...)
	default:
		d.log.Info(e.Kind.String(), "mac", e.MAC, "link", e.Link, "err", errString(e.Err))
	}
}

// linkAttrs names a link: its peer, address and id.
func (d *Daemon) linkAttrs(key string, mac any, id node.LinkID) []any {
	attrs := []any{key, mac}
	if pl := d.links[id]; pl != nil {
		attrs = append(attrs, "addr", pl.addr)
	}
	return append(attrs, "link", uint64(id))
}

// viaAttrs names the next hop of a route by its link: the peer and address.
func (d *Daemon) viaAttrs(key string, id node.LinkID) []any {
	if id == 0 {
		return nil
	}
	if pl := d.links[id]; pl != nil {
		return []any{key, pl.peer, key + "_addr", pl.addr, key + "_link", uint64(id)}
	}
	return []any{key + "_link", uint64(id)}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// peerOf returns the peer of link id; the zero MAC if it is gone.
func (d *Daemon) peerOf(id node.LinkID) wire.MAC {
	if pl := d.links[id]; pl != nil {
		return pl.peer
	}
	return wire.MAC{}
}

// rateLog lets one line through a second: a member that floods forgeries
// must not fill the log.
type rateLog struct {
	last       time.Time
	suppressed int
}

// allow reports whether a line may be written at now, and how many were
// held back since the last one.
func (r *rateLog) allow(now time.Time) (int, bool) {
	if !r.last.IsZero() && now.Sub(r.last) < time.Second {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}
