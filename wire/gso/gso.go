// Package gso describes and cuts TCP super-frames: the Ethernet frames of
// up to 64 KB that a Linux TAP device opened with IFF_VNET_HDR and
// TUNSETOFFLOAD(TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6) hands over, each after
// a 10-byte virtio-net header (struct virtio_net_hdr, legacy layout) that
// says how to cut it and which checksum is only partial
// (docs/protocol.md#gso-frames).
//
// It is pure: no I/O, no clock, no goroutines, no global state. The
// engine (node/) cuts a super-frame for a neighbour that takes none; the
// daemon reads and writes the headers and cuts a super-frame for a TAP
// device without offloads.
//
// Segment cuts a super-frame in these steps:
//
//  1. check the header: a TCP segmentation type, a partial checksum at
//     csum_start+16 inside the frame, a segment size;
//  2. walk the Ethernet header and any 802.1Q/802.1ad tags to the IP
//     header, whose EtherType and version must match the type;
//  3. check the IP header: IPv4 with TCP at csum_start right after its
//     header (options allowed), not a fragment; or IPv6 with TCP at
//     csum_start after the extension headers, if any; the IP length says
//     where the packet ends (bytes after it are Ethernet padding, dropped);
//  4. check the TCP header at csum_start: its data offset gives the
//     header length every segment repeats;
//  5. for each piece of at most Meta.Size bytes of TCP payload, in order:
//     a. copy the headers and the piece into scratch;
//     b. IPv4: set the total length, the id (the first piece keeps the
//     super-frame's, each next one adds 1) and the header checksum;
//     IPv6: set the payload length;
//     c. TCP: add the payload of earlier pieces to the sequence number;
//     keep FIN and PSH on the last piece only, CWR on the first only;
//     d. compute the TCP checksum in full, pseudo-header included (the
//     super-frame's checksum field is not trusted);
//     e. pass the segment to emit.
//
// Every error this package returns is a [*FieldError] naming the field
// that was wrong and wrapping [ErrMalformed], [ErrUnsupported] or
// io.ErrShortBuffer. No input makes it panic.
package gso

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// HeaderLen is the length of the virtio-net header (struct virtio_net_hdr,
// without num_buffers) the kernel puts before each frame.
const HeaderLen = 10

// Type is the header's gso_type without the ECN bit.
type Type uint8

// Segmentation types this package knows (virtio 1.x, 5.1.6).
const (
	TypeNone  Type = 0 // VIRTIO_NET_HDR_GSO_NONE: an ordinary frame
	TypeTCPv4 Type = 1 // VIRTIO_NET_HDR_GSO_TCPV4: TCP over IPv4
	TypeTCPv6 Type = 4 // VIRTIO_NET_HDR_GSO_TCPV6: TCP over IPv6
)

// gso_type values this package does not cut.
const (
	typeUDP   = 3 // VIRTIO_NET_HDR_GSO_UDP: UDP fragmentation (UFO)
	typeUDPL4 = 5 // VIRTIO_NET_HDR_GSO_UDP_L4: UDP segmentation (USO)
)

// String returns "none", "tcp4", "tcp6" or "type-N".
func (t Type) String() string {
	switch t {
	case TypeNone:
		return "none"
	case TypeTCPv4:
		return "tcp4"
	case TypeTCPv6:
		return "tcp6"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Header bits.
const (
	flagNeedsCsum = 0x01 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	flagDataValid = 0x02 // VIRTIO_NET_HDR_F_DATA_VALID
	typeECN       = 0x80 // VIRTIO_NET_HDR_GSO_ECN
)

// Meta is what a virtio-net header says about one frame.
type Meta struct {
	// NeedsCsum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the checksum at
	// CsumStart+CsumOffset holds only the pseudo-header sum; the bytes
	// from CsumStart on are still to be summed in.
	NeedsCsum bool
	// Type is the segmentation the frame needs.
	Type Type
	// ECN (VIRTIO_NET_HDR_GSO_ECN): the super-frame's TCP header may
	// carry CWR. Only with a Type other than TypeNone.
	ECN bool
	// HdrLen is the Ethernet, IP and TCP header length the kernel gave:
	// a hint, which Segment does not use (it computes its own).
	HdrLen uint16
	// Size (gso_size) is the TCP payload per segment: the MSS.
	Size uint16
	// CsumStart is where the checksummed bytes start (for a super-frame,
	// the TCP header), from the frame's first byte; CsumOffset is where
	// the checksum field lies from there (16 for TCP, 6 for UDP).
	CsumStart, CsumOffset uint16
}

// IsGSO reports whether m describes a super-frame to cut: Type is not
// TypeNone.
func (m Meta) IsGSO() bool { return m.Type != TypeNone }

// Sentinel errors wrapped by every [*FieldError]. Test for them with
// errors.Is; a too-small scratch buffer wraps io.ErrShortBuffer instead.
var (
	// ErrMalformed means a header field that contradicts the frame or
	// another field, or a frame cut short.
	ErrMalformed = errors.New("malformed")
	// ErrUnsupported means a well-formed header or frame that asks for
	// something this package does not do, such as UDP segmentation.
	ErrUnsupported = errors.New("unsupported")
)

// FieldError says which field of the virtio-net header ("gso_type") or
// of the frame's headers ("ipv4 total length") was wrong, and why.
type FieldError struct {
	Field  string // the field, as named in the header layouts
	Err    error  // ErrMalformed, ErrUnsupported or io.ErrShortBuffer
	Detail string // what was found, for people
}

// Error returns "gso: FIELD: ERR (DETAIL)".
func (e *FieldError) Error() string {
	return "gso: " + e.Field + ": " + e.Err.Error() + " (" + e.Detail + ")"
}

// Unwrap returns the sentinel error.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error, format string, args ...any) error {
	return &FieldError{Field: field, Err: err, Detail: fmt.Sprintf(format, args...)}
}

// ParseHeader reads a virtio-net header from b[:HeaderLen], in the
// legacy layout and little-endian (the kernel writes it in the host's
// byte order, little-endian on the machines this runs on): flags(1),
// gso_type(1), hdr_len(2), gso_size(2), csum_start(2), csum_offset(2).
// It rejects flags and types it does not know, and UDP segmentation
// (gso_type 3 and 5). VIRTIO_NET_HDR_F_DATA_VALID (0x02, the kernel has
// checked the checksums) is accepted and dropped: it changes nothing for
// a frame that is forwarded. ParseHeader checks the fields one by one;
// [Meta.Check] checks them against the frame.
func ParseHeader(b []byte) (Meta, error) {
	if len(b) < HeaderLen {
		return Meta{}, fieldErr("header", ErrMalformed, "%d bytes, want %d", len(b), HeaderLen)
	}
	flags, typ := b[0], b[1]
	if flags&^(flagNeedsCsum|flagDataValid) != 0 {
		return Meta{}, fieldErr("flags", ErrUnsupported, "%#02x has bits other than NEEDS_CSUM 0x01 and DATA_VALID 0x02", flags)
	}
	m := Meta{
		NeedsCsum:  flags&flagNeedsCsum != 0,
		Type:       Type(typ &^ typeECN),
		ECN:        typ&typeECN != 0,
		HdrLen:     binary.LittleEndian.Uint16(b[2:]),
		Size:       binary.LittleEndian.Uint16(b[4:]),
		CsumStart:  binary.LittleEndian.Uint16(b[6:]),
		CsumOffset: binary.LittleEndian.Uint16(b[8:]),
	}
	switch m.Type {
	case TypeNone, TypeTCPv4, TypeTCPv6:
		return m, nil
	case typeUDP:
		return Meta{}, fieldErr("gso_type", ErrUnsupported, "%#02x: UDP fragmentation (UFO); only TCP segmentation is supported", typ)
	case typeUDPL4:
		return Meta{}, fieldErr("gso_type", ErrUnsupported, "%#02x: UDP segmentation (USO); only TCP segmentation is supported", typ)
	}
	return Meta{}, fieldErr("gso_type", ErrUnsupported, "%#02x: unknown type; only TCP segmentation (1, 4) is supported", typ)
}

// PutHeader writes m into b[:HeaderLen] in the layout ParseHeader reads.
// b must be at least HeaderLen bytes long; a shorter b is left alone.
func (m Meta) PutHeader(b []byte) {
	if len(b) < HeaderLen {
		return
	}
	b[0] = 0
	if m.NeedsCsum {
		b[0] = flagNeedsCsum
	}
	b[1] = byte(m.Type)
	if m.ECN {
		b[1] |= typeECN
	}
	binary.LittleEndian.PutUint16(b[2:], m.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], m.Size)
	binary.LittleEndian.PutUint16(b[6:], m.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], m.CsumOffset)
}

// Check validates m against a frame of frameLen bytes: a partial
// checksum starts after the Ethernet header and its 2-byte field ends
// inside the frame; ECN comes only with segmentation; a super-frame
// needs a partial checksum at TCP's offset (16) and a segment size. It
// does not look at the frame's bytes: Segment does.
func (m Meta) Check(frameLen int) error {
	if m.IsGSO() {
		if m.Type != TypeTCPv4 && m.Type != TypeTCPv6 {
			return fieldErr("gso_type", ErrUnsupported, "%v: only TCP segmentation is supported", m.Type)
		}
		if !m.NeedsCsum {
			return fieldErr("flags", ErrMalformed, "a %v super-frame without NEEDS_CSUM", m.Type)
		}
		if m.Size == 0 {
			return fieldErr("gso_size", ErrMalformed, "0 in a %v super-frame", m.Type)
		}
		if m.CsumOffset != tcpCsumAt {
			return fieldErr("csum_offset", ErrMalformed, "%d in a %v super-frame, want TCP's %d", m.CsumOffset, m.Type, tcpCsumAt)
		}
	} else if m.ECN {
		return fieldErr("gso_type", ErrMalformed, "ECN without segmentation")
	}
	if m.NeedsCsum {
		if m.CsumStart < ethHeaderLen {
			return fieldErr("csum_start", ErrMalformed, "%d, inside the %d-byte Ethernet header", m.CsumStart, ethHeaderLen)
		}
		if end := int(m.CsumStart) + int(m.CsumOffset) + 2; end > frameLen {
			return fieldErr("csum_offset", ErrMalformed, "the checksum field at %d+%d ends past the %d-byte frame", m.CsumStart, m.CsumOffset, frameLen)
		}
	}
	return nil
}

// Complete finishes a partial checksum in place, as the kernel's
// skb_checksum_help does: the ones'-complement sum of frame[CsumStart:],
// which includes the pseudo-header sum already in the checksum field, is
// folded, complemented and stored at CsumStart+CsumOffset. A result of 0
// is stored as 0xffff (CSUM_MANGLED_0: the same in ones' complement, and
// a UDP checksum of 0 would mean none). Complete does nothing when m has
// no partial checksum, and refuses a super-frame, whose checksums
// Segment computes for each segment.
func Complete(m Meta, frame []byte) error {
	if !m.NeedsCsum {
		return nil
	}
	if m.IsGSO() {
		return fieldErr("gso_type", ErrMalformed, "%v: a super-frame's checksum is finished by Segment", m.Type)
	}
	if err := m.Check(len(frame)); err != nil {
		return err
	}
	c := ^fold(sum(frame[m.CsumStart:], 0))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(frame[int(m.CsumStart)+int(m.CsumOffset):], c)
	return nil
}

// Frame layout constants.
const (
	ethHeaderLen = 14
	etherIPv4    = 0x0800
	etherIPv6    = 0x86dd
	etherVLAN    = 0x8100 // 802.1Q
	etherQinQ    = 0x88a8 // 802.1ad
	ipv4MinLen   = 20
	ipv6Len      = 40
	tcpMinLen    = 20
	tcpCsumAt    = 16 // the checksum's offset in the TCP header
	protoTCP     = 6
)

// IPv6 extension headers Segment skips, and the fragment header it
// rejects.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
)

// TCP flags Segment changes.
const (
	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80
)

// layout is where a super-frame's headers lie (steps 2 to 4).
type layout struct {
	ip  int // the IP header, after the Ethernet header and VLAN tags
	tcp int // the TCP header (csum_start)
	hdr int // the end of the TCP header: the headers every segment repeats
	end int // the end of the IP packet; what follows is Ethernet padding
	v6  bool
}

// payload returns the super-frame's TCP payload length.
func (l layout) payload() int { return l.end - l.hdr }

// parse finds and checks the headers of the super-frame described by m
// (steps 1 to 4 of the package comment).
func parse(m Meta, frame []byte) (layout, error) {
	if !m.IsGSO() {
		return layout{}, fieldErr("gso_type", ErrMalformed, "none: not a super-frame (finish its checksum with Complete)")
	}
	if err := m.Check(len(frame)); err != nil {
		return layout{}, err
	}
	ip, etherType, err := skipEthernet(frame)
	if err != nil {
		return layout{}, err
	}
	l := layout{ip: ip, tcp: int(m.CsumStart), v6: m.Type == TypeTCPv6}
	if l.v6 {
		err = l.parseIPv6(frame, etherType)
	} else {
		err = l.parseIPv4(frame, etherType)
	}
	if err != nil {
		return layout{}, err
	}
	if l.tcp+tcpMinLen > l.end {
		return layout{}, fieldErr("csum_start", ErrMalformed, "a TCP header at %d does not fit the IP packet ending at %d", l.tcp, l.end)
	}
	dataOffset := int(frame[l.tcp+12]>>4) * 4
	if dataOffset < tcpMinLen {
		return layout{}, fieldErr("tcp data offset", ErrMalformed, "%d bytes, less than %d", dataOffset, tcpMinLen)
	}
	l.hdr = l.tcp + dataOffset
	if l.hdr > l.end {
		return layout{}, fieldErr("tcp data offset", ErrMalformed, "%d bytes from %d, past the IP packet's end at %d", dataOffset, l.tcp, l.end)
	}
	return l, nil
}

// skipEthernet returns the offset of the IP header and its EtherType,
// after the Ethernet header and any VLAN tags (step 2).
func skipEthernet(frame []byte) (ip int, etherType uint16, err error) {
	at := 12 // the EtherType, or a tag's TPID
	for {
		if len(frame) < at+2 {
			return 0, 0, fieldErr("ethertype", ErrMalformed, "the %d-byte frame ends inside its Ethernet header or VLAN tags", len(frame))
		}
		etherType = binary.BigEndian.Uint16(frame[at:])
		at += 2
		if etherType != etherVLAN && etherType != etherQinQ {
			return at, etherType, nil
		}
		at += 2 // the tag's TCI; the next EtherType follows
	}
}

// parseIPv4 checks an IPv4 header at l.ip and sets l.end (step 3).
func (l *layout) parseIPv4(frame []byte, etherType uint16) error {
	if etherType != etherIPv4 {
		return fieldErr("ethertype", ErrMalformed, "%#04x in a tcp4 super-frame, want IPv4 %#04x", etherType, etherIPv4)
	}
	h := frame[l.ip:]
	if len(h) < ipv4MinLen {
		return fieldErr("ipv4 header", ErrMalformed, "%d bytes left in the frame, less than %d", len(h), ipv4MinLen)
	}
	if v := h[0] >> 4; v != 4 {
		return fieldErr("ipv4 version", ErrMalformed, "%d in a tcp4 super-frame", v)
	}
	ihl := int(h[0]&0x0f) * 4
	if ihl < ipv4MinLen {
		return fieldErr("ipv4 ihl", ErrMalformed, "%d bytes, less than %d", ihl, ipv4MinLen)
	}
	if l.ip+ihl != l.tcp {
		return fieldErr("csum_start", ErrMalformed, "%d, but the %d-byte IPv4 header at %d ends at %d", l.tcp, ihl, l.ip, l.ip+ihl)
	}
	if h[9] != protoTCP {
		return fieldErr("ipv4 protocol", ErrMalformed, "%d, not TCP (%d)", h[9], protoTCP)
	}
	if ff := binary.BigEndian.Uint16(h[6:]); ff&0x3fff != 0 {
		return fieldErr("ipv4 fragment", ErrMalformed, "flags and offset %#04x: a fragment (MF or an offset set)", ff)
	}
	total := int(binary.BigEndian.Uint16(h[2:]))
	if total > len(h) {
		return fieldErr("ipv4 total length", ErrMalformed, "%d, but the frame holds %d bytes from the IPv4 header on", total, len(h))
	}
	l.end = l.ip + total
	return nil
}

// parseIPv6 checks an IPv6 header at l.ip and the extension headers up
// to TCP at l.tcp, and sets l.end (step 3). It skips hop-by-hop options,
// destination options and routing headers with no segments left (with
// segments left, the pseudo-header would need the final destination);
// the payload length covers them.
func (l *layout) parseIPv6(frame []byte, etherType uint16) error {
	if etherType != etherIPv6 {
		return fieldErr("ethertype", ErrMalformed, "%#04x in a tcp6 super-frame, want IPv6 %#04x", etherType, etherIPv6)
	}
	h := frame[l.ip:]
	if len(h) < ipv6Len {
		return fieldErr("ipv6 header", ErrMalformed, "%d bytes left in the frame, less than %d", len(h), ipv6Len)
	}
	if v := h[0] >> 4; v != 6 {
		return fieldErr("ipv6 version", ErrMalformed, "%d in a tcp6 super-frame", v)
	}
	payloadLen := int(binary.BigEndian.Uint16(h[4:]))
	if payloadLen == 0 {
		return fieldErr("ipv6 payload length", ErrUnsupported, "0: a jumbogram")
	}
	if ipv6Len+payloadLen > len(h) {
		return fieldErr("ipv6 payload length", ErrMalformed, "%d, but the frame holds %d bytes after the IPv6 header", payloadLen, len(h)-ipv6Len)
	}
	l.end = l.ip + ipv6Len + payloadLen
	if l.tcp < l.ip+ipv6Len {
		return fieldErr("csum_start", ErrMalformed, "%d, inside the IPv6 header at %d", l.tcp, l.ip)
	}
	next, at := h[6], l.ip+ipv6Len
	for at < l.tcp {
		switch next {
		case ipv6HopByHop, ipv6DestOpts, ipv6Routing:
		case ipv6Fragment:
			return fieldErr("ipv6 next header", ErrUnsupported, "a fragment header at %d", at)
		default:
			return fieldErr("ipv6 next header", ErrMalformed, "%d at %d, before csum_start %d: not an extension header this package skips", next, at, l.tcp)
		}
		if at+8 > l.tcp {
			return fieldErr("csum_start", ErrMalformed, "%d, inside the IPv6 extension header at %d", l.tcp, at)
		}
		if next == ipv6Routing && frame[at+3] != 0 {
			return fieldErr("ipv6 routing header", ErrUnsupported, "%d segments left at %d: the TCP checksum needs the final destination", frame[at+3], at)
		}
		next, at = frame[at], at+(int(frame[at+1])+1)*8
	}
	if at != l.tcp {
		return fieldErr("csum_start", ErrMalformed, "%d, but the IPv6 extension headers end at %d", l.tcp, at)
	}
	if next != protoTCP {
		return fieldErr("ipv6 next header", ErrMalformed, "%d, not TCP (%d)", next, protoTCP)
	}
	return nil
}

// Segments reports how many segments Segment would emit for frame: the
// TCP payload divided by m.Size, rounded up, and at least 1.
func Segments(m Meta, frame []byte) (int, error) {
	l, err := parse(m, frame)
	if err != nil {
		return 0, err
	}
	return max(1, (l.payload()+int(m.Size)-1)/int(m.Size)), nil
}

// MaxSegmentLen reports the length of the longest segment Segment would
// emit for frame, which is the scratch length it needs: the header
// length plus m.Size or the whole payload, whichever is less.
func MaxSegmentLen(m Meta, frame []byte) (int, error) {
	l, err := parse(m, frame)
	if err != nil {
		return 0, err
	}
	return l.hdr + min(int(m.Size), l.payload()), nil
}

// Segment cuts the TCP super-frame frame described by m into ordinary
// frames of at most m.Size bytes of TCP payload each (the package
// comment lists the steps) and passes them to emit, in order. Each is
// built in scratch, which must hold MaxSegmentLen bytes (the headers and
// m.Size bytes of payload, or the whole payload when less) and must not
// overlap frame; the slice emit gets is valid only during the call.
// Segment checks the whole super-frame before emitting anything, so an
// error means nothing was emitted. A frame that is not a super-frame is
// an error (finish its checksum with Complete). Segment does not change
// frame and does not allocate.
func Segment(m Meta, frame, scratch []byte, emit func(segment []byte)) error {
	if emit == nil {
		return fieldErr("emit", ErrMalformed, "nil")
	}
	l, err := parse(m, frame)
	if err != nil {
		return err
	}
	size, payload := int(m.Size), l.payload()
	if need := l.hdr + min(size, payload); len(scratch) < need {
		return fieldErr("scratch", io.ErrShortBuffer, "%d bytes, need %d: %d of headers and %d of payload", len(scratch), need, l.hdr, need-l.hdr)
	}
	seq := binary.BigEndian.Uint32(frame[l.tcp+4:])
	flags := frame[l.tcp+13]
	var id uint16
	if !l.v6 {
		id = binary.BigEndian.Uint16(frame[l.ip+4:])
	}
	for off := 0; ; {
		n := min(size, payload-off)
		first, last := off == 0, off+n == payload

		// a. The headers (again each time: emit may have changed them)
		// and this piece.
		seg := scratch[:l.hdr+n]
		copy(seg, frame[:l.hdr])
		copy(seg[l.hdr:], frame[l.hdr+off:l.hdr+off+n])

		// b. IP.
		ipLen := len(seg) - l.ip
		if l.v6 {
			binary.BigEndian.PutUint16(seg[l.ip+4:], uint16(ipLen-ipv6Len))
		} else {
			binary.BigEndian.PutUint16(seg[l.ip+2:], uint16(ipLen))
			binary.BigEndian.PutUint16(seg[l.ip+4:], id)
			id++
			binary.BigEndian.PutUint16(seg[l.ip+10:], 0)
			binary.BigEndian.PutUint16(seg[l.ip+10:], ^fold(sum(seg[l.ip:l.tcp], 0)))
		}

		// c. TCP sequence number and flags.
		binary.BigEndian.PutUint32(seg[l.tcp+4:], seq+uint32(off))
		f := flags
		if !last {
			f &^= tcpFIN | tcpPSH
		}
		if !first {
			f &^= tcpCWR
		}
		seg[l.tcp+13] = f

		// d. TCP checksum, pseudo-header included.
		binary.BigEndian.PutUint16(seg[l.tcp+tcpCsumAt:], 0)
		binary.BigEndian.PutUint16(seg[l.tcp+tcpCsumAt:], ^fold(sum(seg[l.tcp:], l.pseudoHeader(seg))))

		// e.
		emit(seg)
		off += n
		if last {
			return nil
		}
	}
}

// pseudoHeader returns the unfolded sum of the TCP pseudo-header of seg:
// the IP addresses, the protocol and the TCP length.
func (l layout) pseudoHeader(seg []byte) uint64 {
	addrs := seg[l.ip+12 : l.ip+20]
	if l.v6 {
		addrs = seg[l.ip+8 : l.ip+40]
	}
	return sum(addrs, protoTCP+uint64(len(seg)-l.tcp))
}

// sum adds b, as big-endian 16-bit words (an odd last byte padded with a
// zero), to the ones'-complement sum acc, without folding. It adds 64
// bits at a time with end-around carry: 2^16 ≡ 1 modulo 0xffff, so the
// folded result is the same as adding 16-bit words.
func sum(b []byte, acc uint64) uint64 {
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b)), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, carry)
	}
	acc, carry = bits.Add64(acc, carry, 0)
	return acc + carry // cannot carry again: acc is 0 when carry is 1
}

// fold folds a ones'-complement sum to 16 bits.
func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}
