package daemon

// Buffer pools. Who owns a buffer when: docs/architecture.md, "Where a
// frame's bytes live".

import (
	"sync"

	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/gso"
)

// Buffer pools: messages and frames travel to the loop in pooled
// buffers, small ones for ordinary frames and large ones for the rest: a
// message, or a super-frame read from the TAP after its virtio-net header.
const (
	smallBuf = 2048
	largeBuf = gso.HeaderLen + wire.MaxMessage
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}
)

// getBuf returns a buffer of at least n bytes, n <= largeBuf.
func getBuf(n int) *[]byte {
	if n <= smallBuf {
		return smallPool.Get().(*[]byte)
	}
	return largePool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	switch len(*b) {
	case smallBuf:
		smallPool.Put(b)
	case largeBuf:
		largePool.Put(b)
	}
}
