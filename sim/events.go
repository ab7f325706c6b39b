package sim

import "fmt"

// evKind says what an event does.
type evKind uint8

const (
	evTick        evKind = iota + 1 // a node's deadline
	evDeliver                       // a message arrives at the far end of a link (a direct key; trace only)
	evTxDone                        // a message finished serializing onto a link
	evLinkDown                      // one end learns its link is gone: end of stream, reset, timeout
	evDial                          // a step of a dial: a SYN retry or the end of the handshake (fn)
	evDialFail                      // a dial fails
	evAck                           // data kept for a retransmission is acknowledged
	evUserTimeout                   // data unacknowledged for the user timeout: the connection is aborted
	evAction                        // a scheduled fault, traffic or check
	// Trace-only kinds.
	evStart
	evCrash
	evClock
	evLinkUp
	evClose
	evCut
	evHeal
	evTAP
	evHalt
	evStall
	evResume
	evReset
	// evDatagram: a frame sent as a datagram (Config.Datagrams) arrives.
	// Last, so that the other kinds keep their numbers in the trace.
	evDatagram
)

var evNames = [...]string{"", "tick", "deliver", "tx done", "link down", "dial", "dial failed",
	"ack", "user timeout", "action", "start", "crash", "clock", "link up", "close", "cut", "heal", "tap",
	"halt", "stall", "resume", "reset", "datagram"}

// String names k as the trace prints it.
func (k evKind) String() string {
	if int(k) < len(evNames) {
		return evNames[k]
	}
	return fmt.Sprintf("ev(%d)", k)
}

// event is one entry of the world's queue. It lives in the queue's slab
// while pending; the heap orders small keys that point at it.
type event struct {
	at    int64
	kind  evKind
	from  int8 // the sending end of c
	node  int32
	epoch uint32
	aux   uint64
	c     *conn
	msg   []byte
	err   error
	fn    func()
}

// The heap key packs the sequence number above the slab slot, so that
// comparing (at, key) orders events by (at, seq) exactly: seq is unique.
//
// An arrival on a link, nearly every event of a large mesh, has no slab
// entry: its slot, marked with directBit, is the direction of the conn
// (network.dirIndex) whose first message on the wire arrives, and the
// key is all of the event.
const (
	slotBits  = 26 // up to 32 Mi pending slab events, 32 Mi directions
	slotMask  = 1<<slotBits - 1
	directBit = 1 << (slotBits - 1)
	maxSeq    = 1<<(64-slotBits) - 1 // about 2.7e11 events per world
)

// qkey is one entry of the heap: 16 bytes and no pointers, so sifting
// moves little memory and needs no write barriers; four children share a
// cache line.
type qkey struct {
	at int64
	sk uint64 // seq<<slotBits | slot
}

func (a qkey) less(b qkey) bool { return a.at < b.at || a.at == b.at && a.sk < b.sk }

// eventQueue is the world's pending events: a 4-ary min-heap of keys
// ordered by (at, seq) over a slab of events with a free list.
type eventQueue struct {
	keys []qkey
	slab []event
	free []int32
}

func (q *eventQueue) len() int { return len(q.keys) }

// next returns the time of the earliest event; the queue must not be
// empty.
func (q *eventQueue) next() int64 { return q.keys[0].at }

// push adds ev with sequence number seq.
func (q *eventQueue) push(ev *event, seq uint64) {
	var slot int32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.slab[slot] = *ev
	} else {
		if len(q.slab) >= directBit {
			panic("sim: more than 32 Mi events pending")
		}
		if seq > maxSeq {
			panic("sim: event sequence numbers exhausted")
		}
		slot = int32(len(q.slab))
		q.slab = append(q.slab, *ev)
	}
	q.pushKey(qkey{at: ev.at, sk: seq<<slotBits | uint64(slot)})
}

// pushDirect adds the arrival at `at`, with sequence number seq, of the
// first message on the wire of direction dir (below directBit).
func (q *eventQueue) pushDirect(at int64, seq uint64, dir int) {
	if seq > maxSeq {
		panic("sim: event sequence numbers exhausted")
	}
	q.pushKey(qkey{at: at, sk: seq<<slotBits | directBit | uint64(dir)})
}

func (q *eventQueue) pushKey(k qkey) {
	q.keys = append(q.keys, k)
	q.up(len(q.keys)-1, k)
}

// up places k at hole i or above it.
func (q *eventQueue) up(i int, k qkey) {
	keys := q.keys
	for i > 0 {
		p := (i - 1) / 4
		if !k.less(keys[p]) {
			break
		}
		keys[i] = keys[p]
		i = p
	}
	keys[i] = k
}

// pop removes the earliest key and returns it; the queue must not be
// empty. Unless it is a direct one, its event is then taken from the
// slab with take.
func (q *eventQueue) pop() qkey {
	keys := q.keys
	first := keys[0]
	last := len(keys) - 1
	k := keys[last]
	keys = keys[:last]
	q.keys = keys
	if last > 0 {
		// Move the hole down to a leaf along the smallest children, then
		// sift the former last key up from there: it usually belongs
		// near the bottom, so this compares less than a plain sift-down.
		i := 0
		for {
			c := 4*i + 1
			if c >= last {
				break
			}
			m := c
			end := min(c+4, last)
			for j := c + 1; j < end; j++ {
				if keys[j].less(keys[m]) {
					m = j
				}
			}
			keys[i] = keys[m]
			i = m
		}
		q.up(i, k)
	}
	return first
}

// take moves the event in slab slot `slot` into *ev and frees the slot.
func (q *eventQueue) take(slot int32, ev *event) {
	*ev = q.slab[slot]
	q.slab[slot] = event{}
	q.free = append(q.free, slot)
}
