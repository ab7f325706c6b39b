package sim

import (
	"fmt"

	"github.com/invpn/invpn/wire"
)

// The QUIC transport's datagram semantics (Config.Datagrams,
// docs/protocol.md#quic-links). Over a QUIC link the frame messages
// (0x80, 0x81, 0x82, 0x84) travel as datagrams and everything else on one
// reliable stream. The model:
//
//   - A frame is serialized onto the link like any message (the wire is
//     shared), then it arrives one latency later, or never: it does not
//     wait behind a lost segment of the stream, nor the stream behind it.
//   - On a lossy path each datagram of the frame is lost with the path's
//     loss rate; a frame longer than datagramPayload bytes goes in pieces
//     and is lost when any piece is. Nothing is retransmitted.
//   - Over a silent path (a cut, a one-way cut, a partition) a datagram is
//     lost, also one already on the wire when the path closes.
//   - The stream keeps the stream model of network.go: retransmissions,
//     head-of-line blocking among control messages, the user timeout in
//     the place of QUIC's idle timeout (both 15 s by default), dials as
//     over TCP. Nodes find silent paths by their heartbeats, which ride
//     the stream, exactly as over TCP.
//
// Seed-protocol links (original nodes) are TLS over TCP whatever the
// setting: only extended links get datagrams.

// datagramPayload is the largest frame message one datagram carries on a
// 1500-byte path (quic-go's 1452-byte packets less their overhead).
const datagramPayload = 1404

// ParseTransport parses the scenario key and sweep variable `transport`:
// "stream" (TLS over TCP, the default) or "datagram" (QUIC's frames as
// datagrams). It reports whether datagrams are on.
func ParseTransport(v string) (bool, error) {
	switch v {
	case "stream", "tls":
		return false, nil
	case "datagram", "quic":
		return true, nil
	}
	return false, fmt.Errorf("transport %q: want stream (TLS over TCP) or datagram (QUIC)", v)
}

// isFrameMessage reports whether msg is a frame message: a datagram over
// a QUIC link.
func isFrameMessage(msg []byte) bool {
	switch wire.Type(msg[0]) {
	case wire.TypeTargetedFrame, wire.TypeBroadcastFrame, wire.TypeGroupFrame, wire.TypeLimitedFrame:
		return true
	}
	return false
}

// putDatagram sends frame msg from end k of c as datagrams.
func (nw *network) putDatagram(c *conn, k int, msg []byte) {
	w := nw.w
	w.totals.Datagrams++
	if !c.dir[k].open {
		nw.loseDatagram()
		return
	}
	if nw.lossy > 0 && c.e.loss > 0 {
		pieces := (len(msg) + datagramPayload - 1) / datagramPayload
		for range pieces {
			if nw.rng.Float64() < c.e.loss {
				nw.loseDatagram()
				return
			}
		}
	}
	w.push(event{at: w.now + c.lat, kind: evDatagram, c: c, from: int8(k), msg: msg})
}

// datagramArrives delivers a datagram at the far end of direction from of
// c, unless the path closed while it was on the wire.
func (nw *network) datagramArrives(c *conn, from int, msg []byte) {
	if !c.dir[from].open {
		nw.loseDatagram()
		return
	}
	nw.deliver(c, from, msg)
}

func (nw *network) loseDatagram() {
	nw.w.totals.Lost++
	nw.w.totals.DatagramsLost++
}
