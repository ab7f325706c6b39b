package quictransport

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// streamVersion is the first byte the dialer writes on the link's stream
// (docs/protocol.md#quic-links): it opens the stream for the listener,
// which sees a stream only once data comes, and names its format.
const streamVersion = 0x01

const (
	// readBufferSize is the stream reader's buffer.
	readBufferSize = 32 << 10
	// maxRetainedWriteBuffer caps the batch buffer a link keeps.
	maxRetainedWriteBuffer = 256 << 10
	// writeTimeout bounds one stream write to a peer that does not read.
	writeTimeout = 30 * time.Second
	// closeTimeout bounds how long a closing link waits for its peer's
	// end of stream before it closes the connection.
	closeTimeout = time.Second
	// probeEvery is how many frames a link cuts into pieces before it
	// tries a whole one again: path MTU discovery may have grown what
	// one datagram holds.
	probeEvery = 1024
	// datagramQueue is how many received frames wait for ReadMessage.
	datagramQueue = 64
)

// codeClosed is the application error code of a link closed on purpose.
const codeClosed quic.ApplicationErrorCode = 0

// link is a transport.Link over a QUIC connection and its stream.
type link struct {
	conn   *quic.Conn
	stream *quic.Stream
	peer   wire.MAC
	cert   *x509.Certificate
	remote netip.AddrPort
	dialed bool

	// Reader side: two goroutines feed ReadMessage, which alone takes
	// from these channels.
	fromStream chan streamItem // one message of the stream at a time
	streamNext chan struct{}   // ReadMessage is done with the last one
	holding    bool            // ReadMessage returned a stream message not yet released
	frames     chan []byte     // whole frames from datagrams
	eof        bool            // the stream ended: every later read is io.EOF
	peerEnded  chan struct{}   // closed when the stream reader saw the peer's end

	// Writer side: wmu is held by a write and by the close.
	wmu         chan struct{}
	wbuf        []byte
	dbuf        []byte // a fragment being sent
	maxDatagram int    // the largest datagram payload believed to fit
	fragmented  int    // frames cut since the last whole try
	nextID      uint16 // the next fragmented frame's id

	closed    chan struct{}
	closing   atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup // the reader goroutines and the close
	onEnd     func()         // called when the connection is closed; set before Close
}

// streamItem is a message read from the stream, or the stream's end.
type streamItem struct {
	msg []byte
	err error
}

var _ transport.CertifiedLink = (*link)(nil)

// newLink wraps conn, whose handshake is complete and verified, and its
// stream, and starts the reader goroutines.
func newLink(conn *quic.Conn, stream *quic.Stream, dialed bool) (*link, error) {
	cs := conn.ConnectionState().TLS
	if len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("no peer certificate after handshake: %w", transport.ErrUntrusted)
	}
	peer, err := tlstransport.MACFromCert(cs.PeerCertificates[0])
	if err != nil {
		return nil, err
	}
	l := &link{
		conn:        conn,
		stream:      stream,
		peer:        peer,
		cert:        cs.PeerCertificates[0],
		remote:      addrPort(conn.RemoteAddr()),
		dialed:      dialed,
		fromStream:  make(chan streamItem),
		streamNext:  make(chan struct{}),
		frames:      make(chan []byte, datagramQueue),
		peerEnded:   make(chan struct{}),
		wmu:         make(chan struct{}, 1),
		maxDatagram: wire.MaxMessage,
		closed:      make(chan struct{}),
	}
	l.wg.Add(2)
	go l.readStream()
	go l.readDatagrams()
	return l, nil
}

// Peer returns the MAC in the peer certificate's Common Name.
func (l *link) Peer() wire.MAC { return l.peer }

// PeerCertificate returns the peer's leaf certificate.
func (l *link) PeerCertificate() *x509.Certificate { return l.cert }

// RemoteAddr returns the peer's UDP address, IPv4 unmapped.
func (l *link) RemoteAddr() netip.AddrPort { return l.remote }

// Dialed reports whether this end dialed.
func (l *link) Dialed() bool { return l.dialed }

// Extended is always true: only nodes of this project speak QUIC.
func (l *link) Extended() bool { return true }

// Transport returns "quic".
func (l *link) Transport() string { return Name }

// readStream runs in its own goroutine: it hands each stream message to
// ReadMessage and waits until ReadMessage is done with it, so the
// message is read in place. After Close it reads on to the peer's end of
// stream, which the close waits for.
func (l *link) readStream() {
	defer l.wg.Done()
	defer close(l.peerEnded)
	r := wire.NewReader(bufio.NewReaderSize(l.stream, readBufferSize))
	for {
		msg, err := r.Next()
		select {
		case l.fromStream <- streamItem{msg, err}:
			if err != nil {
				return
			}
			select {
			case <-l.streamNext:
			case <-l.closed:
			}
		case <-l.closed:
			if err != nil {
				return
			}
		}
	}
}

// readDatagrams runs in its own goroutine: it joins received datagrams
// into frames for ReadMessage. A frame that does not fit the queue while
// ReadMessage is slow waits; QUIC's own receive queue drops beyond that,
// as a full NIC ring would.
func (l *link) readDatagrams() {
	defer l.wg.Done()
	var r reassembler
	ctx := l.conn.Context()
	for {
		d, err := l.conn.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		msg, err := r.take(d)
		if err != nil || msg == nil {
			continue // a bad datagram is dropped, as a corrupt packet would be
		}
		select {
		case l.frames <- msg:
		case <-l.closed:
			return
		}
	}
}

// ReadMessage returns the next message of the stream or of the
// datagrams, whichever comes first; frames may so overtake stream
// messages, and a lost frame never comes. The slice is valid until the
// next call. It returns io.EOF at the peer's end of stream, when the
// peer closed the connection on purpose, and after Close.
func (l *link) ReadMessage() ([]byte, error) {
	if l.holding {
		l.holding = false
		select {
		case l.streamNext <- struct{}{}:
		case <-l.closed:
		}
	}
	if l.eof {
		return nil, io.EOF
	}
	select {
	case it := <-l.fromStream:
		if it.err != nil {
			l.eof = true
			return nil, l.readError(it.err)
		}
		l.holding = true
		return it.msg, nil
	case msg := <-l.frames:
		return msg, nil
	case <-l.closed:
		l.eof = true
		return nil, io.EOF
	}
}

// readError turns the stream's end into io.EOF or a wrapped error.
func (l *link) readError(err error) error {
	if err == io.EOF || l.closing.Load() {
		return io.EOF
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeClosed {
		return io.EOF
	}
	return fmt.Errorf("quictransport: read from %s at %s: %w", l.peer, l.remote, err)
}

// checkMessage refuses a message that cannot be framed, as
// wire.AppendFrame does.
func checkMessage(msg []byte) error {
	switch {
	case len(msg) == 0:
		return wire.ErrZeroLength
	case len(msg) > wire.MaxMessage:
		return fmt.Errorf("message of %d bytes: %w", len(msg), wire.ErrTooLong)
	}
	return nil
}

// lock takes the writer's lock; it fails once the link is closed.
func (l *link) lock() error {
	select {
	case l.wmu <- struct{}{}:
	case <-l.closed:
		return fmt.Errorf("quictransport: write to %s: %w", l.peer, net.ErrClosed)
	}
	if l.closing.Load() {
		<-l.wmu
		return fmt.Errorf("quictransport: write to %s: %w", l.peer, net.ErrClosed)
	}
	return nil
}

// WriteMessage sends a frame as datagrams and any other message on the
// stream.
func (l *link) WriteMessage(msg []byte) error {
	if err := checkMessage(msg); err != nil {
		return fmt.Errorf("quictransport: write to %s: %w", l.peer, err)
	}
	if err := l.lock(); err != nil {
		return err
	}
	defer func() { <-l.wmu }()
	if isFrame(msg[0]) {
		return l.sendFrame(msg)
	}
	b, _ := wire.AppendFrame(l.wbuf[:0], msg)
	return l.writeStream(b, 1)
}

// WriteMessages sends the frames of msgs as datagrams and writes the
// other messages on the stream in one write. If one message cannot be
// framed, nothing is sent.
func (l *link) WriteMessages(msgs [][]byte) error {
	for i, m := range msgs {
		if err := checkMessage(m); err != nil {
			return fmt.Errorf("quictransport: write to %s: message %d of %d: %w", l.peer, i+1, len(msgs), err)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := l.lock(); err != nil {
		return err
	}
	defer func() { <-l.wmu }()
	b, n := l.wbuf[:0], 0
	for _, m := range msgs {
		if isFrame(m[0]) {
			if err := l.sendFrame(m); err != nil {
				return err
			}
			continue
		}
		b, _ = wire.AppendFrame(b, m)
		n++
	}
	if n == 0 {
		return nil
	}
	return l.writeStream(b, n)
}

// writeStream writes the framed bytes b, which live in l.wbuf's array.
func (l *link) writeStream(b []byte, n int) error {
	_ = l.stream.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := l.stream.Write(b)
	if cap(b) > maxRetainedWriteBuffer {
		b = nil
	}
	l.wbuf = b[:0]
	if err != nil {
		return fmt.Errorf("quictransport: write %d message(s) to %s at %s: %w", n, l.peer, l.remote, err)
	}
	return nil
}

// sendFrame sends msg as one datagram when it fits, else in pieces.
func (l *link) sendFrame(msg []byte) error {
	if len(msg) <= l.maxDatagram {
		err := l.conn.SendDatagram(msg)
		var tooLarge *quic.DatagramTooLargeError
		if !errors.As(err, &tooLarge) {
			if err != nil {
				return fmt.Errorf("quictransport: send frame to %s at %s: %w", l.peer, l.remote, err)
			}
			return nil
		}
		l.maxDatagram = int(tooLarge.MaxDatagramPayloadSize)
		l.fragmented = 0
	}
	id := l.nextID
	l.nextID++
	var err error
	l.dbuf, err = appendFragments(l.dbuf, msg, id, l.maxDatagram, l.conn.SendDatagram)
	if err != nil {
		return fmt.Errorf("quictransport: send frame of %d bytes to %s at %s: %w", len(msg), l.peer, l.remote, err)
	}
	if l.fragmented++; l.fragmented >= probeEvery {
		l.maxDatagram = wire.MaxMessage // try the next one whole
	}
	return nil
}

// Close ends the link and returns at once; a pending ReadMessage returns
// io.EOF. In the background the link sends its end of stream and waits
// (at most closeTimeout) until the peer has everything: the end that
// ended its stream first closes the connection once the peer's end of
// stream came, the other end waits for that close. So messages written
// before Close arrive, as over TCP.
func (l *link) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		close(l.closed)
		l.wg.Add(1)
		go l.finish()
	})
	return nil
}

// finish sends the end of stream and closes the connection when the peer
// has it (see Close).
func (l *link) finish() {
	defer l.wg.Done()
	if l.onEnd != nil {
		defer l.onEnd()
	}
	timeout := time.NewTimer(closeTimeout)
	defer timeout.Stop()
	peerFirst := false
	select {
	case <-l.peerEnded:
		peerFirst = true
	default:
	}
	select {
	case l.wmu <- struct{}{}: // a write under way ends first
		_ = l.stream.Close()
	case <-timeout.C:
		l.conn.CloseWithError(codeClosed, "link closed")
		return
	}
	ctx := l.conn.Context()
	if peerFirst {
		// The peer ended first: it closes when it has our end.
		select {
		case <-ctx.Done():
		case <-timeout.C:
		}
	} else {
		select {
		case <-l.peerEnded:
		case <-ctx.Done():
		case <-timeout.C:
		}
	}
	l.conn.CloseWithError(codeClosed, "link closed")
}

// wait waits for the link's goroutines; tests use it.
func (l *link) wait() { l.wg.Wait() }

// addrPort returns a's address and port with an IPv4-mapped IPv6 address
// unmapped, or the zero AddrPort when a is not a UDP address.
func addrPort(a net.Addr) netip.AddrPort {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// closeConn closes a connection that never became a link.
func closeConn(c *quic.Conn, why string) {
	c.CloseWithError(codeClosed, why)
}
