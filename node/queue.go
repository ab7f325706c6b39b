package node

// SendQueue is the bounded output queue of one link, used by drivers (the
// daemon and the simulator) between a Ready and the link's writer. It
// holds at most DataLimit data messages (Ethernet frames), a message
// longer than a frame (a 0x90 super-frame) counting once per 2 KB it
// holds, so that a full queue holds about the same bytes, and the same
// delay, whatever its messages: a data message that finds the queue full
// is dropped and counted (defect 7: the original buffered without bound). Control messages (announcements, health) are
// never dropped; the protocol sends a bounded number of them per interval.
//
// Push copies the message into a buffer the queue owns; Pop hands the
// buffer to the writer, which gives it back with Release. A SendQueue is
// not safe for concurrent use.
type SendQueue struct {
	// DataLimit is the most data messages queued at once (default 256),
	// in frames of up to 2 KB (see Weight).
	DataLimit int

	items []queued
	head  int
	data  int
	drops uint64
	free  [][]byte
}

type queued struct {
	msg     []byte
	control bool
}

// Push queues a copy of s.Msg. It returns false, and counts a drop, when s
// is data and the queue already holds DataLimit data messages.
func (q *SendQueue) Push(s Send) bool {
	if !s.Control && q.data > 0 && q.data+Weight(s.Msg) > q.limit() {
		q.drops++
		return false
	}
	var buf []byte
	if k := len(q.free); k > 0 {
		buf, q.free = q.free[k-1], q.free[:k-1]
	} else if len(s.Msg) <= smallQueueBuf {
		buf = make([]byte, 0, smallQueueBuf) // one size, so that any buffer fits any frame
	}
	buf = append(buf[:0], s.Msg...)
	if q.head > 0 && q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	q.items = append(q.items, queued{msg: buf, control: s.Control})
	if !s.Control {
		q.data += Weight(s.Msg)
	}
	return true
}

// Pop removes the oldest message. The caller owns the buffer until it
// passes it to Release.
func (q *SendQueue) Pop() ([]byte, bool) {
	if q.head == len(q.items) {
		return nil, false
	}
	it := q.items[q.head]
	q.items[q.head] = queued{}
	q.head++
	if !it.control {
		q.data -= Weight(it.msg)
	}
	return it.msg, true
}

// Release returns a buffer from Pop for reuse. The queue keeps enough
// frame-sized buffers for a full queue, so that a link at its limit does
// not allocate per message, but at most 64 larger ones.
func (q *SendQueue) Release(buf []byte) {
	switch {
	case cap(buf) <= smallQueueBuf:
		if len(q.free) < q.limit()+16 {
			q.free = append(q.free, buf[:0])
		}
	case cap(buf) <= 2*1024*64 && len(q.free) < 64:
		q.free = append(q.free, buf[:0])
	}
}

// smallQueueBuf is the capacity of the buffers a SendQueue keeps for every
// queued data message: a full-size frame of a 1500-byte MTU with VLAN tags
// and the message header fits.
const smallQueueBuf = 2048

func (q *SendQueue) limit() int {
	if q.DataLimit <= 0 {
		return 256
	}
	return q.DataLimit
}

// Weight is what a data message counts for against DataLimit: one per
// 2 KB or part of it.
func Weight(msg []byte) int { return max(1, (len(msg)+smallQueueBuf-1)/smallQueueBuf) }

// Data returns the weight of the queued data messages.
func (q *SendQueue) Data() int { return q.data }

// Len returns the number of queued messages.
func (q *SendQueue) Len() int { return len(q.items) - q.head }

// Drops returns the number of data messages dropped at a full queue.
func (q *SendQueue) Drops() uint64 { return q.drops }
