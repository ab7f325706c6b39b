package node

import (
	"time"
)

// timers are the node's deadlines, on its own clock.
type timers struct {
	nextAnnounce  time.Time // the next periodic announcement
	lastTriggered time.Time // last announcement triggered by a lost link
	announceDue   time.Time // a triggered announcement waiting for TriggerGap; zero if none
	nextConnect   time.Time // the next run of the connect policy
	nextSweep     time.Time // the next route and dedup expiry sweep
	// given is the deadline NextDeadline last gave the driver; a deadline
	// set sooner than it since sets Ready.Sooner (wakeAt).
	given time.Time
}

// start sets the timers at the node's first input: announce and connect
// at once, sweep after one sweep interval.
func (t *timers) start(now time.Time, sweep time.Duration) {
	t.nextAnnounce, t.nextConnect, t.nextSweep = now, now, now.Add(sweep)
}

// due reports whether deadline d, when set, has come at now.
func due(d, now time.Time) bool { return !d.IsZero() && !now.Before(d) }

// tickInput handles Tick: it runs what is due at now.
func (n *Node) tickInput(now time.Time) {
	n.tick(now)
	now = n.clock.now
	n.checkLiveness(now)
	n.checkDirectory(now)
	if len(n.links.retiring) > 0 {
		n.checkRetiring(now)
	}
	if len(n.unconfirmed) > 0 {
		n.confirmFailovers(now)
	}
	if due(n.timers.nextAnnounce, now) {
		if n.quiet() && n.clock.announced != 0 {
			n.refresh()
		} else {
			n.announce()
		}
		n.timers.nextAnnounce = now.Add(n.cfg.AnnounceInterval)
		if n.quiet() {
			n.timers.nextAnnounce = n.nextRefresh(now)
		}
	} else if due(n.timers.announceDue, now) {
		n.timers.lastTriggered = now
		n.announce()
	}
	if due(n.timers.nextSweep, now) {
		n.sweep()
		n.timers.nextSweep = now.Add(n.sweepInterval())
	}
	if due(n.timers.nextConnect, now) || (n.quickDial() && due(n.dialer.dialAt, now)) {
		n.connect()
		if due(n.timers.nextConnect, now) {
			n.timers.nextConnect = now.Add(n.cfg.ConnectInterval)
		}
		n.scheduleDial()
	} else if due(n.dialer.seedAt, now) {
		n.dialSeeds()
		n.scheduleDial()
	}
	if n.quiet() {
		n.endWaits(now)
		n.sendAcrossAsks(now)
		n.flushDue(now)
		n.flushUrgent()
	}
}

// NextDeadline returns when, in the driver's time, the node next needs a
// Tick. It is after the time of the last input unless something is due.
func (n *Node) NextDeadline() time.Time {
	d := n.nextDeadline()
	n.timers.given = d
	if d.IsZero() {
		return d
	}
	return n.clock.input.Add(d.Sub(n.clock.now))
}

// wakeAt notes a deadline set at t on the node's clock: when it is sooner
// than the one the driver was last given, Ready.Sooner tells a driver
// that does not ask NextDeadline after every input to ask now.
func (n *Node) wakeAt(t time.Time) {
	if n.timers.given.IsZero() || t.Before(n.timers.given) {
		n.ready.Sooner = true
	}
}

// nextDeadline returns the next deadline on the node's own clock.
func (n *Node) nextDeadline() time.Time {
	if !n.clock.started {
		return time.Time{}
	}
	d := n.timers.nextAnnounce
	later := func(t time.Time) {
		if !t.IsZero() && t.Before(d) {
			d = t
		}
	}
	later(n.timers.nextConnect)
	later(n.timers.nextSweep)
	later(n.timers.announceDue)
	for _, l := range n.links.order {
		later(n.livenessDeadline(l))
		later(l.batch.due)
	}
	for _, l := range n.links.directory {
		later(n.livenessDeadline(l))
	}
	for _, l := range n.links.retiring {
		later(l.retireBy)
	}
	if len(n.unconfirmed) > 0 {
		later(n.confirmDeadline())
	}
	later(n.waitDeadline())
	later(n.acrossDeadline())
	later(n.directoryDeadline())
	if n.quickDial() {
		later(n.dialer.dialAt)
	}
	later(n.dialer.seedAt)
	return d
}

func (n *Node) sweepInterval() time.Duration {
	// The original swept every RouteExpiry, so stale routes lived up to
	// twice as long; a tenth keeps the overshoot at 10 %.
	return n.cfg.RouteExpiry / 10
}

// sweep purges routes not refreshed within RouteExpiry, and the
// de-duplication state of sources that are no longer routed.
func (n *Node) sweep() {
	for _, x := range n.routes.expire(n.clock.now.Add(-n.cfg.RouteExpiry)) {
		n.event(Event{Kind: EventRouteExpired, MAC: x.target, From: x.via})
	}
	n.dedup.expire(n.clock.now, n.cfg.DedupSpan)
	n.forgetSignatures()
	for id, at := range n.healthPending {
		if n.clock.now.Sub(at) >= n.cfg.DedupSpan {
			delete(n.healthPending, id)
		}
	}
}
