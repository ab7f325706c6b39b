package meshlab

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/linkemu"
	"github.com/invpn/invpn/wire"
)

var square = Topology{
	Nodes:   4,
	Links:   []Link{{A: 1, B: 2, Net: 12}, {A: 1, B: 3}, {A: 2, B: 4}, {A: 3, B: 4, Net: 34}},
	Dial:    map[int][]int{2: {1}, 4: {2, 3}},
	MACBase: wire.MAC{0x02, 0x50, 0x56, 0, 0, 0},
	IPv4:    netip.MustParsePrefix("10.78.0.0/24"),
	IPv6:    netip.MustParsePrefix("fd00:78::/64"),
	Timers:  Timers{Announce: time.Second, LinkTimeout: 3 * time.Second},
}

// The one configuration template gives every node a valid configuration
// (as the daemon parses it) with its seeds, overlay, timers and socket.
// No root needed: nothing is created but files.
func TestWriteConfigs(t *testing.T) {
	dir := t.TempDir()
	m, err := New(Options{Prefix: "ivtest", Dir: dir, Bin: "/bin/false"}, square)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteConfigs(); err != nil {
		t.Fatal(err)
	}
	for _, n := range m.Nodes() {
		cfg, err := config.Load(n.Conf)
		if err != nil {
			t.Fatalf("node %d: %v", n.I, err)
		}
		var seeds []string
		for _, s := range cfg.Network.Init {
			seeds = append(seeds, s.String())
		}
		want := map[int][]string{
			2: {"02:50:56:00:00:01@10.99.12.1:41744"},
			4: {"02:50:56:00:00:02@10.99.3.2:41744", "02:50:56:00:00:03@10.99.34.3:41744"},
		}[n.I]
		if !slices.Equal(seeds, want) {
			t.Errorf("node %d: init %v, want %v", n.I, seeds, want)
		}
		addrs := []netip.Prefix{netip.MustParsePrefix(n.Addr4() + "/24"), netip.MustParsePrefix(n.Addr6() + "/64")}
		if !slices.Equal(cfg.TAP.Addresses, addrs) || n.Addr4() != "10.78.0."+string(rune('0'+n.I)) {
			t.Errorf("node %d: TAP addresses %v, want %v", n.I, cfg.TAP.Addresses, addrs)
		}
		if cfg.Timers.Announce != time.Second || cfg.Timers.LinkTimeout != 3*time.Second || cfg.Control.Socket != n.Socket ||
			cfg.SSL.Cert != filepath.Join(n.Dir, "node.crt") || cfg.Network.Port != Port {
			t.Errorf("node %d: config %+v", n.I, cfg)
		}
		if n.MAC != (wire.MAC{0x02, 0x50, 0x56, 0, 0, byte(n.I)}) {
			t.Errorf("node %d: MAC %s", n.I, n.MAC)
		}
	}
	if got := m.Underlay(1, 3); got != "10.99.2.1" {
		t.Errorf("Underlay(1, 3) = %s, want 10.99.2.1 (the link's index)", got)
	}
}

func TestNewRejects(t *testing.T) {
	for name, mod := range map[string]func(*Topology){
		"repeated link":     func(tp *Topology) { tp.Links = append(tp.Links, Link{A: 2, B: 1}) },
		"self link":         func(tp *Topology) { tp.Links = append(tp.Links, Link{A: 2, B: 2}) },
		"net used twice":    func(tp *Topology) { tp.Links = append(tp.Links, Link{A: 1, B: 4, Net: 12}) },
		"dial non-neighbor": func(tp *Topology) { tp.Dial = map[int][]int{1: {4}} },
		"no overlay":        func(tp *Topology) { tp.IPv4 = netip.Prefix{} },
		"too many nodes":    func(tp *Topology) { tp.Nodes = 300 },
		"bad emulation": func(tp *Topology) {
			tp.Links = append(tp.Links, Link{A: 1, B: 4, Emulated: &linkemu.Params{Loss: 2}})
		},
	} {
		tp := square
		tp.Links = slices.Clone(square.Links)
		mod(&tp)
		if _, err := New(Options{Prefix: "ivtest", Dir: t.TempDir()}, tp); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
