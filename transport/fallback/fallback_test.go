package fallback

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/transport"
	"github.com/invpn/invpn/wire"
)

// fakeDialer answers from a script and records its calls.
type fakeDialer struct {
	name  string
	err   error
	calls *[]string
}

type fakeLink struct {
	transport.Link
	name string
}

func (f fakeDialer) Dial(ctx context.Context, want wire.MAC, addr netip.AddrPort) (transport.Link, error) {
	*f.calls = append(*f.calls, f.name)
	if f.err != nil {
		return nil, f.err
	}
	return fakeLink{name: f.name}, nil
}

var (
	peer = wire.MAC{2, 0, 0, 0, 0, 1}
	addr = netip.MustParseAddrPort("127.0.0.1:41744")
)

func TestFallsBackAndRemembers(t *testing.T) {
	var calls []string
	now := time.Unix(1000, 0)
	quic := &fakeDialer{name: "quic", err: errors.New("timeout: no recent network activity"), calls: &calls}
	d, err := New([]Try{{Name: "quic", Dialer: quic, Budget: time.Second}, {Name: "tls", Dialer: fakeDialer{name: "tls", calls: &calls}}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d.now = func() time.Time { return now }
	var fell []string
	d.OnFallback = func(want wire.MAC, a netip.AddrPort, failed, next string, err error) {
		fell = append(fell, fmt.Sprintf("%s %s %s->%s", want, a, failed, next))
	}
	dial := func() string {
		l, err := d.Dial(context.Background(), peer, addr)
		if err != nil {
			t.Fatal(err)
		}
		return l.(fakeLink).name
	}
	if got := dial(); got != "tls" || fmt.Sprint(calls) != "[quic tls]" {
		t.Fatalf("first dial: over %s after %v, want tls after [quic tls]", got, calls)
	}
	if want := peer.String() + " " + addr.String() + " quic->tls"; len(fell) != 1 || fell[0] != want {
		t.Fatalf("OnFallback told %q, want %q", fell, want)
	}
	calls = nil
	if got := dial(); got != "tls" || fmt.Sprint(calls) != "[tls]" {
		t.Fatalf("within Remember: over %s after %v, want tls at once", got, calls)
	}
	now = now.Add(time.Minute)
	quic.err = nil
	calls = nil
	if got := dial(); got != "quic" || fmt.Sprint(calls) != "[quic]" {
		t.Fatalf("after Remember: over %s after %v, want quic again", got, calls)
	}
}

func TestRefusalByPeerDoesNotFallBack(t *testing.T) {
	for _, sentinel := range []error{transport.ErrWrongPeer, transport.ErrUntrusted, transport.ErrNoMAC, transport.ErrRevoked} {
		var calls []string
		d, _ := New([]Try{
			{Name: "quic", Dialer: fakeDialer{name: "quic", err: fmt.Errorf("handshake: %w", sentinel), calls: &calls}},
			{Name: "tls", Dialer: fakeDialer{name: "tls", calls: &calls}},
		}, 0)
		_, err := d.Dial(context.Background(), peer, addr)
		if !errors.Is(err, sentinel) || len(calls) != 1 {
			t.Errorf("%v: err %v after %v, want the refusal after one dial", sentinel, err, calls)
		}
	}
}

func TestAllFail(t *testing.T) {
	var calls []string
	d, _ := New([]Try{
		{Name: "quic", Dialer: fakeDialer{name: "quic", err: errors.New("no answer"), calls: &calls}},
		{Name: "tls", Dialer: fakeDialer{name: "tls", err: errors.New("connection refused"), calls: &calls}},
	}, 0)
	_, err := d.Dial(context.Background(), peer, addr)
	if err == nil {
		t.Fatal("dial succeeded")
	}
	for _, want := range []string{"over quic: no answer", "over tls: connection refused", peer.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := New(nil, 0); err == nil {
		t.Error("New with no transport succeeded")
	}
}
