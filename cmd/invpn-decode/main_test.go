package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDecodeSample(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := runDecode(nil, &out, &errOut); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	for _, want := range []string{
		"1: 0x00 initial info id=1700000000000 mac=02:50:56:00:00:01 port=41744",
		"arp op 1 10.78.0.1 > 10.78.0.2",
		"reverse=[02:50:56:00:00:02]",
		"7: 7 bytes: rejected: wire: decode 0x80 targeted frame: field src mac",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
