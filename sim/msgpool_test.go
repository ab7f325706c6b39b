package sim

import "testing"

// TestMsgPool checks the size classes and the count of the links that
// hold a shared buffer.
func TestMsgPool(t *testing.T) {
	var p msgPool
	for n := 0; n <= 3000; n++ {
		msg := make([]byte, n)
		for k := range msg {
			msg[k] = byte(k)
		}
		b := p.share(msg)
		if string(b) != string(msg) {
			t.Fatalf("share(%d bytes) = %d bytes, not a copy", n, len(b))
		}
		k, ok := pooled(b)
		if want := n+msgRefBytes <= msgMaxCap; ok != want || ok && (msgCap(k) != cap(b) || cap(b) < n+msgRefBytes) {
			t.Fatalf("%d bytes: cap %d, pooled %v class %d", n, cap(b), ok, k)
		}
		p.hold(b)
		p.hold(b)
		p.release(b)
		if ok && len(p.free[k]) != 0 {
			t.Fatalf("%d bytes: back in the pool while a link holds it", n)
		}
		p.release(b)
		if ok && len(p.free[k]) != 1 {
			t.Fatalf("%d bytes: not back in the pool once delivered", n)
		}
		if ok && &p.share(msg)[:1][0] != &b[:1][0] {
			t.Fatalf("%d bytes: buffer not reused", n)
		}
	}
}
