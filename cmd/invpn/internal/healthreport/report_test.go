package healthreport

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/node"
	"github.com/invpn/invpn/wire"
)

func mac(c byte) wire.MAC { return wire.MAC{2, 0, 0, 0, 0, c} }

// A mesh a-b-c, b-d, c-d; a asks. b answers symmetrically; c's answer came
// back over d (asymmetric) and lists a route via a node it is not linked
// to; d does not answer.
func sample() *Report {
	a, b, c, d := mac('a'), mac('b'), mac('c'), mac('d')
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	results := []node.HealthResult{
		{At: start.Add(2 * time.Millisecond), Response: wire.HealthResponse{Dest: a, Origin: b, ID: 7,
			Links: []wire.MAC{a, c, d}, Routes: []wire.Route{{Target: a, NextHop: a}, {Target: c, NextHop: c}},
			Traceroute: []wire.MAC{a, b}, Reverse: []wire.MAC{b}}},
		{At: start.Add(5 * time.Millisecond), Response: wire.HealthResponse{Dest: a, Origin: c, ID: 7,
			Links: []wire.MAC{b, d}, Routes: []wire.Route{{Target: a, NextHop: a}},
			Traceroute: []wire.MAC{a, b, c}, Reverse: []wire.MAC{c, d, b}}},
		{At: start.Add(6 * time.Millisecond), Response: wire.HealthResponse{Dest: a, Origin: c, ID: 6}}, // old request
	}
	own := []node.RouteInfo{{Target: b}, {Target: c}}
	return Build(a, 7, start, results, own)
}

func TestBuild(t *testing.T) {
	r := sample()
	if len(r.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(r.Rows))
	}
	b, c := r.Rows[0], r.Rows[1]
	if b.Node != mac('b') || b.HopsOut != 1 || b.HopsBack != 1 || b.Asymmetric || b.RTT != 2*time.Millisecond || len(b.BadRoutes) != 0 {
		t.Errorf("b row %+v", b)
	}
	if c.Node != mac('c') || c.HopsOut != 2 || c.HopsBack != 3 || !c.Asymmetric || len(c.BadRoutes) != 1 {
		t.Errorf("c row %+v", c)
	}
	if len(r.Missing) != 1 || r.Missing[0] != mac('d') {
		t.Errorf("missing %v, want d", r.Missing)
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	r := sample()
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"HOPS OUT", "02:00:00:00:00:63  2", "asymmetric", "1 routes via unlinked neighbours", "no answer from 1: [02:00:00:00:00:64]"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Answers []struct {
			Node     string   `json:"node"`
			PathBack []string `json:"path_back"`
		} `json:"answers"`
		Missing []string `json:"missing"`
	}
	if err := json.Unmarshal(buf.Bytes(), &decoded); err != nil {
		t.Fatalf("JSON %s: %v", buf.String(), err)
	}
	if len(decoded.Answers) != 2 || decoded.Answers[1].PathBack[3] != "02:00:00:00:00:61" || decoded.Missing[0] != "02:00:00:00:00:64" {
		t.Errorf("JSON %s", buf.String())
	}
}

// The DOT text is exact: nodes sorted by MAC, each link once with its
// smaller end first, travelled links in blue, the requester and the node
// that did not answer marked.
func TestDOT(t *testing.T) {
	b, err := sample().DOT()
	if err != nil {
		t.Fatal(err)
	}
	want := `strict graph invpn {
  "02:00:00:00:00:61" [shape=doublecircle];
  "02:00:00:00:00:62";
  "02:00:00:00:00:63";
  "02:00:00:00:00:64" [style=dashed, label="02:00:00:00:00:64\n(no answer)"];

  "02:00:00:00:00:61" -- "02:00:00:00:00:62" [color=blue, penwidth=2];
  "02:00:00:00:00:62" -- "02:00:00:00:00:63" [color=blue, penwidth=2];
  "02:00:00:00:00:62" -- "02:00:00:00:00:64" [color=blue, penwidth=2];
  "02:00:00:00:00:63" -- "02:00:00:00:00:64" [color=blue, penwidth=2];
}
`
	if string(b) != want {
		t.Errorf("DOT:\n%s\nwant:\n%s", b, want)
	}
}

// A link no path crossed is drawn plain, a link listed by both ends once,
// and an ID with a double quote is escaped.
func TestDOTUnusedLinkAndQuoting(t *testing.T) {
	a, b, c, d := mac('a'), mac('b'), mac('c'), mac('d')
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	results := []node.HealthResult{
		{At: start, Response: wire.HealthResponse{Dest: a, Origin: c, ID: 1, Links: []wire.MAC{d, b, a},
			Traceroute: []wire.MAC{a, c}, Reverse: []wire.MAC{c}}},
		{At: start, Response: wire.HealthResponse{Dest: a, Origin: b, ID: 1, Links: []wire.MAC{c, b},
			Traceroute: []wire.MAC{a, c, b}, Reverse: []wire.MAC{b, c}}},
	}
	got, err := Build(a, 1, start, results, nil).DOT()
	if err != nil {
		t.Fatal(err)
	}
	want := `strict graph invpn {
  "02:00:00:00:00:61" [shape=doublecircle];
  "02:00:00:00:00:62";
  "02:00:00:00:00:63";
  "02:00:00:00:00:64" [style=dashed, label="02:00:00:00:00:64\n(no answer)"];

  "02:00:00:00:00:61" -- "02:00:00:00:00:63" [color=blue, penwidth=2];
  "02:00:00:00:00:62" -- "02:00:00:00:00:63" [color=blue, penwidth=2];
  "02:00:00:00:00:63" -- "02:00:00:00:00:64";
}
`
	if string(got) != want {
		t.Errorf("DOT:\n%s\nwant:\n%s", got, want)
	}
	if q := dotID(`a"b\n`); q != `"a\"b\n"` {
		t.Errorf("dotID = %s", q)
	}
}
