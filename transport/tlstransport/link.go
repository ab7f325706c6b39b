package tlstransport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/transport/rawfd"
	"github.com/invpn/invpn/wire"
)

// Name is the transport's name in Link.Transport.
const Name = "tls"

const (
	// maxRetainedWriteBuffer caps the batch buffer a link keeps between
	// writes; a larger batch's buffer is dropped after use.
	maxRetainedWriteBuffer = 256 << 10
)

// link is a transport.Link over an established tls.Conn.
type link struct {
	conn     *tls.Conn
	raw      net.Conn // the TCP connection under conn
	peer     wire.MAC
	cert     *x509.Certificate // the peer's leaf
	remote   netip.AddrPort
	dialed   bool
	extended bool

	r    *wire.Reader // owned by the reader goroutine
	wbuf []byte       // owned by the writer goroutine

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var (
	_ transport.CertifiedLink = (*link)(nil)
	_ transport.IntoReader    = (*link)(nil)
)

// newLink wraps a conn whose handshake is complete and verified; raw is
// the TCP connection under it.
func newLink(conn *tls.Conn, raw net.Conn, dialed bool) (*link, error) {
	cs := conn.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("no peer certificate after handshake: %w", transport.ErrUntrusted)
	}
	peer, err := MACFromCert(cs.PeerCertificates[0])
	if err != nil {
		return nil, err
	}
	return &link{
		conn:     conn,
		raw:      raw,
		peer:     peer,
		cert:     cs.PeerCertificates[0],
		remote:   addrPort(conn.RemoteAddr()),
		dialed:   dialed,
		extended: cs.NegotiatedProtocol == transport.ProtocolName,
		// No bufio: tls.Conn keeps the decrypted record and reads the
		// socket in large chunks, so another buffer would only add a copy.
		r: wire.NewReader(conn),
	}, nil
}

// Peer returns the MAC in the peer certificate's Common Name.
func (l *link) Peer() wire.MAC { return l.peer }

// PeerCertificate returns the peer's leaf certificate.
func (l *link) PeerCertificate() *x509.Certificate { return l.cert }

// RemoteAddr returns the peer's socket address, IPv4 unmapped.
func (l *link) RemoteAddr() netip.AddrPort { return l.remote }

// Dialed reports whether this end dialed.
func (l *link) Dialed() bool { return l.dialed }

// Extended reports whether ALPN selected transport.ProtocolName.
func (l *link) Extended() bool { return l.extended }

// Transport returns "tls": TLS over TCP.
func (l *link) Transport() string { return Name }

// ReadMessage returns the next message; the slice is valid until the next
// call. It returns io.EOF at end of stream and after Close.
func (l *link) ReadMessage() ([]byte, error) {
	msg, err := l.r.Next()
	if err != nil {
		if err == io.EOF || l.closed.Load() {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("tlstransport: read from %s at %s: %w", l.peer, l.remote, err)
	}
	return msg, nil
}

// ReadMessageInto is ReadMessage into buf (transport.IntoReader).
func (l *link) ReadMessageInto(buf []byte) (int, error) {
	n, err := l.r.NextInto(buf)
	if err != nil {
		if err == io.EOF || l.closed.Load() {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("tlstransport: read from %s at %s: %w", l.peer, l.remote, err)
	}
	return n, nil
}

// WriteMessage frames msg and writes it in one Write.
func (l *link) WriteMessage(msg []byte) error {
	b, err := wire.AppendFrame(l.wbuf[:0], msg)
	if err != nil {
		return fmt.Errorf("tlstransport: write to %s: %w", l.peer, err)
	}
	return l.write(b, 1)
}

// WriteMessages frames all of msgs into one buffer and writes it in one
// Write.
func (l *link) WriteMessages(msgs [][]byte) error {
	b := l.wbuf[:0]
	for i, m := range msgs {
		var err error
		if b, err = wire.AppendFrame(b, m); err != nil {
			return fmt.Errorf("tlstransport: write to %s: message %d of %d: %w", l.peer, i+1, len(msgs), err)
		}
	}
	if len(b) == 0 {
		return nil
	}
	return l.write(b, len(msgs))
}

// write sends the framed bytes b, which live in l.wbuf's array.
func (l *link) write(b []byte, n int) error {
	// A peer that stops reading fills our send buffer and then blocks the
	// writer; the deadline turns that into an error (and the link goes
	// down) instead of a queue that grows for as long as it keeps sending.
	_ = l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := l.conn.Write(b)
	if cap(b) > maxRetainedWriteBuffer {
		b = nil
	}
	l.wbuf = b[:0]
	if err != nil {
		return fmt.Errorf("tlstransport: write %d message(s) to %s at %s: %w", n, l.peer, l.remote, err)
	}
	return nil
}

// writeTimeout bounds one write to a peer that does not read.
const writeTimeout = 30 * time.Second

// closeNotifyTimeout bounds how long Close waits to send the TLS
// close_notify alert to a peer that does not read.
const closeNotifyTimeout = time.Second

// Close sends close_notify and closes the connection; a pending
// ReadMessage returns io.EOF. Later calls return nil.
func (l *link) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		// tls.Conn.Close waits up to 5 s for the alert; do not wait that long.
		_ = l.raw.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
		if err := l.conn.Close(); err != nil {
			l.closeErr = fmt.Errorf("tlstransport: close link to %s: %w", l.peer, err)
		}
	})
	return l.closeErr
}

// tuneTCP sets the socket options every link gets, whichever end opened it.
func tuneTCP(c net.Conn, userTimeout time.Duration) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	if err := tc.SetNoDelay(true); err != nil {
		return fmt.Errorf("set TCP_NODELAY: %w", err)
	}
	if userTimeout > 0 {
		return setUserTimeout(tc, userTimeout)
	}
	return nil
}

// rawConn is a TCP connection whose reads and writes are raw system calls
// that wait in the poller (package rawfd says why: on a quiet link each
// frame would otherwise wake the runtime's monitor thread). Everything
// else, deadlines and Close included, is the TCPConn's.
type rawConn struct {
	*net.TCPConn
	fd *rawfd.FD
}

// withRawIO returns c with raw reads and writes if it is a TCP connection
// that offers its descriptor, else c.
func withRawIO(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	fd, err := rawfd.Of(tc)
	if err != nil {
		return c
	}
	return &rawConn{TCPConn: tc, fd: fd}
}

// Read implements net.Conn; io.EOF is returned bare, as net does.
func (c *rawConn) Read(b []byte) (int, error) {
	n, err := c.fd.Read(b)
	if err != nil && err != io.EOF {
		err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, err
}

// Write implements net.Conn.
func (c *rawConn) Write(b []byte) (int, error) {
	n, err := c.fd.Write(b)
	if err != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, err
}
