package node

import "time"

// idClock is the node's own clock and the ids it issues. The clock only
// moves forward: when the driver's time steps back it is not followed back
// (the node's timers would freeze until the driver's time caught up), and
// ids come from the driver's time in milliseconds, kept above everything
// issued before (docs/protocol.md#ids, docs/protocol.md#defect-3).
type idClock struct {
	started bool
	now     time.Time // the node's own clock, which never goes back
	input   time.Time // the driver's time at the last input

	lastID      uint64    // every id issued is greater
	announced   uint64    // the id of this node's latest announcement
	announcedAt time.Time // when it went out
	owed        bool      // a round was due while the node had no link
	floorStored uint64    // the id floor the driver has been told to persist
	reserve     uint64    // how far ahead of the ids the floor is persisted
}

func newIDClock(floor, reserve uint64) idClock {
	return idClock{lastID: floor, floorStored: floor, reserve: reserve}
}

// advance moves the clock by the time that passed since the last input,
// at driver time now; it reports whether this was the first input.
func (c *idClock) advance(now time.Time) (first bool) {
	if !c.started {
		c.started = true
		c.now, c.input = now, now
		return true
	}
	if d := now.Sub(c.input); d > 0 {
		c.now = c.now.Add(d)
	}
	c.input = now
	return false
}

// next returns a fresh id, greater than every id issued before in this run
// or (through the persisted floor) an earlier one, and at least the clock
// in milliseconds, as the original's ids. persist, when not zero, is a new
// floor the driver must store.
func (c *idClock) next() (id, persist uint64) {
	id = max(c.millis(), c.lastID+1)
	c.lastID = id
	if id+c.reserve/2 > c.floorStored {
		c.floorStored = id + c.reserve
		persist = c.floorStored
	}
	return id, persist
}

// observe takes an id of this node's seen in the mesh (an echo, or a
// neighbour's route copy after a restart): later ids are issued above it.
// An id absurdly far ahead of the clock is not taken (it could wrap the
// counter). It reports whether the id is newer than the node's latest
// announcement: the mesh holds a round of ours that we did not send in
// this run.
func (c *idClock) observe(id uint64) (newer bool) {
	if id > c.millis()+100*c.reserve {
		return false
	}
	c.lastID = max(c.lastID, id)
	return id > c.announced
}

// millis is the driver's clock in milliseconds since 1970; a clock set
// before 1970 reads 0 (a negative value would wrap the id counter).
func (c *idClock) millis() uint64 { return uint64(max(0, c.input.UnixMilli())) }

// tick advances the node's clock to driver time now and, on the first
// input, starts the timers.
func (n *Node) tick(now time.Time) {
	if n.clock.advance(now) {
		n.timers.start(now, n.sweepInterval())
	}
}

// newID issues an id and asks the driver to persist a new floor when due.
func (n *Node) newID() uint64 {
	id, persist := n.clock.next()
	if persist != 0 {
		n.ready.IDFloor = persist
	}
	return id
}
