package wire

import "encoding/binary"

// HealthRequest (0x02) floods through the mesh collecting a traceroute:
// version(1)=1, id(8), mac(6) of the requester, traceroute(n*6). Each node
// that receives it appends its own MAC to the traceroute before answering
// and flooding it on.
type HealthRequest struct {
	ID         uint64
	Requester  MAC
	Traceroute []MAC
}

// Type returns TypeHealthRequest.
func (*HealthRequest) Type() Type { return TypeHealthRequest }

// Append appends the message to dst.
func (m *HealthRequest) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeHealthRequest), Version)
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = append(dst, m.Requester[:]...)
	return appendMACs(dst, m.Traceroute)
}

var healthRequestFields = []field{{"type", 1}, {"version", 1}, {"id", 8}, {"mac", 6}}

// DecodeHealthRequest decodes a 0x02 message (type byte included). The
// traceroute is copied out of msg.
func DecodeHealthRequest(msg []byte) (HealthRequest, error) {
	var m HealthRequest
	const fixed = 1 + 1 + 8 + 6
	if err := checkType(msg, TypeHealthRequest); err != nil {
		return m, err
	}
	if err := checkVersion(TypeHealthRequest, msg); err != nil {
		return m, err
	}
	if len(msg) < fixed {
		return m, shortErr(TypeHealthRequest, fieldAt(healthRequestFields, len(msg)), len(msg), fixed)
	}
	m.ID = binary.BigEndian.Uint64(msg[2:10])
	copy(m.Requester[:], msg[10:16])
	rest := msg[fixed:]
	if len(rest)%6 != 0 {
		return m, decodeErr(TypeHealthRequest, "traceroute", ErrCount, "%d bytes is not a multiple of 6", len(rest))
	}
	m.Traceroute = readMACs(rest, len(rest)/6)
	return m, nil
}

// Route is one entry of a health response's route table.
type Route struct {
	Target  MAC // the destination
	NextHop MAC // the neighbour frames to Target are sent to
}

// HealthResponse (0x03) is a node's answer to a health request, routed back
// to the requester: version(1)=1, dest mac(6), origin mac(6), original
// id(8), nconn(2), conns(nconn*6), nroutes(2), routes(nroutes*12),
// trace_len(2), traceroute(trace_len*6), reverse traceroute(rest, n*6).
type HealthResponse struct {
	Dest       MAC    // the requester
	Origin     MAC    // the answering node
	ID         uint64 // the request's id
	Links      []MAC  // the origin's linked neighbours
	Routes     []Route
	Traceroute []MAC // the path the request took, as received by the origin
	Reverse    []MAC // appended to by every node that forwards the answer
}

// Type returns TypeHealthResponse.
func (*HealthResponse) Type() Type { return TypeHealthResponse }

// EncodedLen returns the length of the encoded message, type byte
// included. Callers keep it at most MaxMessage.
func (m *HealthResponse) EncodedLen() int {
	return 1 + 1 + 6 + 6 + 8 + 2 + 6*len(m.Links) + 2 + 12*len(m.Routes) + 2 + 6*len(m.Traceroute) + 6*len(m.Reverse)
}

// Append appends the message to dst. Counts are written modulo 65536; a
// caller that keeps EncodedLen at most MaxMessage never reaches that.
func (m *HealthResponse) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeHealthResponse), Version)
	dst = append(dst, m.Dest[:]...)
	dst = append(dst, m.Origin[:]...)
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Links)))
	dst = appendMACs(dst, m.Links)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Routes)))
	for _, r := range m.Routes {
		dst = append(dst, r.Target[:]...)
		dst = append(dst, r.NextHop[:]...)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Traceroute)))
	dst = appendMACs(dst, m.Traceroute)
	return appendMACs(dst, m.Reverse)
}

var healthResponseFields = []field{{"type", 1}, {"version", 1}, {"dest mac", 6}, {"origin mac", 6}, {"original id", 8}, {"nconn", 2}}

// DecodeHealthResponse decodes a 0x03 message (type byte included). Every
// count is checked against the bytes that remain before anything is
// allocated for it.
func DecodeHealthResponse(msg []byte) (HealthResponse, error) {
	const t = TypeHealthResponse
	var m HealthResponse
	const fixed = 1 + 1 + 6 + 6 + 8 + 2
	if err := checkType(msg, t); err != nil {
		return m, err
	}
	if err := checkVersion(t, msg); err != nil {
		return m, err
	}
	if len(msg) < fixed {
		return m, shortErr(t, fieldAt(healthResponseFields, len(msg)), len(msg), fixed)
	}
	copy(m.Dest[:], msg[2:8])
	copy(m.Origin[:], msg[8:14])
	m.ID = binary.BigEndian.Uint64(msg[14:22])
	rest := msg[22:]

	// list reads a 2-byte count then count items of size bytes.
	list := func(countField, itemsField string, size int) ([]byte, int, error) {
		if len(rest) < 2 {
			return nil, 0, decodeErr(t, countField, ErrShort, "%d bytes left, need 2", len(rest))
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if n*size > len(rest) {
			return nil, 0, decodeErr(t, itemsField, ErrCount, "%s %d needs %d bytes, %d left", countField, n, n*size, len(rest))
		}
		items := rest[:n*size]
		rest = rest[n*size:]
		return items, n, nil
	}
	// The nconn field was checked by the fixed-size test above; list
	// re-reads it from rest.
	rest = msg[fixed-2:]
	b, n, err := list("nconn", "conns", 6)
	if err != nil {
		return m, err
	}
	m.Links = readMACs(b, n)
	b, n, err = list("nroutes", "routes", 12)
	if err != nil {
		return m, err
	}
	if n > 0 {
		m.Routes = make([]Route, n)
		for i := range m.Routes {
			copy(m.Routes[i].Target[:], b[i*12:])
			copy(m.Routes[i].NextHop[:], b[i*12+6:])
		}
	}
	b, n, err = list("trace_len", "traceroute", 6)
	if err != nil {
		return m, err
	}
	m.Traceroute = readMACs(b, n)
	if len(rest)%6 != 0 {
		return m, decodeErr(t, "reverse traceroute", ErrCount, "%d bytes is not a multiple of 6", len(rest))
	}
	m.Reverse = readMACs(rest, len(rest)/6)
	return m, nil
}

func appendMACs(dst []byte, macs []MAC) []byte {
	for _, mac := range macs {
		dst = append(dst, mac[:]...)
	}
	return dst
}

// readMACs copies n MACs out of b, which holds at least n*6 bytes. It
// returns nil for n == 0.
func readMACs(b []byte, n int) []MAC {
	if n == 0 {
		return nil
	}
	macs := make([]MAC, n)
	for i := range macs {
		copy(macs[i][:], b[i*6:])
	}
	return macs
}
