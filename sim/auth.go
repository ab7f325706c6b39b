package sim

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

// simAuth is a node's Authenticator in the simulator: no real crypto, the
// real sizes on the wire. A certificate is simCertLen bytes naming its MAC
// after a tag; a signature is simSigLen bytes (an ECDSA P-256 signature in
// ASN.1, as the daemon's are) whose first eight are a keyed hash of the
// member's MAC, the id and the port. Only a member's own simAuth signs
// for it: a node that forges (a fault) has no way to call another's Sign,
// as a real member has no other member's key; Verify recomputes the hash,
// which stands for the check of a signature against a public key.
type simAuth struct {
	seed  uint64
	mac   wire.MAC
	known map[wire.MAC]bool // the certificates learned
}

// Sizes of the daemon's: a P-256 member certificate made by `invpn cert
// issue` is about 420 bytes DER, its signatures 70 to 72 bytes.
const (
	simCertLen = 420
	simSigLen  = 71
)

var simCertTag = [8]byte{'s', 'i', 'm', 'c', 'e', 'r', 't', 0}

var _ node.Authenticator = (*simAuth)(nil)

func newSimAuth(seed uint64, mac wire.MAC) *simAuth {
	return &simAuth{seed: seed, mac: mac, known: map[wire.MAC]bool{mac: true}}
}

// simSig is member mac's signature of round id with port.
func simSig(seed uint64, mac wire.MAC, id uint64, port uint16) []byte {
	var m [8]byte
	copy(m[:], mac[:])
	h := mix(mix(seed^binary.BigEndian.Uint64(m[:]), id), uint64(port)+0x5349)
	sig := make([]byte, simSigLen)
	binary.BigEndian.PutUint64(sig, h)
	return sig
}

func (a *simAuth) Sign(id uint64, port uint16) []byte { return simSig(a.seed, a.mac, id, port) }

func (a *simAuth) Learn(der []byte) (wire.MAC, bool, error) {
	if len(der) != simCertLen || [8]byte(der[:8]) != simCertTag {
		return wire.MAC{}, false, errors.New("sim: not a certificate of the group")
	}
	mac := wire.MAC(der[8:14])
	fresh := !a.known[mac]
	a.known[mac] = true
	return mac, fresh, nil
}

func (a *simAuth) Certificate(mac wire.MAC) []byte {
	if !a.known[mac] {
		return nil
	}
	der := make([]byte, simCertLen)
	copy(der, simCertTag[:])
	copy(der[8:], mac[:])
	return der
}

func (a *simAuth) Verify(mac wire.MAC, id uint64, port uint16, sig []byte) error {
	if !a.known[mac] {
		return fmt.Errorf("sim: %s: %w", mac, node.ErrNoCertificate)
	}
	want := simSig(a.seed, mac, id, port)
	if len(sig) != len(want) || binary.BigEndian.Uint64(sig) != binary.BigEndian.Uint64(want) {
		return fmt.Errorf("sim: %s: signature of round %d does not verify", mac, id)
	}
	return nil
}
