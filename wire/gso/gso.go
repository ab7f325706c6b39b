// Package gso describes and cuts TCP super-frames: the Ethernet frames of
// up to 64 KB that a Linux TAP device opened with IFF_VNET_HDR and TCP
// segmentation offload hands over, each after a virtio-net header that
// says how to cut it (docs/protocol.md#gso-frames).
//
// It is pure: no I/O, no clock, no goroutines. The engine (node/) cuts a
// super-frame for a neighbour that takes none; the daemon cuts one for a
// TAP device without offloads.
//
// Segment cuts in these steps, for each piece of at most Meta.Size bytes
// of TCP payload:
//
//  1. copy the headers (Ethernet, VLAN tags, IP, TCP) and the piece;
//  2. IPv4: set the total length, the id (the first piece keeps the
//     super-frame's, each next one adds 1) and the header checksum;
//     IPv6: set the payload length;
//  3. TCP: add the payload of earlier pieces to the sequence number; keep
//     FIN and PSH for the last piece and CWR for the first;
//  4. compute the TCP checksum in full, pseudo-header included.
package gso

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the length of the virtio-net header (struct virtio_net_hdr,
// without num_buffers) the kernel puts before each frame.
const HeaderLen = 10

// Type is the header's gso_type without the ECN bit.
type Type uint8

// Segmentation types this package cuts (virtio 1.x, 5.1.6).
const (
	TypeNone  Type = 0 // VIRTIO_NET_HDR_GSO_NONE: an ordinary frame
	TypeTCPv4 Type = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	TypeTCPv6 Type = 4 // VIRTIO_NET_HDR_GSO_TCPV6
)

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
	flagNeedsCsum = 1    // VIRTIO_NET_HDR_F_NEEDS_CSUM
	flagDataValid = 2    // VIRTIO_NET_HDR_F_DATA_VALID
	typeECN       = 0x80 // VIRTIO_NET_HDR_GSO_ECN
)

// Meta is what a virtio-net header says about one frame.
type Meta struct {
	// NeedsCsum: the checksum at CsumStart+CsumOffset holds only the
	// pseudo-header sum; the bytes from CsumStart on must be summed in.
	NeedsCsum bool
	Type      Type
	// ECN: the super-frame's TCP header may carry CWR.
	ECN bool
	// HdrLen is the header length the kernel gave (a hint: Segment
	// computes its own).
	HdrLen uint16
	// Size is the TCP payload per segment (the MSS).
	Size uint16
	// CsumStart is where the checksummed bytes start (the TCP header),
	// from the frame's first byte; CsumOffset is where the checksum lies
	// from there.
	CsumStart, CsumOffset uint16
}

// IsGSO reports whether m describes a super-frame to cut.
func (m Meta) IsGSO() bool { return m.Type != TypeNone }

// ParseHeader reads a virtio-net header (little-endian, as the kernel
// writes it on little-endian machines) from b[:HeaderLen].
func ParseHeader(b []byte) (Meta, error) {
	if len(b) < HeaderLen {
		return Meta{}, fmt.Errorf("gso: virtio-net header of %d bytes, want %d", len(b), HeaderLen)
	}
	flags, typ := b[0], b[1]
	if flags&^(flagNeedsCsum|flagDataValid) != 0 {
		return Meta{}, fmt.Errorf("gso: virtio-net header flags %#02x: unknown bits", flags)
	}
	m := Meta{
		NeedsCsum:  flags&flagNeedsCsum != 0,
		ECN:        typ&typeECN != 0,
		Type:       Type(typ &^ typeECN),
		HdrLen:     binary.LittleEndian.Uint16(b[2:]),
		Size:       binary.LittleEndian.Uint16(b[4:]),
		CsumStart:  binary.LittleEndian.Uint16(b[6:]),
		CsumOffset: binary.LittleEndian.Uint16(b[8:]),
	}
	switch m.Type {
	case TypeNone, TypeTCPv4, TypeTCPv6:
	default:
		return Meta{}, fmt.Errorf("gso: virtio-net header gso_type %#02x: only TCP segmentation is supported", typ)
	}
	return m, nil
}

// PutHeader writes m as a virtio-net header into b[:HeaderLen].
func (m Meta) PutHeader(b []byte) {
	_ = b[HeaderLen-1]
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
// checksum must lie inside the frame, and a super-frame needs one and a
// segment size.
func (m Meta) Check(frameLen int) error {
	if m.NeedsCsum {
		if m.CsumStart < ethHeaderLen {
			return fmt.Errorf("gso: csum_start %d inside the Ethernet header", m.CsumStart)
		}
		if end := int(m.CsumStart) + int(m.CsumOffset) + 2; end > frameLen {
			return fmt.Errorf("gso: checksum field ends at %d, past the %d-byte frame", end, frameLen)
		}
	}
	if m.IsGSO() {
		if !m.NeedsCsum {
			return errors.New("gso: a super-frame without a partial checksum")
		}
		if m.Size == 0 {
			return errors.New("gso: a super-frame with gso_size 0")
		}
	}
	return nil
}

// Complete finishes a partial checksum in place, as the kernel's
// skb_checksum_help: the ones'-complement sum of frame[CsumStart:], which
// includes the pseudo-header sum in the checksum field, is folded,
// complemented and stored in that field.
func Complete(m Meta, frame []byte) error {
	if !m.NeedsCsum {
		return nil
	}
	if err := m.Check(len(frame)); err != nil {
		return err
	}
	at := int(m.CsumStart) + int(m.CsumOffset)
	sum := ^fold(checksum(frame[m.CsumStart:], 0))
	if sum == 0 && m.CsumOffset == 6 { // UDP: 0 means no checksum
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(frame[at:], sum)
	return nil
}

const (
	ethHeaderLen = 14
	etherIPv4    = 0x0800
	etherIPv6    = 0x86dd
	etherVLAN    = 0x8100
	etherQinQ    = 0x88a8
	protoTCP     = 6
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80
)

// layout is where a super-frame's headers are.
type layout struct {
	ip      int // IP header offset
	tcp     int // TCP header offset (CsumStart)
	hdr     int // header length: TCP's end
	v6      bool
	payload int // TCP payload bytes
}

// parse finds the headers of the super-frame frame described by m.
func parse(m Meta, frame []byte) (layout, error) {
	if !m.IsGSO() {
		return layout{}, errors.New("gso: not a super-frame (complete its checksum instead)")
	}
	if err := m.Check(len(frame)); err != nil {
		return layout{}, err
	}
	if m.CsumOffset != 16 {
		return layout{}, fmt.Errorf("gso: csum_offset %d is not TCP's (16)", m.CsumOffset)
	}
	off := 12
	var et uint16
	for {
		if len(frame) < off+2 {
			return layout{}, fmt.Errorf("gso: frame of %d bytes ends inside its Ethernet header", len(frame))
		}
		et = binary.BigEndian.Uint16(frame[off:])
		off += 2
		if et != etherVLAN && et != etherQinQ {
			break
		}
		off += 2 // the tag's TCI
	}
	l := layout{ip: off, tcp: int(m.CsumStart)}
	switch m.Type {
	case TypeTCPv4:
		if et != etherIPv4 {
			return layout{}, fmt.Errorf("gso: TCPv4 super-frame with EtherType %#04x", et)
		}
		if len(frame) < off+20 || frame[off]>>4 != 4 {
			return layout{}, errors.New("gso: TCPv4 super-frame without an IPv4 header")
		}
		ihl := int(frame[off]&0x0f) * 4
		if ihl < 20 || l.tcp != off+ihl {
			return layout{}, fmt.Errorf("gso: IPv4 header of %d bytes but TCP at %d (csum_start)", ihl, l.tcp)
		}
		if frame[off+9] != protoTCP {
			return layout{}, fmt.Errorf("gso: IPv4 protocol %d, not TCP", frame[off+9])
		}
		if binary.BigEndian.Uint16(frame[off+6:])&0x3fff != 0 {
			return layout{}, errors.New("gso: IPv4 fragment")
		}
	case TypeTCPv6:
		l.v6 = true
		if et != etherIPv6 {
			return layout{}, fmt.Errorf("gso: TCPv6 super-frame with EtherType %#04x", et)
		}
		if len(frame) < off+40 || frame[off]>>4 != 6 {
			return layout{}, errors.New("gso: TCPv6 super-frame without an IPv6 header")
		}
		if l.tcp < off+40 {
			return layout{}, fmt.Errorf("gso: TCP at %d (csum_start), inside the IPv6 header", l.tcp)
		}
		if l.tcp == off+40 && frame[off+6] != protoTCP {
			return layout{}, fmt.Errorf("gso: IPv6 next header %d, not TCP", frame[off+6])
		}
	}
	if len(frame) < l.tcp+20 {
		return layout{}, fmt.Errorf("gso: frame of %d bytes ends inside the TCP header at %d", len(frame), l.tcp)
	}
	doff := int(frame[l.tcp+12]>>4) * 4
	if doff < 20 || len(frame) < l.tcp+doff {
		return layout{}, fmt.Errorf("gso: TCP data offset %d bytes does not fit the %d-byte frame", doff, len(frame))
	}
	l.hdr = l.tcp + doff
	// The IP length, not the frame's, ends the packet: a short frame is
	// padded to Ethernet's 60 bytes.
	end := l.ip + 40 + int(binary.BigEndian.Uint16(frame[l.ip+4:]))
	if !l.v6 {
		end = l.ip + int(binary.BigEndian.Uint16(frame[l.ip+2:]))
	}
	if end > len(frame) || end < l.hdr {
		return layout{}, fmt.Errorf("gso: IP length ends the packet at %d, outside its headers and the %d-byte frame", end, len(frame))
	}
	l.payload = end - l.hdr
	return l, nil
}

// Segments reports how many frames Segment would make of frame.
func Segments(m Meta, frame []byte) (int, error) {
	l, err := parse(m, frame)
	if err != nil {
		return 0, err
	}
	return max(1, (l.payload+int(m.Size)-1)/int(m.Size)), nil
}

// Segment cuts the TCP super-frame frame described by m into ordinary
// frames (the package comment lists the steps), each built in scratch
// and passed to emit, in order. The slice emit gets is valid only during
// the call. scratch must hold the headers and m.Size bytes of payload.
// Segment does not allocate; frame is not changed.
func Segment(m Meta, frame, scratch []byte, emit func(segment []byte)) error {
	l, err := parse(m, frame)
	if err != nil {
		return err
	}
	size := int(m.Size)
	if len(scratch) < l.hdr+min(size, l.payload) {
		return fmt.Errorf("gso: scratch of %d bytes, need %d", len(scratch), l.hdr+min(size, l.payload))
	}
	copy(scratch, frame[:l.hdr])
	seq := binary.BigEndian.Uint32(frame[l.tcp+4:])
	flags := frame[l.tcp+13]
	var id uint16
	if !l.v6 {
		id = binary.BigEndian.Uint16(frame[l.ip+4:])
	}
	for off, i := 0, 0; off < l.payload || i == 0; i++ {
		n := min(size, l.payload-off)
		seg := scratch[:l.hdr+n]
		copy(seg[l.hdr:], frame[l.hdr+off:l.hdr+off+n])
		last := off+n >= l.payload
		// 2. IP lengths, id and checksum.
		if l.v6 {
			binary.BigEndian.PutUint16(seg[l.ip+4:], uint16(len(seg)-l.ip-40))
		} else {
			binary.BigEndian.PutUint16(seg[l.ip+2:], uint16(len(seg)-l.ip))
			binary.BigEndian.PutUint16(seg[l.ip+4:], id+uint16(i))
			binary.BigEndian.PutUint16(seg[l.ip+10:], 0)
			binary.BigEndian.PutUint16(seg[l.ip+10:], ^fold(checksum(seg[l.ip:l.tcp], 0)))
		}
		// 3. TCP sequence number and flags.
		binary.BigEndian.PutUint32(seg[l.tcp+4:], seq+uint32(off))
		f := flags
		if !last {
			f &^= tcpFIN | tcpPSH
		}
		if i > 0 {
			f &^= tcpCWR
		}
		seg[l.tcp+13] = f
		// 4. TCP checksum with the pseudo-header.
		binary.BigEndian.PutUint16(seg[l.tcp+16:], 0)
		sum := pseudoHeader(seg, l, len(seg)-l.tcp)
		binary.BigEndian.PutUint16(seg[l.tcp+16:], ^fold(checksum(seg[l.tcp:], sum)))
		emit(seg)
		off += n
		if n == 0 {
			break
		}
	}
	return nil
}

// pseudoHeader returns the unfolded sum of the TCP pseudo-header of a
// segment whose TCP header and payload are tcpLen bytes.
func pseudoHeader(seg []byte, l layout, tcpLen int) uint64 {
	var sum uint64
	if l.v6 {
		sum = checksum(seg[l.ip+8:l.ip+40], 0)
	} else {
		sum = checksum(seg[l.ip+12:l.ip+20], 0)
	}
	return sum + protoTCP + uint64(tcpLen)
}

// checksum adds b to sum as 16-bit big-endian words (the last byte of an
// odd length padded with zero) without folding.
func checksum(b []byte, sum uint64) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v>>48 + (v>>32)&0xffff + (v>>16)&0xffff + v&0xffff
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// fold folds a sum to 16 bits (ones' complement addition).
func fold(sum uint64) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
