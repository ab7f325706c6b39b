package pki

import (
	"math/big"
	"strings"
	"testing"
)

func TestParseSerial(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string // SerialString of the result; "" for an error
		errPart string
	}{
		{"1a2b3c", "1a2b3c", ""},
		{"1A2B3C", "1a2b3c", ""},
		{"1a:2B:3c", "1a2b3c", ""},
		{"0x1a2b3c", "1a2b3c", ""},
		{"0X00:1A", "1a", ""},
		{"0001", "1", ""},
		{strings.Repeat("ff", 20), strings.Repeat("ff", 20), ""},
		{"", "", "empty"},
		{"  ", "", "empty"},
		{"0x", "", "no digits"},
		{"-1a", "", "negative"},
		{"1g", "", `"g" is not a hex digit`},
		{"02 50", "", `" " is not a hex digit`},
		{"1a::2b", "", "colon"},
		{":1a", "", "colon"},
		{"1a:", "", "colon"},
		{"0", "", "zero"},
		{"00:00", "", "zero"},
		{"01" + strings.Repeat("00", 20), "", "21 octets"},
	} {
		got, err := ParseSerial(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseSerial(%q) = %s, want an error saying %q", tc.in, SerialString(got), tc.errPart)
		case tc.want == "" && !strings.Contains(err.Error(), tc.errPart):
			t.Errorf("ParseSerial(%q) error %q, want it to say %q", tc.in, err, tc.errPart)
		case tc.want != "" && err != nil:
			t.Errorf("ParseSerial(%q): %v", tc.in, err)
		case tc.want != "" && SerialString(got) != tc.want:
			t.Errorf("ParseSerial(%q) = %s, want %s", tc.in, SerialString(got), tc.want)
		}
	}
}

func TestSerialStringRoundTrip(t *testing.T) {
	for range 20 {
		s := randomSerial()
		str := SerialString(s)
		if str != strings.ToLower(str) || strings.HasPrefix(str, "0") || strings.Contains(str, ":") {
			t.Errorf("SerialString(%v) = %q, want lowercase hex without leading zeros or colons", s, str)
		}
		back, err := ParseSerial(str)
		if err != nil || back.Cmp(s) != 0 {
			t.Errorf("ParseSerial(SerialString(%v)) = %v, %v", s, back, err)
		}
	}
	if got := SerialString(big.NewInt(0x0a0b)); got != "a0b" {
		t.Errorf("SerialString(0x0a0b) = %q, want a0b", got)
	}
}
