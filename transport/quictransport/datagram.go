package quictransport

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/invpn/invpn/wire"
)

// The datagrams of a link (docs/protocol.md#quic-links). Every datagram is
// one of:
//
//	whole:     a frame message itself: its type byte (0x80, 0x81, 0x82
//	           or 0x84) and body
//	fragment:  0xF0, id(2), index(1), count(1), piece
//
// A frame message longer than one datagram holds (about 1200 to 1450
// bytes, as the path allows) is cut into count pieces of equal size (the
// last one shorter) that share an id; the receiver joins them once every
// piece came. A lost piece loses the frame, as a lost packet would on a
// wire: nothing is retransmitted. Only frames travel as datagrams; every
// other message goes on the link's stream.
const (
	// fragmentTag is the first byte of a fragment.
	fragmentTag = 0xF0
	// fragmentHeader is the size of a fragment's header.
	fragmentHeader = 5
	// maxFragments bounds count: a message of wire.MaxMessage bytes in
	// pieces of minPiece bytes.
	maxFragments = 64
	// minPiece is the least piece size a sender uses; every QUIC path
	// carries datagrams of 1200 bytes less overhead.
	minPiece = 1024
	// reassemblySlots is how many frames a link joins at once; a piece of
	// a new frame evicts the oldest unfinished one.
	reassemblySlots = 8
)

// isFrame reports whether t is a message type that travels as datagrams.
func isFrame(t byte) bool {
	switch wire.Type(t) {
	case wire.TypeTargetedFrame, wire.TypeBroadcastFrame, wire.TypeGroupFrame, wire.TypeLimitedFrame:
		return true
	}
	return false
}

// Errors of a datagram that cannot be taken, wrapped with what was wrong.
var (
	errDatagram = errors.New("bad datagram")
)

// appendFragments cuts msg into pieces of at most max−fragmentHeader bytes
// with id and calls send with each fragment, built in buf (reused). It
// returns the first error of send.
func appendFragments(buf []byte, msg []byte, id uint16, max int, send func([]byte) error) ([]byte, error) {
	piece := max - fragmentHeader
	if piece < minPiece {
		piece = minPiece
	}
	count := (len(msg) + piece - 1) / piece
	if count > maxFragments || count < 2 {
		return buf, fmt.Errorf("message of %d bytes in %d pieces of %d: %w", len(msg), count, piece, errDatagram)
	}
	// Equal pieces: no piece is much smaller than the others, so none
	// is worth less on a lossy path.
	piece = (len(msg) + count - 1) / count
	for i := range count {
		p := msg[i*piece : min((i+1)*piece, len(msg))]
		buf = append(buf[:0], fragmentTag, byte(id>>8), byte(id), byte(i), byte(count))
		buf = append(buf, p...)
		if err := send(buf); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// reassembler joins the fragments of the frames a link receives. It is
// owned by the link's datagram reader. It holds at most reassemblySlots
// unfinished frames, each at most wire.MaxMessage bytes.
type reassembler struct {
	slots [reassemblySlots]slot
	next  int // the slot a new frame takes
}

// slot is one frame being joined.
type slot struct {
	used   bool
	id     uint16
	count  uint8
	have   uint64 // bit i: piece i came
	size   int    // bytes held
	pieces [maxFragments][]byte
}

// take decodes datagram d. It returns a complete frame message (d itself
// for a whole frame, else the joined pieces) or nil while a frame waits
// for pieces; an error says what was wrong with d, which is dropped.
func (r *reassembler) take(d []byte) ([]byte, error) {
	if len(d) == 0 {
		return nil, fmt.Errorf("empty: %w", errDatagram)
	}
	if d[0] != fragmentTag {
		if !isFrame(d[0]) {
			return nil, fmt.Errorf("type 0x%02x is not a frame: %w", d[0], errDatagram)
		}
		return d, nil
	}
	if len(d) <= fragmentHeader {
		return nil, fmt.Errorf("fragment of %d bytes has no piece: %w", len(d), errDatagram)
	}
	id := binary.BigEndian.Uint16(d[1:3])
	index, count := d[3], d[4]
	if count < 2 || count > maxFragments {
		return nil, fmt.Errorf("fragment count %d, want 2 to %d: %w", count, maxFragments, errDatagram)
	}
	if index >= count {
		return nil, fmt.Errorf("fragment %d of %d: %w", index, count, errDatagram)
	}
	if index == 0 && !isFrame(d[fragmentHeader]) {
		return nil, fmt.Errorf("fragmented type 0x%02x is not a frame: %w", d[fragmentHeader], errDatagram)
	}
	s := r.find(id)
	if s == nil {
		s = &r.slots[r.next]
		r.next = (r.next + 1) % reassemblySlots
		*s = slot{used: true, id: id, count: count}
	}
	if s.count != count {
		s.used = false
		return nil, fmt.Errorf("fragment of frame %d says %d pieces, an earlier one %d: %w", id, count, s.count, errDatagram)
	}
	bit := uint64(1) << index
	if s.have&bit != 0 {
		return nil, fmt.Errorf("fragment %d of frame %d came twice: %w", index, id, errDatagram)
	}
	piece := d[fragmentHeader:]
	if s.size+len(piece) > wire.MaxMessage {
		s.used = false
		return nil, fmt.Errorf("frame %d joins to over %d bytes: %w", id, wire.MaxMessage, errDatagram)
	}
	s.have |= bit
	s.size += len(piece)
	s.pieces[index] = piece
	if s.have != uint64(1)<<count-1 {
		return nil, nil
	}
	msg := make([]byte, 0, s.size)
	for i := range int(count) {
		msg = append(msg, s.pieces[i]...)
	}
	*s = slot{}
	return msg, nil
}

// find returns the unfinished frame id, or nil.
func (r *reassembler) find(id uint16) *slot {
	for i := range r.slots {
		if r.slots[i].used && r.slots[i].id == id {
			return &r.slots[i]
		}
	}
	return nil
}
