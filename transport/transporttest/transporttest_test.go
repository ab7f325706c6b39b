package transporttest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"go.uber.org/goleak"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	macA = wire.MAC{0x02, 0x50, 0x56, 0, 0, 1}
	macB = wire.MAC{0x02, 0x50, 0x56, 0, 0, 2}
	macC = wire.MAC{0x02, 0x50, 0x56, 0, 0, 3}
)

func TestPipeContract(t *testing.T) {
	for _, ext := range []bool{false, true} {
		TestLinkPair(t, func(t *testing.T) (transport.Link, transport.Link) {
			a, b := Pipe(macA, macB, ext)
			if a.Peer() != macB || b.Peer() != macA {
				t.Fatalf("Peer() = %s, %s; want %s, %s", a.Peer(), b.Peer(), macB, macA)
			}
			if a.Extended() != ext {
				t.Fatalf("Extended() = %v, want %v", a.Extended(), ext)
			}
			return a, b
		})
	}
}

func TestNetworkContract(t *testing.T) {
	n := NewNetwork()
	ln, err := n.Listen(macB, netip.MustParseAddrPort("10.0.0.2:41744"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := n.Dialer(macA, netip.MustParseAddr("10.0.0.1"), true)
	TestLinkPair(t, func(t *testing.T) (transport.Link, transport.Link) {
		a, err := d.Dial(context.Background(), macB, ln.Addr())
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		b, err := ln.Accept(context.Background())
		if err != nil {
			t.Fatalf("Accept: %v", err)
		}
		return a, b
	})
}

// A retained message is overwritten by the next ReadMessage, so code that
// breaks the ownership rule of transport.Link fails in tests.
func TestPipeScribblesPreviousMessage(t *testing.T) {
	a, b := Pipe(macA, macB, false)
	defer closeBoth(a, b)
	if err := a.WriteMessages([][]byte{{0x80, 1}, {0x80, 2}}); err != nil {
		t.Fatal(err)
	}
	first, err := b.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, []byte{scribble, scribble}) {
		t.Errorf("retained message = % x, want it overwritten", first)
	}
}

func TestNetworkAddresses(t *testing.T) {
	n := NewNetwork()
	ln, err := n.Listen(macB, netip.MustParseAddrPort("10.0.0.2:0"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().Port() == 0 {
		t.Fatalf("Addr() = %s, want a port picked", ln.Addr())
	}
	if _, err := n.Listen(macC, ln.Addr(), false); err == nil {
		t.Error("second Listen on the same address succeeded")
	}
	// A dialer may be handed an IPv4-mapped address (an original node can
	// announce one, docs/protocol.md#interoperating-with-an-original-node).
	mapped := netip.AddrPortFrom(netip.AddrFrom16(ln.Addr().Addr().As16()), ln.Addr().Port())
	a, err := n.Dialer(macA, netip.MustParseAddr("::ffff:10.0.0.1"), true).Dial(context.Background(), macB, mapped)
	if err != nil {
		t.Fatalf("Dial mapped address: %v", err)
	}
	defer a.Close()
	b, err := ln.Accept(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.RemoteAddr() != ln.Addr() {
		t.Errorf("dialer RemoteAddr() = %s, want %s", a.RemoteAddr(), ln.Addr())
	}
	if got := b.RemoteAddr().Addr(); got != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("listener RemoteAddr() = %s, want 10.0.0.1 unmapped", b.RemoteAddr())
	}
	if a.Extended() || b.Extended() {
		t.Error("link is extended though the listener is not")
	}
	if b.Peer() != macA || a.Peer() != macB {
		t.Errorf("Peer() = %s, %s; want %s, %s", a.Peer(), b.Peer(), macB, macA)
	}
}

func TestNetworkDialErrors(t *testing.T) {
	n := NewNetwork()
	addr := netip.MustParseAddrPort("10.0.0.2:41744")
	d := n.Dialer(macA, netip.MustParseAddr("10.0.0.1"), true)
	if _, err := d.Dial(context.Background(), macB, addr); !errors.Is(err, ErrRefused) {
		t.Errorf("Dial with no listener = %v, want ErrRefused", err)
	}
	ln, err := n.Listen(macB, addr, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dial(context.Background(), macC, addr); !errors.Is(err, transport.ErrWrongPeer) {
		t.Errorf("Dial wanting %s at %s's address = %v, want ErrWrongPeer", macC, macB, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Dial(ctx, macB, addr); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with cancelled context = %v, want context.Canceled", err)
	}
	// A link dialed but never accepted is closed by Listener.Close.
	pending, err := d.Dial(context.Background(), macB, addr)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := pending.ReadMessage(); err == nil {
		t.Error("link left in a closed listener's backlog still open")
	}
	if _, err := d.Dial(context.Background(), macB, addr); !errors.Is(err, ErrRefused) {
		t.Errorf("Dial after Listener.Close = %v, want ErrRefused", err)
	}
}

func TestListenerAcceptUnblocks(t *testing.T) {
	n := NewNetwork()
	ln, err := n.Listen(macB, netip.MustParseAddrPort("10.0.0.2:1"), true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ln.Accept(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Accept with cancelled context = %v, want context.Canceled", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept(context.Background())
		errc <- err
	}()
	ln.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
}
