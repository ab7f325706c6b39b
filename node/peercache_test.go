package node

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/invpn/invpn/wire"
)

// TestPeerCacheKeepsAddressesAndOrder: the packed cache gives back every
// address as stored (IPv4, IPv6, with a zone), walks in MAC order
// whatever the order of changes, and forgets what was removed.
func TestPeerCacheKeepsAddressesAndOrder(t *testing.T) {
	var c peerCache
	entries := []struct {
		mac  string
		addr string
	}{
		{"m", "192.0.2.7:41744"},
		{"c", "[2001:db8::1]:7"},
		{"x", "[fe80::1%eth0]:41744"},
		{"a", "198.51.100.1:1"},
	}
	for _, e := range entries {
		c.set(macOf(e.mac), netip.MustParseAddrPort(e.addr))
	}
	c.set(macOf("m"), netip.MustParseAddrPort("192.0.2.8:41745")) // a new address
	c.set(macOf("x"), netip.MustParseAddrPort("[fe80::2%eth1]:41744"))
	want := map[string]string{"a": "198.51.100.1:1", "c": "[2001:db8::1]:7", "m": "192.0.2.8:41745", "x": "[fe80::2%eth1]:41744"}
	for name, addr := range want {
		if got, ok := c.get(macOf(name)); !ok || got != netip.MustParseAddrPort(addr) {
			t.Errorf("get(%s) = %v, %v; want %s", name, got, ok, addr)
		}
	}
	if !c.remove(macOf("c")) || c.remove(macOf("c")) {
		t.Error("remove(c) did not report the entry exactly once")
	}
	if _, ok := c.get(macOf("c")); ok {
		t.Error("c still cached after remove")
	}
	c.set(macOf("b"), netip.MustParseAddrPort("203.0.113.9:9"))
	var walked []wire.MAC
	for mac, addr := range c.all() {
		walked = append(walked, mac)
		if got, _ := c.get(mac); got != addr {
			t.Errorf("all() gave %s at %v, get gives %v", mac, addr, got)
		}
	}
	wantOrder := []wire.MAC{macOf("a"), macOf("b"), macOf("m"), macOf("x")}
	if !slices.Equal(walked, wantOrder) || c.len() != 4 {
		t.Errorf("all() walked %v (len %d), want %v", walked, c.len(), wantOrder)
	}
}
