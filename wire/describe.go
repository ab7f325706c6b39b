package wire

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Describer formats messages for people: the engine's transcripts, the
// simulator's trace and the decode tool all print messages through it, so
// a message reads the same wherever it is shown. The zero Describer
// prints MACs in hex and frames by their addresses and EtherType.
type Describer struct {
	// Name names a MAC (a node's name in a test or a simulation); nil, or
	// an empty answer, prints the MAC itself.
	Name func(MAC) string
	// Frame summarizes a carried Ethernet frame; nil uses the default
	// summary of [DescribeFrame] with Name applied to its addresses.
	Frame func(frame []byte) string
}

// Describe formats msg (type byte and body) with the zero Describer.
func Describe(msg []byte) string { return Describer{}.Message(msg) }

// DescribeFrame summarizes an Ethernet frame with the zero Describer:
// "src > dst type 0x0800 len 98".
func DescribeFrame(frame []byte) string { return Describer{}.EthernetFrame(frame) }

// Message decodes msg and formats it; a message that does not decode is
// shown with its length and the decoder's error.
func (d Describer) Message(msg []byte) string {
	m, err := Decode(msg)
	if err != nil {
		return fmt.Sprintf("%d bytes rejected: %v", len(msg), err)
	}
	return d.Decoded(m)
}

// Decoded formats a decoded message: its type, then its fields as
// key=value in wire order.
func (d Describer) Decoded(m Message) string {
	var b strings.Builder
	b.WriteString(m.Type().String())
	field := func(k string, v any) { fmt.Fprintf(&b, " %s=%v", k, v) }
	switch m := m.(type) {
	case *InitialInfo:
		field("id", m.ID)
		field("mac", d.MAC(m.MAC))
		field("port", m.Port)
	case *Info:
		d.info(field, m)
	case *InfoPath:
		d.info(field, &m.Info)
		if m.PathKnown {
			field("path", d.MACs(m.Path))
		} else {
			field("path", "unknown")
		}
	case *HealthRequest:
		field("id", m.ID)
		field("requester", d.MAC(m.Requester))
		field("trace", d.MACs(m.Traceroute))
	case *HealthResponse:
		field("id", m.ID)
		field("origin", d.MAC(m.Origin))
		field("dest", d.MAC(m.Dest))
		field("links", d.MACs(m.Links))
		routes := make([]string, len(m.Routes))
		for i, r := range m.Routes {
			routes[i] = d.MAC(r.Target) + ">" + d.MAC(r.NextHop)
		}
		field("routes", "["+strings.Join(routes, " ")+"]")
		field("trace", d.MACs(m.Traceroute))
		field("reverse", d.MACs(m.Reverse))
	case *TargetedFrame:
		b.WriteString(" " + d.frame(m.Frame))
	case *LimitedFrame:
		field("hops", m.Hops)
		b.WriteString(" " + d.frame(m.Frame))
	case *GSOFrame:
		field("hops", m.Hops)
		field("gso", m.Offload.Type)
		field("size", m.Offload.Size)
		b.WriteString(" " + d.frame(m.Frame))
	case *Features:
		field("bits", fmt.Sprintf("%#x", m.Bits))
	case *BroadcastFrame:
		field("id", m.ID)
		b.WriteString(" " + d.frame(m.AppendEthernet(nil)))
	case *GroupFrame:
		field("id", m.ID)
		b.WriteString(" " + d.frame(m.Frame))
	case *AnnounceRequest:
		field("id", m.ID)
		field("requester", d.MAC(m.Requester))
	case *Heartbeat:
		field("seq", m.Seq)
		field("echo", m.Echo)
	case *Signatures:
		for _, e := range m.Entries {
			field("sig", fmt.Sprintf("%s id %d port %d (%d bytes)", d.MAC(e.MAC), e.ID, e.Port, len(e.Sig)))
		}
	case *Certificate:
		field("bytes", len(m.DER))
	case *RevocationList:
		field("number", m.Number)
		field("bytes", len(m.DER))
	case *HealthLinks:
		field("dest", d.MAC(m.Dest))
		field("origin", d.MAC(m.Origin))
		field("id", m.ID)
		for _, l := range m.Links {
			field("link", fmt.Sprintf("%s %v", d.MAC(l.Peer), l.RTT))
		}
	case *InfoBatch:
		field("count", len(m.Entries))
		for _, e := range m.Entries {
			kind := "change"
			if e.Refresh {
				kind = "refresh"
			}
			if e.Self {
				kind += " self"
			}
			b.WriteString(" {" + kind)
			if e.Held > 0 {
				field("held", e.Held)
			}
			d.info(field, &e.Info)
			if e.PathKnown {
				field("path", d.MACs(e.Path))
			} else {
				field("path", "unknown")
			}
			b.WriteString("}")
		}
	case *AnnounceRequestFor:
		field("id", m.ID)
		field("requester", d.MAC(m.Requester))
		field("targets", d.MACs(m.Targets))
	}
	return b.String()
}

func (d Describer) info(field func(string, any), m *Info) {
	field("id", m.ID)
	field("mac", d.MAC(m.MAC))
	field("port", m.Port)
	if m.Addr.IsValid() {
		field("addr", m.Addr)
	} else {
		field("addr", "none")
	}
}

func (d Describer) frame(f []byte) string {
	if d.Frame != nil {
		return d.Frame(f)
	}
	return d.EthernetFrame(f)
}

// EthernetFrame summarizes frame by its addresses, EtherType and length,
// naming the addresses with Name.
func (d Describer) EthernetFrame(frame []byte) string {
	if len(frame) < EthernetHeaderLen {
		return fmt.Sprintf("short frame of %d bytes", len(frame))
	}
	return fmt.Sprintf("%s > %s type 0x%04x len %d", d.MAC(MAC(frame[6:12])), d.MAC(MAC(frame[0:6])),
		binary.BigEndian.Uint16(frame[12:14]), len(frame))
}

// MAC names m: Name's answer, "broadcast" for ff:ff:ff:ff:ff:ff, or the
// MAC in hex.
func (d Describer) MAC(m MAC) string {
	if d.Name != nil {
		if s := d.Name(m); s != "" {
			return s
		}
	}
	if m.IsBroadcast() {
		return "broadcast"
	}
	return m.String()
}

// MACs names a list of MACs: "[a b c]".
func (d Describer) MACs(ms []MAC) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = d.MAC(m)
	}
	return "[" + strings.Join(s, " ") + "]"
}
