// Package linkemu emulates an impaired Ethernet link in user space, for the
// end-to-end tests on kernels without the netem qdisc: it bridges two frame
// ports (TAP devices, one in each of two network namespaces) and forwards
// every frame from one to the other after a one-way delay with jitter,
// random loss, optional reordering and an optional rate limit, each
// direction with its own parameters and its own seeded random source.
//
// Frames flow, per direction, through three stages:
//
//	reader goroutine: ReadFrame on the source port, then the shaper decides
//	    (pure, no clock of its own): lost, queue full, or the time it leaves;
//	pending queue: a min-heap by departure time, bounded by Params.Limit;
//	writer goroutine: sleeps until the head is due, writes it to the other
//	    port.
//
// The shaper and the queue take the time as an argument, so their
// decisions are tested without root and without sleeping (linkemu_test.go).
//
// Close closes both ports (which ends the readers' blocked reads) and
// waits for the four goroutines. The emulator runs inside the test process:
// it is test infrastructure, not part of the daemon.
package linkemu

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// DefaultLimit is how many frames one direction holds (waiting for the rate
// limiter or in the delay line) when Params.Limit is 0; netem's default.
const DefaultLimit = 1000

// MaxFrame is the largest frame a port may return.
const MaxFrame = 65536

// Params are one direction's impairments (and, unless Reverse is set, the
// other direction's too).
type Params struct {
	Delay  time.Duration // one-way delay
	Jitter time.Duration // uniform in [-Jitter, +Jitter] added to Delay (never below 0)
	Loss   float64       // probability that a frame is lost, 0 to 1
	// Reorder lets jitter reorder frames; off (the default) a frame never
	// leaves before one that arrived earlier.
	Reorder bool
	Rate    int64 // bits per second a direction carries; 0: unlimited
	Limit   int   // frames held per direction; 0: DefaultLimit. A frame beyond it is dropped.
	// Seed seeds the random source of the A→B direction; B→A uses
	// Seed+1. The same seed gives the same sequence of loss and jitter
	// decisions.
	Seed uint64
	// Reverse, if not nil, are the B→A impairments (its Seed is ignored).
	Reverse *Params
}

// Validate reports a parameter out of range.
func (p Params) Validate() error {
	for _, q := range []Params{p, p.back()} {
		switch {
		case q.Delay < 0 || q.Jitter < 0:
			return fmt.Errorf("linkemu: negative delay %v or jitter %v", q.Delay, q.Jitter)
		case q.Loss < 0 || q.Loss > 1 || q.Loss != q.Loss:
			return fmt.Errorf("linkemu: loss %v, want 0 to 1", q.Loss)
		case q.Rate < 0 || q.Limit < 0:
			return fmt.Errorf("linkemu: negative rate %d or limit %d", q.Rate, q.Limit)
		}
	}
	return nil
}

// forward returns the A→B parameters (p without Reverse).
func (p Params) forward() Params {
	p.Reverse = nil
	return p
}

// back returns the B→A parameters.
func (p Params) back() Params {
	if p.Reverse == nil {
		return p.forward()
	}
	return p.Reverse.forward()
}

// String describes the impairments, e.g. "50ms ±5ms 10% loss".
func (p Params) String() string {
	one := func(q Params) string {
		parts := []string{q.Delay.String()}
		if q.Jitter > 0 {
			parts = append(parts, "±"+q.Jitter.String())
		}
		if q.Loss > 0 {
			parts = append(parts, fmt.Sprintf("%g%% loss", q.Loss*100))
		}
		if q.Reorder {
			parts = append(parts, "reordering")
		}
		if q.Rate > 0 {
			parts = append(parts, fmt.Sprintf("%g Mbit/s", float64(q.Rate)/1e6))
		}
		return strings.Join(parts, " ")
	}
	if p.Reverse == nil {
		return one(p) + " each way"
	}
	return one(p) + " A→B, " + one(p.back()) + " B→A"
}

// Port is one end of an emulated link: a device that reads and writes
// whole Ethernet frames. ReadFrame must return ErrClosed (wrapped) once the
// port is closed or its device is gone; Close must end a blocked
// ReadFrame.
type Port interface {
	ReadFrame(buf []byte) (int, error)
	WriteFrame(frame []byte) error
	Close() error
}

// ErrClosed is the error of a port that is closed or whose device is gone.
var ErrClosed = errors.New("linkemu: port closed")

// verdict is the shaper's decision about one frame.
type verdict int

const (
	deliver  verdict = iota
	lost             // random loss
	overflow         // the direction already holds Limit frames
)

// shaper decides each frame's fate for one direction. It is pure: the
// time is an argument and the randomness comes from its own seeded source.
type shaper struct {
	p    Params
	rng  *rand.Rand
	free time.Time // when the rate limiter has sent every frame admitted so far
	last time.Time // the latest departure so far (the FIFO floor without Reorder)
}

func newShaper(p Params, seed uint64) *shaper {
	return &shaper{p: p, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (s *shaper) limit() int {
	if s.p.Limit > 0 {
		return s.p.Limit
	}
	return DefaultLimit
}

// admit decides the fate of a frame of size bytes that arrived at now,
// when the direction holds held frames: lost, overflow, or deliver at the
// returned time. The loss draw comes first and is made for every frame,
// so the sequence of loss decisions depends only on the seed, not on
// timing.
func (s *shaper) admit(now time.Time, size, held int) (time.Time, verdict) {
	if s.p.Loss > 0 && s.rng.Float64() < s.p.Loss {
		return time.Time{}, lost
	}
	if held >= s.limit() {
		return time.Time{}, overflow
	}
	at := now
	if s.p.Rate > 0 {
		start := now
		if s.free.After(start) {
			start = s.free
		}
		s.free = start.Add(time.Duration(int64(size) * 8 * int64(time.Second) / s.p.Rate))
		at = s.free
	}
	d := s.p.Delay
	if s.p.Jitter > 0 {
		d += time.Duration(s.rng.Int64N(2*int64(s.p.Jitter)+1)) - s.p.Jitter
		d = max(d, 0)
	}
	at = at.Add(d)
	if !s.p.Reorder && at.Before(s.last) {
		at = s.last
	}
	if at.After(s.last) {
		s.last = at
	}
	return at, deliver
}

// item is a frame waiting to leave.
type item struct {
	at    time.Time
	seq   uint64 // arrival order: ties leave in it
	frame []byte
}

// pending is the frames of one direction by departure time (a min-heap).
type pending struct {
	items []item
	seq   uint64
}

func (q *pending) Len() int { return len(q.items) }
func (q *pending) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}
func (q *pending) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *pending) Push(x any)    { q.items = append(q.items, x.(item)) }
func (q *pending) Pop() any {
	n := len(q.items) - 1
	it := q.items[n]
	q.items[n] = item{}
	q.items = q.items[:n]
	return it
}

// add queues frame to leave at at.
func (q *pending) add(at time.Time, frame []byte) {
	q.seq++
	heap.Push(q, item{at: at, seq: q.seq, frame: frame})
}

// next returns when the first frame is due; false when empty.
func (q *pending) next() (time.Time, bool) {
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return q.items[0].at, true
}

// due removes and returns, in order, the frames due at now, appended to
// out.
func (q *pending) due(now time.Time, out [][]byte) [][]byte {
	for len(q.items) > 0 && !q.items[0].at.After(now) {
		out = append(out, heap.Pop(q).(item).frame)
	}
	return out
}

// Stats count one direction's frames.
type Stats struct {
	Read        uint64 // frames read from the source port
	Delivered   uint64 // written to the other port
	Lost        uint64 // dropped by random loss
	Overflow    uint64 // dropped because Limit frames were held
	WriteErrors uint64 // the other port refused the frame (its interface is down, say)
	ReadErrors  uint64 // transient read errors
	Held        int    // frames held now
}

// String is one line, e.g. "read 100, delivered 89, lost 11".
func (s Stats) String() string {
	return fmt.Sprintf("read %d, delivered %d, lost %d, overflow %d, write errors %d, held %d",
		s.Read, s.Delivered, s.Lost, s.Overflow, s.WriteErrors, s.Held)
}

// direction is one way through the emulator.
type direction struct {
	from, to Port
	now      func() time.Time

	mu    sync.Mutex
	sh    *shaper
	q     pending
	stats Stats

	wake chan struct{} // a token when the queue's head may have changed
}

// Emulator is a running emulated link between ports A and B.
type Emulator struct {
	a, b      Port
	ab, ba    *direction
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New starts forwarding between a and b with the impairments p (p for
// A→B, p.Reverse or p for B→A). The emulator owns the ports: Close closes
// them.
func New(a, b Port, p Params) (*Emulator, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := &Emulator{a: a, b: b, done: make(chan struct{})}
	mk := func(from, to Port, q Params, seed uint64) *direction {
		return &direction{from: from, to: to, now: time.Now, sh: newShaper(q, seed), wake: make(chan struct{}, 1)}
	}
	e.ab = mk(a, b, p.forward(), p.Seed)
	e.ba = mk(b, a, p.back(), p.Seed+1)
	for _, d := range []*direction{e.ab, e.ba} {
		e.wg.Add(2)
		go e.read(d)
		go e.write(d)
	}
	return e, nil
}

// Stats returns the counts of the A→B and B→A directions.
func (e *Emulator) Stats() (ab, ba Stats) { return e.ab.snapshot(), e.ba.snapshot() }

func (d *direction) snapshot() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Held = d.q.Len()
	return s
}

// Close stops forwarding, closes both ports, drops the frames still held
// and waits for the emulator's goroutines. It may be called more than once.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		close(e.done)
		e.closeErr = errors.Join(e.a.Close(), e.b.Close())
		e.wg.Wait()
	})
	return e.closeErr
}

// maxReadErrors bounds consecutive transient read errors before a reader
// gives up, so a broken port cannot spin for ever.
const maxReadErrors = 1000

// read moves frames from d.from through the shaper into the queue.
func (e *Emulator) read(d *direction) {
	defer e.wg.Done()
	buf := make([]byte, MaxFrame)
	errs := 0
	for {
		n, err := d.from.ReadFrame(buf)
		if err != nil {
			if errors.Is(err, ErrClosed) || e.closed() {
				return
			}
			d.mu.Lock()
			d.stats.ReadErrors++
			d.mu.Unlock()
			if errs++; errs > maxReadErrors {
				return
			}
			select {
			case <-e.done:
				return
			case <-time.After(time.Millisecond):
			}
			continue
		}
		errs = 0
		now := d.now()
		d.mu.Lock()
		d.stats.Read++
		at, v := d.sh.admit(now, n, d.q.Len())
		switch v {
		case lost:
			d.stats.Lost++
		case overflow:
			d.stats.Overflow++
		case deliver:
			d.q.add(at, append([]byte(nil), buf[:n]...))
		}
		d.mu.Unlock()
		if v == deliver {
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}
	}
}

// write sends d's frames to d.to when they are due.
func (e *Emulator) write(d *direction) {
	defer e.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var batch [][]byte
	for {
		d.mu.Lock()
		batch = d.q.due(d.now(), batch[:0])
		next, ok := d.q.next()
		d.mu.Unlock()
		for _, f := range batch {
			err := d.to.WriteFrame(f)
			d.mu.Lock()
			if err != nil {
				d.stats.WriteErrors++
			} else {
				d.stats.Delivered++
			}
			d.mu.Unlock()
			if errors.Is(err, ErrClosed) {
				return
			}
		}
		clear(batch)
		if len(batch) > 0 {
			continue // more may have come due while writing
		}
		var tc <-chan time.Time
		if ok {
			timer.Reset(time.Until(next))
			tc = timer.C
		}
		select {
		case <-e.done:
			return
		case <-d.wake:
			timer.Stop() // Go 1.23 timers: no stale tick after Stop
		case <-tc:
		}
	}
}

func (e *Emulator) closed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}
