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
// a heap of events ordered by (virtual time, sequence number). Links have
// a latency, optionally a bandwidth with a bounded send queue, deliver in
// order per direction (TCP), and are noticed cut only after a detection
// delay. Faults are link cuts, partitions, node crashes and restarts, and
// clock skews and jumps.
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
//	cluster.go            cluster: the nodes and their drivers (start, drain, tick, crash, restart, clocks)
//	network.go            network: edges, links, latency, bandwidth, delivery, dials, cuts,
//	                      partitions, and the failure detector (detectBroken)
//	faults.go             the World's fault methods and the typed faults of a schedule
//	workload.go           workload: frames and health requests injected; typed traffic entries
//	checker.go            checker: the invariants, checked as messages and frames arrive
//	checker_firstpath.go  the naive first-path model and CheckFirstPath
//	measure.go            measurer: convergence and failover times; the counters
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
