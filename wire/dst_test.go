package wire

import "testing"

func TestUnicastDst(t *testing.T) {
	// Messages written by hand from docs/protocol.md: the destination MAC
	// is 02:00:00:00:00:0b in each frame message.
	dst := MAC{0x02, 0, 0, 0, 0, 0x0b}
	eth := "02000000000b" + "02000000000a" + "0800"
	for _, tc := range []struct {
		name string
		hex  string
		ok   bool
	}{
		{"0x80 targeted frame", "80" + eth, true},
		{"0x84 limited frame", "84" + "07" + eth, true},
		{"0x90 gso frame", "90" + "07" + "01" + "01" + "0036" + "05a8" + "0022" + "0010" + eth, true},
		{"0x80 with only the MAC", "80" + "02000000000b", true},
		{"0x80 one byte short", "80" + "020000000000"[:10], false},
		{"0x84 without hops", "84", false},
		{"0x90 ending in its fields", "90" + "07" + "01" + "01" + "0036" + "05a8" + "0022" + "00", false},
		{"0x81 broadcast", "81" + "0000000000000001" + "02000000000a" + "0800", false},
		{"0x83 announcement", "83" + eth, false},
		{"empty", "", false},
	} {
		got, ok := UnicastDst(unhex(t, tc.hex))
		if ok != tc.ok || (ok && got != dst) {
			t.Errorf("%s: UnicastDst = %v, %v; want %v, %v", tc.name, got, ok, dst, tc.ok)
		}
	}
}
