// Package sim is the deterministic simulator of an invpn mesh, after
// TigerBeetle's VOPR and FoundationDB's simulator: one thread, one seeded
// random source, a virtual clock and faults injected on purpose, so every
// run — and every failure — replays exactly from one printed seed.
//
// A [World] holds many [node.Node] values and plays the part of their
// drivers: it feeds each node its inputs (links up and down, messages,
// TAP frames, ticks, failed dials) and carries out the node's Ready
// (sends, closes, dials, TAP writes, peer-cache and id-floor persistence)
// through simulated links. Everything happens in a discrete-event loop:
// a heap of events ordered by (virtual time, sequence number).
//
// Links are modelled as the TCP connections they are: a latency,
// optionally a bandwidth with a bounded send queue, in-order delivery per
// direction, and what TCP does when a path fails. A message over a path
// that drops everything is kept for a retransmission, not lost and not
// reported: it arrives when the path passes packets again (at the next
// retransmission timeout, doubling from 200 ms), and a connection whose
// sent data stays unacknowledged for the user timeout (15 s, the daemon's
// TCP_USER_TIMEOUT) is aborted on that side. A lost segment on a lossy
// path is a retransmission delay with head-of-line blocking. A closed
// connection's FIN follows its data; a reset reaches the other end one
// latency later; a socket that is gone answers data with a reset. A dial
// over a silent path retries its SYN (1 s, 3 s, 7 s) and fails at its
// timeout (15 s); a dial to a host with nothing listening is refused.
// Links come up only when a node dials: a static topology's nodes have
// their neighbours as seeds, and a healed cut is relinked by the nodes'
// own connect policy. Nothing tells a node that a path went silent: only
// its own link liveness (heartbeats) or the transport's timeouts find it.
//
// Faults are silent cuts, one-way cuts, resets and loss of a link,
// partitions, node crashes (the process dies; its kernel closes its
// connections), halts (the machine vanishes; its paths go silent) and
// restarts, stalls (the process is paused; what arrives waits), and clock
// skews and jumps. Each is one a real network or machine produces.
//
// The world has three random sources, all from the one seed: the
// schedule's (topology, faults, traffic: World.Rand), the network's
// (latencies, seed-protocol links, loss) and one per node, from the seed
// and the node's index (node.Config.Rand), so that adding a node or a
// fault does not reshuffle the other nodes' randomness.
//
// While it runs, the world checks the protocol's invariants against its
// own ground truth: broadcasts delivered at most once and never to their
// source, unicast frames never looping, health traceroutes equal to the
// paths the messages travelled, and (when asked) every node's first-path
// route equal to a naive model computed from the log of announcement
// arrivals. It counts what it checked, so that a property that checked
// nothing does not pass. It measures how long the mesh takes to converge
// and to fail over after each fault. A running FNV-style hash of the
// event trace proves that the same seed gives the same run.
//
// [Scenario] values, parsed from the YAML files of the scenarios package,
// describe a topology, link parameters, timers, a fault schedule, traffic
// and expectations; [Scenario.Run] plays one and returns a [Report].
// Faults and traffic are typed values ([Fault], [TrafficSpec]) parsed once
// when the scenario is loaded.
//
// The files follow the roles of the simulator:
//
//	world.go              World, Config, the event loop (At, RunUntil, dispatch)
//	events.go             event kinds and the event queue (4-ary heap over a slab)
//	trace.go              tracer: trace hash and recent events, printed with wire.Describer
//	cluster.go            cluster: the nodes and their drivers (start, drain, tick, crash, halt,
//	                      stall and resume, restart, clocks)
//	network.go            network: edges; links as TCP connections (latency, bandwidth, delivery,
//	                      retransmission, user timeout, FIN and reset); dials and their SYN retries;
//	                      the state of the paths (cuts, one-way cuts, partitions, loss)
//	faults.go             the World's fault methods and the typed faults of a schedule
//	workload.go           workload: frames and health requests injected; typed traffic entries;
//	                      streams (fixed-pair unicasts) and their loss runs
//	checker.go            checker: the invariants, checked as messages and frames arrive
//	checker_firstpath.go  the naive first-path model and CheckFirstPath
//	measure.go            measurer: convergence and failover times, detection and relink times;
//	                      the counters
//	topology.go           topologies and World.Build
//	scenario.go, yaml.go  parsing scenario files
//	expect.go             expectations: parsed and judged
//	run.go                Scenario.World and Scenario.Run: the scenario layer, which drives a
//	                      World through its exported methods only
//	report.go             Report and its text form
//
// The package is pure (docs/design.md#pure-core): no goroutines, clocks, files,
// sockets or global randomness. Reading files and writing reports is the
// command's job (cmd/invpn sim); plots are drawn from its CSV by
// cmd/invpn-plot.
package sim
