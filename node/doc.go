// Package node is the protocol engine of one invpn mesh member. It is pure:
// no goroutines, sockets, clocks, files or global randomness. A driver (the
// daemon, or the simulator) feeds it inputs — a link came up or went down,
// a message arrived, a frame was read from the TAP, time passed — and after
// each input collects a [Ready] of outputs: messages to send, links to
// close, frames to write to the TAP, peers to dial, peer-cache changes,
// health results and events. The model is etcd-io/raft's RawNode.
//
// The behaviour follows docs/protocol.md: first-path routing from flooded
// announcements, flooded broadcasts with de-duplication, hop-by-hop
// targeted frames, the health traceroute, and the connect policy, with
// every defect of the original listed there fixed.
//
// A Node is not safe for concurrent use: one goroutine owns it.
package node
