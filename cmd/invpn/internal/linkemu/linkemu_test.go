package linkemu

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// The shaper's and the queue's decisions take the time as an argument:
// these tests drive them with a fake clock (t0 plus offsets) and fixed
// seeds, need no root and never sleep.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

// Loss is drawn for every frame from the seeded source first, so a seed
// fixes the sequence of losses; the rate is the asked one.
func TestShaperLossSeeded(t *testing.T) {
	const n = 20000
	run := func(seed uint64) []bool {
		s := newShaper(Params{Delay: 50 * time.Millisecond, Loss: 0.10}, seed)
		out := make([]bool, n)
		for i := range out {
			_, v := s.admit(at(float64(i)), 100, 0)
			out[i] = v == lost
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different losses")
	}
	if slices.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same losses")
	}
	count := 0
	for _, l := range a {
		if l {
			count++
		}
	}
	// 10% of 20000: mean 2000, sd about 42.
	if count < 1800 || count > 2200 {
		t.Errorf("lost %d of %d frames, want about 10%%", count, n)
	}
	// The loss sequence does not depend on the queue: an overflow still
	// draws, so a full queue does not shift later decisions.
	s1, s2 := newShaper(Params{Loss: 0.5, Limit: 1}, 3), newShaper(Params{Loss: 0.5, Limit: 1}, 3)
	for i := range 1000 {
		_, v1 := s1.admit(at(float64(i)), 100, 0)
		_, v2 := s2.admit(at(float64(i)), 100, 5) // always full
		if (v1 == lost) != (v2 == lost) {
			t.Fatalf("frame %d: loss decision depends on the queue", i)
		}
	}
}

func TestShaperDelayJitter(t *testing.T) {
	const delay, jitter = 50 * time.Millisecond, 20 * time.Millisecond
	s := newShaper(Params{Delay: delay}, 1)
	if d, v := s.admit(at(3), 1500, 0); v != deliver || !d.Equal(at(53)) {
		t.Errorf("no jitter: leaves at %v (%v), want t0+53ms", d.Sub(t0), v)
	}

	// Jitter without reordering: frames 1 ms apart never overtake, each
	// leaves within delay±jitter of its arrival or right with the one
	// before it.
	s = newShaper(Params{Delay: delay, Jitter: jitter}, 2)
	var prev time.Time
	for i := range 2000 {
		arr := at(float64(i))
		d, v := s.admit(arr, 100, 0)
		if v != deliver {
			t.Fatalf("frame %d: %v", i, v)
		}
		if d.Before(prev) {
			t.Fatalf("frame %d leaves at %v, before the previous one at %v", i, d.Sub(t0), prev.Sub(t0))
		}
		if d.Before(arr.Add(delay-jitter)) || d.After(arr.Add(delay+jitter)) && !d.Equal(prev) {
			t.Fatalf("frame %d arrived %v leaves %v: outside delay±jitter", i, arr.Sub(t0), d.Sub(t0))
		}
		prev = d
	}
	// Frames further apart than the jitter get it uniformly.
	s = newShaper(Params{Delay: delay, Jitter: jitter}, 3)
	var sum time.Duration
	spread := map[bool]int{}
	for i := range 2000 {
		arr := at(float64(100 * i))
		d, _ := s.admit(arr, 100, 0)
		if d.Sub(arr) < delay-jitter || d.Sub(arr) > delay+jitter {
			t.Fatalf("frame %d delayed %v", i, d.Sub(arr))
		}
		spread[d.Sub(arr) > delay]++
		sum += d.Sub(arr)
	}
	if mean := sum / 2000; spread[true] < 900 || spread[false] < 900 || mean < delay-time.Millisecond || mean > delay+time.Millisecond {
		t.Errorf("jitter not uniform around the delay: %v above/below, mean %v", spread, mean)
	}

	// With Reorder, frames 1 ms apart with ±20 ms jitter do overtake.
	s = newShaper(Params{Delay: delay, Jitter: jitter, Reorder: true}, 2)
	overtaken := 0
	prev = time.Time{}
	for i := range 2000 {
		arr := at(float64(i))
		d, _ := s.admit(arr, 100, 0)
		if d.Sub(arr) < delay-jitter || d.Sub(arr) > delay+jitter {
			t.Fatalf("reorder: frame %d delayed %v", i, d.Sub(arr))
		}
		if d.Before(prev) {
			overtaken++
		}
		prev = d
	}
	if overtaken < 100 {
		t.Errorf("reorder: only %d of 2000 frames overtaken", overtaken)
	}

	// Jitter larger than the delay never gives a negative delay.
	s = newShaper(Params{Delay: time.Millisecond, Jitter: 10 * time.Millisecond, Reorder: true}, 4)
	for i := range 1000 {
		if d, _ := s.admit(at(float64(i)), 100, 0); d.Before(at(float64(i))) {
			t.Fatalf("frame %d leaves before it arrived", i)
		}
	}
}

// The rate limit serialises frames: at 12 Mbit/s a 1500-byte frame takes
// 1 ms, so a burst leaves 1 ms apart, then the delay.
func TestShaperRate(t *testing.T) {
	s := newShaper(Params{Delay: 10 * time.Millisecond, Rate: 12_000_000}, 1)
	for i := range 5 {
		d, v := s.admit(at(0), 1500, i)
		if want := at(float64(11 + i)); v != deliver || !d.Equal(want) {
			t.Errorf("burst frame %d leaves at %v, want %v", i, d.Sub(t0), want.Sub(t0))
		}
	}
	// The limiter is idle again by 20 ms.
	if d, _ := s.admit(at(20), 1500, 0); !d.Equal(at(31)) {
		t.Errorf("after idle: leaves at %v, want 31ms", d.Sub(t0))
	}
}

func TestShaperLimit(t *testing.T) {
	s := newShaper(Params{Limit: 3}, 1)
	for held, want := range []verdict{deliver, deliver, deliver, overflow, overflow} {
		if _, v := s.admit(at(0), 100, held); v != want {
			t.Errorf("held %d: %v, want %v", held, v, want)
		}
	}
	if _, v := newShaper(Params{}, 1).admit(at(0), 100, DefaultLimit); v != overflow {
		t.Errorf("default limit %d not applied", DefaultLimit)
	}
}

// The queue hands out frames in departure order, ties in arrival order,
// and only those due.
func TestPending(t *testing.T) {
	var q pending
	for i, ms := range []float64{30, 10, 20, 10, 40} {
		q.add(at(ms), []byte{byte(i)})
	}
	if next, ok := q.next(); !ok || !next.Equal(at(10)) {
		t.Fatalf("next = %v %v, want 10ms", next.Sub(t0), ok)
	}
	if got := q.due(at(5), nil); len(got) != 0 {
		t.Errorf("due at 5ms: %v", got)
	}
	got := q.due(at(20), nil)
	if want := [][]byte{{1}, {3}, {2}}; !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("due at 20ms: %v, want %v", got, want)
	}
	if got := q.due(at(100), nil); !slices.EqualFunc(got, [][]byte{{0}, {4}}, bytes.Equal) || q.Len() != 0 {
		t.Errorf("due at 100ms: %v, left %d", got, q.Len())
	}
	if _, ok := q.next(); ok {
		t.Error("next on an empty queue")
	}
}

func TestParams(t *testing.T) {
	p := Params{Delay: 50 * time.Millisecond, Loss: 0.1}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
	if s := p.String(); s != "50ms 10% loss each way" {
		t.Errorf("String() = %q", s)
	}
	p.Reverse = &Params{Delay: time.Millisecond, Rate: 2e6}
	if s := p.String(); s != "50ms 10% loss A→B, 1ms 2 Mbit/s B→A" {
		t.Errorf("String() = %q", s)
	}
	for _, bad := range []Params{{Loss: 1.5}, {Loss: math.NaN()}, {Delay: -1}, {Rate: -1}, {Reverse: &Params{Loss: -0.1}}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// chanPort is an in-memory Port: frames put in in are read, frames written
// arrive on out with their time.
type chanPort struct {
	in        chan []byte
	out       chan stamped
	closed    chan struct{}
	closeOnce sync.Once
}

type stamped struct {
	frame []byte
	at    time.Time
}

func newChanPort() *chanPort {
	return &chanPort{in: make(chan []byte, 1024), out: make(chan stamped, 1024), closed: make(chan struct{})}
}

func (p *chanPort) ReadFrame(buf []byte) (int, error) {
	select {
	case f := <-p.in:
		return copy(buf, f), nil
	case <-p.closed:
		return 0, fmt.Errorf("chanPort: %w", ErrClosed)
	}
}

func (p *chanPort) WriteFrame(f []byte) error {
	select {
	case p.out <- stamped{append([]byte(nil), f...), time.Now()}:
		return nil
	case <-p.closed:
		return ErrClosed
	default:
		return errors.New("chanPort: full")
	}
}

func (p *chanPort) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}

// The running emulator, with real time but in-memory ports: frames cross
// in both directions after the delay, in order, with each direction's own
// loss, and Close ends it with reads blocked.
func TestEmulatorPipeline(t *testing.T) {
	a, b := newChanPort(), newChanPort()
	const delay = 20 * time.Millisecond
	e, err := New(a, b, Params{Delay: delay, Loss: 0.25, Seed: 42, Reverse: &Params{Delay: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	sent := make([]time.Time, n)
	for i := range n {
		sent[i] = time.Now()
		a.in <- []byte{byte(i), 0xab}
		b.in <- []byte{byte(i), 0xba}
	}
	// B→A: no loss, 5 ms.
	for i := range n {
		select {
		case s := <-a.out:
			if s.frame[0] != byte(i) || s.frame[1] != 0xba {
				t.Fatalf("B→A frame %d: got %v (out of order?)", i, s.frame)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("B→A: frame %d not delivered", i)
		}
	}
	// A→B: about 25% lost, the rest in order and no earlier than the delay.
	deadline := time.After(3 * time.Second)
	var got []stamped
	for collecting := true; collecting; {
		select {
		case s := <-b.out:
			got = append(got, s)
		case <-deadline:
			collecting = false
		case <-time.After(300 * time.Millisecond):
			collecting = false
		}
	}
	last := -1
	for _, s := range got {
		i := int(s.frame[0])
		if i <= last || s.frame[1] != 0xab {
			t.Fatalf("A→B: frame %v after %d", s.frame, last)
		}
		if d := s.at.Sub(sent[i]); d < delay {
			t.Errorf("A→B: frame %d delivered after %v, want at least %v", i, d, delay)
		}
		last = i
	}
	ab, ba := e.Stats()
	if ab.Read != n || ab.Lost+ab.Delivered != n || int(ab.Delivered) != len(got) || ab.Lost < n/8 || ab.Lost > n/2 {
		t.Errorf("A→B stats %v, %d frames seen", ab, len(got))
	}
	if ba.Read != n || ba.Delivered != n || ba.Lost != 0 {
		t.Errorf("B→A stats %v", ba)
	}
	// The same seed loses the same frames.
	s := newShaper(Params{Loss: 0.25}, 42)
	var wantLost uint64
	for range n {
		if _, v := s.admit(t0, 2, 0); v == lost {
			wantLost++
		}
	}
	if ab.Lost != wantLost {
		t.Errorf("A→B lost %d, the seed's sequence loses %d", ab.Lost, wantLost)
	}

	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return: a goroutine is stuck")
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Frames still held at Close are dropped, and Close does not wait for
// their delay.
func TestEmulatorCloseWithHeldFrames(t *testing.T) {
	a, b := newChanPort(), newChanPort()
	e, err := New(a, b, Params{Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		a.in <- []byte{byte(i)}
	}
	for deadline := time.Now().Add(2 * time.Second); ; {
		if ab, _ := e.Stats(); ab.Held == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("frames not taken in")
		}
		time.Sleep(time.Millisecond) // polling the reader goroutine
	}
	t1 := time.Now()
	e.Close()
	if d := time.Since(t1); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if len(b.out) != 0 {
		t.Errorf("%d frames delivered", len(b.out))
	}
}
