// Package transporttest is an in-memory implementation of the transport
// interfaces for tests: a connected pair of links ([Pipe]) and a [Network]
// on which listeners and dialers meet by address. Everything is goroutine
// safe and needs no sockets.
//
// The fake keeps the contract of [transport.Link] strictly so that code
// which breaks it fails here rather than in production: messages that the
// real framing rejects are rejected, and a message returned by ReadMessage
// is overwritten when the next ReadMessage is called.
package transporttest

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// scribble is written over a message returned by ReadMessage once the caller
// asks for the next one, to expose code that keeps the slice too long.
const scribble = 0xdb

// queue carries messages in one direction. Writes never block: the queue is
// unbounded, like a socket with an infinite buffer.
type queue struct {
	mu           sync.Mutex
	cond         sync.Cond
	msgs         [][]byte
	readerClosed bool // the receiving end closed: writes fail, reads see EOF
	writerClosed bool // the sending end closed: reads drain, then see EOF
}

func newQueue() *queue {
	q := &queue{}
	q.cond.L = &q.mu
	return q
}

func (q *queue) push(msgs [][]byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.writerClosed:
		return net.ErrClosed
	case q.readerClosed:
		return io.ErrClosedPipe
	}
	for _, m := range msgs {
		q.msgs = append(q.msgs, append([]byte(nil), m...))
	}
	q.cond.Broadcast()
	return nil
}

func (q *queue) pop() ([]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.readerClosed:
			return nil, io.EOF
		case len(q.msgs) > 0:
			m := q.msgs[0]
			q.msgs[0] = nil
			q.msgs = q.msgs[1:]
			return m, nil
		case q.writerClosed:
			return nil, io.EOF
		}
		q.cond.Wait()
	}
}

func (q *queue) closeReader() {
	q.mu.Lock()
	q.readerClosed = true
	q.msgs = nil
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *queue) closeWriter() {
	q.mu.Lock()
	q.writerClosed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// link is one end of a pipe.
type link struct {
	peer     wire.MAC
	remote   netip.AddrPort
	dialed   bool
	extended bool
	in, out  *queue

	last []byte // the message last returned by ReadMessage; reader goroutine
}

var _ transport.Link = (*link)(nil)

// Pipe returns two connected links: a is the end of the member with MAC a
// (it dialed), b the end of member b. a.Peer() is b and b.Peer() is a.
// Both report the given extended flag and a zero RemoteAddr. Writes never
// block; closing one end makes the other end read the messages already
// sent and then io.EOF.
func Pipe(a, b wire.MAC, extended bool) (transport.Link, transport.Link) {
	la, lb := pipe(endpoint{mac: a}, endpoint{mac: b}, extended)
	return la, lb
}

// endpoint describes one end of a pipe: who it is and the address the other
// end sees for it.
type endpoint struct {
	mac  wire.MAC
	addr netip.AddrPort
}

// pipe connects dialer d to listener l.
func pipe(d, l endpoint, extended bool) (dl, ll *link) {
	toL, toD := newQueue(), newQueue()
	dl = &link{peer: l.mac, remote: l.addr, dialed: true, extended: extended, in: toD, out: toL}
	ll = &link{peer: d.mac, remote: d.addr, dialed: false, extended: extended, in: toL, out: toD}
	return dl, ll
}

// Peer returns the MAC of the other end.
func (l *link) Peer() wire.MAC { return l.peer }

// RemoteAddr returns the address of the other end on its network.
func (l *link) RemoteAddr() netip.AddrPort { return l.remote }

// Dialed reports whether this end dialed.
func (l *link) Dialed() bool { return l.dialed }

// Extended reports the extended flag the pipe was made with.
func (l *link) Extended() bool { return l.extended }

// Transport returns "pipe": an in-memory pair.
func (l *link) Transport() string { return "pipe" }

// ReadMessage returns the next message. The previous message is overwritten.
func (l *link) ReadMessage() ([]byte, error) {
	for i := range l.last {
		l.last[i] = scribble
	}
	l.last = nil
	m, err := l.in.pop()
	if err != nil {
		return nil, err
	}
	l.last = m
	return m, nil
}

// WriteMessage sends a copy of msg to the other end.
func (l *link) WriteMessage(msg []byte) error {
	return l.WriteMessages([][]byte{msg})
}

// WriteMessages sends a copy of each message to the other end, all or none.
func (l *link) WriteMessages(msgs [][]byte) error {
	for _, m := range msgs {
		if err := checkFrame(m); err != nil {
			return fmt.Errorf("transporttest: write to %s: %w", l.peer, err)
		}
	}
	if err := l.out.push(msgs); err != nil {
		return fmt.Errorf("transporttest: write to %s: %w", l.peer, err)
	}
	return nil
}

// Close closes both directions: this end reads io.EOF at once, the other
// end after draining what was sent.
func (l *link) Close() error {
	l.in.closeReader()
	l.out.closeWriter()
	return nil
}

// checkFrame rejects what wire.AppendFrame rejects, without allocating.
func checkFrame(msg []byte) error {
	switch {
	case len(msg) == 0:
		return wire.ErrZeroLength
	case len(msg) > wire.MaxMessage:
		return fmt.Errorf("%d-byte message: %w", len(msg), wire.ErrTooLong)
	}
	return nil
}
