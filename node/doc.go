// Package node is the protocol engine of one invpn mesh member. It is pure:
// no goroutines, sockets, clocks, files or global randomness. A driver (the
// daemon, or the simulator) hands it each thing that happened as an
// [Input] value with [Node.Step] — a link came up or went down, a message
// arrived, a frame was read from the TAP, time passed — and then collects
// a [Ready] of outputs: messages to send, links to close, frames to write
// to the TAP, peers to dial, peer-cache changes, an id floor to persist,
// health results and events. The model is etcd-io/raft's RawNode
// (docs/design.md#plain-value-engine). [Node.Receive] and
// [Node.FrameFromTAP] are the per-frame inputs without the interface
// value: they do not allocate.
//
// The behaviour follows docs/protocol.md: first-path routing from flooded
// announcements, flooded broadcasts with de-duplication, hop-by-hop
// targeted frames, the health traceroute, and the connect policy, with
// every defect of the original listed there fixed. The transcripts in
// testdata/ show each behaviour and each fixed defect message by message.
//
// Files, by what they hold:
//
//	node.go      the Node, New, Ready/Advance and the output helpers
//	input.go     the inputs, Step, and Receive's dispatch by message type
//	config.go    Config and DefaultConfig (a zero value means zero)
//	clock.go     idClock: the node's own clock and the ids it issues
//	timers.go    the deadlines, Tick and the expiry sweep
//	links.go     linkSet: the live links; link up/down, violations
//	routes.go    routeTable: first-path routes, backups, failover, expiry
//	announce.go  announcements, the 0x86 request, the route copy to new links
//	frames.go    Ethernet frames: from the TAP, targeted, flooded
//	dedup.go     the windows of flooded ids seen per source
//	connect.go   dialer: the peer cache, dials and backoff
//	bootstrap.go directory links: bootstrap peers and the link limit (0x8A)
//	health.go    the health request and its answers
//	revocation.go the group's revocation list (0x8C): held, handed up, flooded
//	signed.go    signed announcements: the Authenticator, 0x8D and 0x8E
//	liveness.go  heartbeats (0x87) and the links' detection times
//	refresh.go   quiet refresh: batches (0x88), scoped requests (0x89)
//	queue.go     SendQueue, the per-link output bound drivers use
//	ready.go     the outputs, events, drop reasons and counters
//
// A Node is not safe for concurrent use: one goroutine owns it.
package node
