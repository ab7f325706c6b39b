package wire

import "encoding/binary"

// RevocationList (0x8C, an extension) floods the group's certificate
// revocation list through the mesh (docs/protocol.md#revocation):
// number(8), the CRL Number of the list, then the list itself, an X.509
// CRL in DER, to the end of the message. The number lets a node tell a
// list it already holds, or an older one, without parsing it; the daemon
// checks that it is the number inside the signed list before it believes
// either. It travels only over extended links.
type RevocationList struct {
	Number uint64
	DER    []byte // aliases the decoded message
}

// revocationFixed is the size of a 0x8C before its list, type included.
const revocationFixed = 1 + 8

// MaxRevocationList is the longest CRL, in DER bytes, that one 0x8C holds.
const MaxRevocationList = MaxMessage - revocationFixed

var revocationFields = []field{{"type", 1}, {"number", 8}, {"list", 1}}

// Type returns TypeRevocationList.
func (*RevocationList) Type() Type { return TypeRevocationList }

// Append appends the message to dst. Callers keep DER at most
// MaxRevocationList bytes.
func (m *RevocationList) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeRevocationList))
	dst = binary.BigEndian.AppendUint64(dst, m.Number)
	return append(dst, m.DER...)
}

// DecodeRevocationList decodes a 0x8C message (type byte included). The
// list must not be empty; its DER is not parsed here. DER aliases msg.
func DecodeRevocationList(msg []byte) (RevocationList, error) {
	if err := checkType(msg, TypeRevocationList); err != nil {
		return RevocationList{}, err
	}
	if len(msg) < revocationFixed+1 {
		return RevocationList{}, shortErr(TypeRevocationList, fieldAt(revocationFields, len(msg)), len(msg), revocationFixed+1)
	}
	return RevocationList{Number: binary.BigEndian.Uint64(msg[1:9]), DER: msg[revocationFixed:]}, nil
}
