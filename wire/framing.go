package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MaxMessage is the largest message (type byte and body) that the 2-byte
// length prefix can carry.
const MaxMessage = 65535

// Reader splits a byte stream into messages. It is not safe for concurrent
// use. Its buffer grows to the largest length actually declared, never past
// MaxMessage.
type Reader struct {
	r   io.Reader
	hdr [2]byte
	buf []byte
}

// NewReader returns a Reader reading framed messages from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next reads one framed message and returns its type byte and body. The
// returned slice is owned by the Reader and valid until the next call of
// Next. A clean end of stream before a length prefix returns io.EOF; a
// stream that ends inside a message returns io.ErrUnexpectedEOF. A zero
// length returns an error wrapping ErrZeroLength. Next does not interpret
// the type byte: unknown types are returned like known ones.
func (r *Reader) Next() ([]byte, error) {
	n, err := r.length()
	if err != nil {
		return nil, err
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	msg := r.buf[:n]
	if err := r.body(msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// NextInto is Next reading the message into buf, which must hold
// MaxMessage bytes, instead of the Reader's own buffer: it saves a copy
// for a caller that keeps messages in buffers of its own. It returns the
// message's length.
func (r *Reader) NextInto(buf []byte) (int, error) {
	if len(buf) < MaxMessage {
		return 0, fmt.Errorf("wire: read into a %d-byte buffer, want %d", len(buf), MaxMessage)
	}
	n, err := r.length()
	if err != nil {
		return 0, err
	}
	if err := r.body(buf[:n]); err != nil {
		return 0, err
	}
	return n, nil
}

// length reads a length prefix.
func (r *Reader) length() (int, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("wire: read length prefix: %w", err)
		}
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(r.hdr[:]))
	if n == 0 {
		return 0, fmt.Errorf("wire: read frame: %w", ErrZeroLength)
	}
	return n, nil
}

// body reads the len(msg) bytes of a message whose prefix was read.
func (r *Reader) body(msg []byte) error {
	if _, err := io.ReadFull(r.r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("wire: read %d-byte message: %w", len(msg), err)
	}
	return nil
}

// AppendFrame appends msg (type byte and body) to dst, preceded by its
// 2-byte big-endian length. It fails with ErrTooLong or ErrZeroLength and
// leaves dst unchanged when msg cannot be framed.
func AppendFrame(dst, msg []byte) ([]byte, error) {
	if len(msg) == 0 {
		return dst, fmt.Errorf("wire: frame message: %w", ErrZeroLength)
	}
	if len(msg) > MaxMessage {
		return dst, fmt.Errorf("wire: frame %d-byte message: %w", len(msg), ErrTooLong)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...), nil
}

// Writer frames messages onto a stream. It is not safe for concurrent use.
// It keeps one buffer so that a message and its prefix go out in one Write.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer writing framed messages to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteMessage writes msg (type byte and body) with its length prefix in a
// single Write call. msg is not retained.
func (w *Writer) WriteMessage(msg []byte) error {
	b, err := AppendFrame(w.buf[:0], msg)
	if err != nil {
		return err
	}
	w.buf = b
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("wire: write %d-byte message: %w", len(msg), err)
	}
	return nil
}
