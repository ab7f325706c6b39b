package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// BatchEntry is one announcement of an InfoBatch: a 0x85 without its type
// byte, whether it is a refresh (docs/protocol.md#quiet-refresh), and
// whether it is the sender's own.
type BatchEntry struct {
	// Refresh marks a periodic refresh round, which keeps routes alive
	// and which relays pass on without hurry; a change round (false)
	// goes on at once. Both are routed first-path.
	Refresh bool
	// Self marks the sender's own announcement, which like a 0x00 leaves
	// the address to the receiver: it fills in the address it sees on the
	// link (the entry carries none and an empty path).
	Self bool
	// Held is how long relays held the entry in their batches on its way
	// here, summed (microseconds on the wire, at most MaxHeld). A receiver
	// orders copies of a round by arrival time less Held, so that batching
	// does not change which path arrives first.
	Held time.Duration
	InfoPath
}

// MaxHeld is the longest Held an entry can carry.
const MaxHeld = time.Duration(math.MaxUint32) * time.Microsecond

// InfoBatch (0x88, an extension) carries several announcements to one
// neighbour in one message: count(2), then count entries, each flags(1)
// (bit 0: refresh; the others zero), held(4, microseconds) and the body of a 0x85 from its path
// count n on; bit 1: the sender's own, address from the link). Relays collect refreshes into it, and a new link's route
// table travels in a few of them instead of one message per route.
type InfoBatch struct {
	Entries []BatchEntry
}

// Flags bits of a batch entry.
const (
	BatchFlagRefresh = 0x01 // a refresh round
	BatchFlagSelf    = 0x02 // the sender's own announcement
	batchFlagsKnown  = BatchFlagRefresh | BatchFlagSelf
)

// batchHeaderLen is the size of an empty 0x88 with its type byte.
const batchHeaderLen = 1 + 2

// minBatchEntryLen is the smallest entry: flags, n = 0, and an info body
// without address.
const minBatchEntryLen = 1 + 4 + 1 + infoBodyFixed

// infoBodyFixed is the size of a 0x01 body (from version on) before its
// address.
const infoBodyFixed = 1 + 8 + 6 + 2 + 1

// Type returns TypeInfoBatch.
func (*InfoBatch) Type() Type { return TypeInfoBatch }

// Append appends the message to dst. The caller keeps it within
// MaxMessage (BatchEntryLen sizes each entry).
func (m *InfoBatch) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeInfoBatch))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Entries)))
	for i := range m.Entries {
		dst = m.Entries[i].Append(dst)
	}
	return dst
}

// Append appends the entry (flags and 0x85 body) to dst.
func (e *BatchEntry) Append(dst []byte) []byte {
	var flags byte
	if e.Refresh {
		flags |= BatchFlagRefresh
	}
	if e.Self {
		flags |= BatchFlagSelf
	}
	dst = append(dst, flags)
	dst = appendHeld(dst, e.Held)
	return e.InfoPath.appendAfterType(dst)
}

// appendHeld appends a held field: d in microseconds, capped at MaxHeld.
func appendHeld(dst []byte, d time.Duration) []byte {
	return binary.BigEndian.AppendUint32(dst, heldField(d))
}

// readHeld reads the held field that starts at b[0].
func readHeld(b []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint32(b)) * time.Microsecond
}

func heldField(d time.Duration) uint32 {
	switch {
	case d <= 0:
		return 0
	case d >= MaxHeld:
		return math.MaxUint32
	}
	return uint32(d / time.Microsecond)
}

// BatchEntryLen is the encoded size of e in a 0x88.
func BatchEntryLen(e *BatchEntry) int {
	n := minBatchEntryLen
	if e.PathKnown && len(e.Path) <= MaxPath {
		n += 6 * len(e.Path)
	}
	switch {
	case e.Addr.Is4():
		n += 4
	case e.Addr.Is6():
		n += 16
	}
	return n
}

// AppendBatchHeader starts a 0x88 of count entries in dst; the caller
// appends the entries with BatchEntry.Append.
func AppendBatchHeader(dst []byte, count int) []byte {
	dst = append(dst, byte(TypeInfoBatch))
	return binary.BigEndian.AppendUint16(dst, uint16(count))
}

// MaxBatchBody is the most entry bytes one 0x88 can carry.
const MaxBatchBody = MaxMessage - batchHeaderLen

// DecodeInfoBatch decodes a 0x88 message (type byte included). It
// allocates at most one entry per minimal entry the message has room
// for, whatever the count says.
func DecodeInfoBatch(msg []byte) (InfoBatch, error) {
	var r InfoBatchReader
	if err := r.Reset(msg); err != nil {
		return InfoBatch{}, err
	}
	m := InfoBatch{Entries: make([]BatchEntry, 0, r.count)}
	// One array holds every entry's path: the paths fit in the message, so
	// it never grows and the entries' slices of it stay put.
	var paths []MAC
	for {
		e, ok, err := r.Next()
		if err != nil {
			return InfoBatch{}, err
		}
		if !ok {
			return m, nil
		}
		if len(e.Path) > 0 {
			if paths == nil {
				paths = make([]MAC, 0, len(msg)/6)
			}
			start := len(paths)
			paths = append(paths, e.Path...)
			e.Path = paths[start:len(paths):len(paths)]
		}
		m.Entries = append(m.Entries, e)
	}
}

// InfoBatchReader reads the entries of a 0x88 one at a time without
// allocating, for a receiver that handles each entry as it comes: each
// entry's path is in the reader's scratch, good until the next call. It
// accepts exactly what DecodeInfoBatch accepts, but an entry is given
// out before the ones after it are checked, so a receiver has taken the
// entries before a malformed one.
type InfoBatchReader struct {
	rest     []byte
	count, i int
	path     []MAC // scratch of MaxPath, reused by every entry
}

// Reset starts reading msg, after checking its type and that its count
// of entries fits in it.
func (r *InfoBatchReader) Reset(msg []byte) error {
	r.rest, r.count, r.i = nil, 0, 0
	if err := checkType(msg, TypeInfoBatch); err != nil {
		return err
	}
	if len(msg) < batchHeaderLen {
		return shortErr(TypeInfoBatch, "count", len(msg), batchHeaderLen)
	}
	count := int(binary.BigEndian.Uint16(msg[1:3]))
	rest := msg[batchHeaderLen:]
	if count*minBatchEntryLen > len(rest) {
		return decodeErr(TypeInfoBatch, "count", ErrCount, "count %d needs at least %d bytes, %d left",
			count, count*minBatchEntryLen, len(rest))
	}
	r.rest, r.count = rest, count
	return nil
}

// Next returns the next entry; ok is false after the last one, or with
// err when the entry is malformed or bytes follow the last.
func (r *InfoBatchReader) Next() (e BatchEntry, ok bool, err error) {
	if r.i == r.count {
		if len(r.rest) > 0 {
			err = decodeErr(TypeInfoBatch, "entries", ErrTrailing, "%d bytes after entry %d", len(r.rest), r.count)
			r.rest = nil
		}
		return e, false, err
	}
	if r.path == nil {
		r.path = make([]MAC, 0, MaxPath)
	}
	paths := r.path[:0]
	e, n, err := decodeBatchEntry(r.rest, r.i, &paths)
	if err != nil {
		r.i, r.rest = r.count, nil
		return BatchEntry{}, false, err
	}
	r.i++
	r.rest = r.rest[n:]
	return e, true, nil
}

// decodeBatchEntry decodes entry i at the start of b and returns its size;
// its path is appended to *paths, which has room for it (MaxPath).
func decodeBatchEntry(b []byte, i int, paths *[]MAC) (BatchEntry, int, error) {
	var e BatchEntry
	field := func(name string) string { return fmt.Sprintf("entries[%d].%s", i, name) }
	if len(b) < minBatchEntryLen {
		return e, 0, decodeErr(TypeInfoBatch, field("flags"), ErrShort, "%d bytes, need at least %d", len(b), minBatchEntryLen)
	}
	if b[0]&^batchFlagsKnown != 0 {
		return e, 0, decodeErr(TypeInfoBatch, field("flags"), ErrCount, "reserved bits set: 0x%02x", b[0])
	}
	e.Refresh = b[0]&BatchFlagRefresh != 0
	e.Self = b[0]&BatchFlagSelf != 0
	e.Held = readHeld(b[1:5])
	size := 6
	if n := int(b[5]); n != PathUnknown {
		if len(b) < size+6*n+infoBodyFixed {
			return e, 0, decodeErr(TypeInfoBatch, field("path"), ErrCount, "n %d needs %d bytes, %d left",
				n, 6*n+infoBodyFixed, len(b)-size)
		}
		e.PathKnown = true
		if n > 0 {
			start := len(*paths)
			for k := range n {
				*paths = append(*paths, MAC(b[size+6*k:size+6*k+6]))
			}
			e.Path = (*paths)[start:len(*paths):len(*paths)]
		}
		size += 6 * n
	}
	if len(b) < size+infoBodyFixed {
		return e, 0, decodeErr(TypeInfoBatch, field("info"), ErrShort, "%d bytes, need %d", len(b)-size, infoBodyFixed)
	}
	addr := 0
	switch b[size+infoBodyFixed-1] {
	case AddrIPv4:
		addr = 4
	case AddrIPv6:
		addr = 16
	}
	end := min(size+infoBodyFixed+addr, len(b))
	info, err := decodeInfoBody(TypeInfoBatch, b[size:end])
	if err != nil {
		if de := (*DecodeError)(nil); errors.As(err, &de) {
			de.Field = field(de.Field)
		}
		return e, 0, err
	}
	e.Info = info
	return e, end, nil
}

// AnnounceRequestFor (0x89, an extension) asks only the listed nodes to
// announce themselves again at once: id(8), requester mac(6), count(2),
// then count target macs. A node that lost a link floods it, naming the
// targets whose routes crossed that link, so a failure costs a round of
// those targets only, not of the whole mesh (docs/protocol.md#quiet-refresh).
// It is flooded and de-duplicated like a 0x86, in the same id space.
type AnnounceRequestFor struct {
	ID        uint64
	Requester MAC
	Targets   []MAC
}

// announceRequestForFixed is the size of a 0x89 with its type byte and no
// target.
const announceRequestForFixed = 1 + 8 + 6 + 2

// MaxRequestTargets is the most targets one 0x89 can name.
const MaxRequestTargets = (MaxMessage - announceRequestForFixed) / 6

// Type returns TypeAnnounceRequestFor.
func (*AnnounceRequestFor) Type() Type { return TypeAnnounceRequestFor }

// Append appends the message to dst. The caller keeps Targets at most
// MaxRequestTargets.
func (m *AnnounceRequestFor) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeAnnounceRequestFor))
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = append(dst, m.Requester[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Targets)))
	return appendMACs(dst, m.Targets)
}

var announceRequestForFields = []field{{"type", 1}, {"id", 8}, {"mac", 6}, {"count", 2}}

// DecodeAnnounceRequestFor decodes a 0x89 message (type byte included).
func DecodeAnnounceRequestFor(msg []byte) (AnnounceRequestFor, error) {
	var m AnnounceRequestFor
	if err := checkType(msg, TypeAnnounceRequestFor); err != nil {
		return m, err
	}
	if len(msg) < announceRequestForFixed {
		return m, shortErr(TypeAnnounceRequestFor, fieldAt(announceRequestForFields, len(msg)), len(msg), announceRequestForFixed)
	}
	count := int(binary.BigEndian.Uint16(msg[15:17]))
	rest := msg[announceRequestForFixed:]
	if len(rest) != 6*count {
		return m, decodeErr(TypeAnnounceRequestFor, "targets", ErrCount, "count %d needs %d bytes, got %d", count, 6*count, len(rest))
	}
	m.ID = binary.BigEndian.Uint64(msg[1:9])
	m.Requester = MAC(msg[9:15])
	m.Targets = readMACs(rest, count)
	return m, nil
}
