// Package wire converts invpn protocol messages to and from bytes and frames
// them on a stream. It does no I/O of its own beyond the io.Reader and
// io.Writer it is handed, keeps no global state, and never panics on input.
//
// A message on a link is len(2, big endian) | type(1) | body. In this package
// a "message" is the type byte and the body; the length prefix belongs to the
// framing done by [Reader] and [Writer]. Every packet type has a struct with
// an Append method (encode into a caller's buffer) and a Decode function
// (parse a message, checking every length, count and version). The decoders
// of the per-frame types, [TargetedFrame] and [BroadcastFrame], alias the
// input instead of copying it and do not allocate.
//
// The packet table, framing and extensions are described in docs/protocol.md.
package wire
