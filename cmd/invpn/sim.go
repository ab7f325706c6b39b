package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/invpn/invpn/scenarios"
	"github.com/invpn/invpn/sim"
)

// simGCPercent is the GOGC the simulator runs with unless the environment
// sets one (see the usage text).
const simGCPercent = 25

// defaultScenario is what `invpn sim` runs when given no file.
const defaultScenario = "wan-3site.yaml"

// errExpectations is returned when a scenario's expectations fail.
var errExpectations = errors.New("expectations failed")

func runSim(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("sim", flag.ContinueOnError)
	fset.SetOutput(stderr)
	seed := fset.Uint64("seed", 0, "run with `SEED` instead of the scenario's seed; with --seeds, the first seed (default 1)")
	seeds := fset.Int("seeds", 0, "run `N` seeds, from --seed on, and print a summary with a replay command for each failure")
	jobs := fset.Int("jobs", runtime.NumCPU(), "run `J` simulations at a time (each stays single-threaded and deterministic)")
	asJSON := fset.Bool("json", false, "print the report as JSON (an array of reports for several runs)")
	asCSV := fset.Bool("csv", false, "print the summary as CSV (one row per run: per variant and seed)")
	var sweeps sweepFlags
	fset.Var(&sweeps, "sweep", "run once per value of a parameter: `PARAM=v1,v2,...` with PARAM one of "+sweepParamList+
		"; repeat it to run every combination")
	faultRows := fset.Bool("faults", false, "with --csv: one row per fault (its time and recovery) instead of one per run")
	cpuProfile := fset.String("cpuprofile", "", "write a CPU profile of the runs to `FILE` (read it with go tool pprof)")
	memProfile := fset.String("memprofile", "", "write a heap profile to `FILE` when the runs end (with --jobs 1, the live heap of the last world)")
	fset.Usage = func() {
		fmt.Fprintf(stderr, `Usage: invpn sim [flags] [FILE.yaml]

Runs a scenario in the deterministic simulator: many invpn nodes in one
process, on a virtual clock, over simulated TCP links with latency,
bandwidth and faults (silent and one-way cuts, resets, loss, partitions,
crashes, halted machines, stalled processes, clock jumps). Nodes learn of
a fault only as a real daemon would: a silent cut is found by their
heartbeats, a link comes back only when a node dials it. The same seed
gives the same run, event for event. Without FILE it runs the built-in scenario
%q. The scenario format is described in scenarios/README.md; the built-in
scenarios are: %s.

The report gives the time to converge, the failover time after each fault
(p50, p95, max, and per kind of fault), when a node dropped the link a
fault hit (or a dial brought it back), the longest run of lost frames of
a unicast stream around each fault, frames delivered, lost and
duplicated, control traffic per node (heartbeats apart), and whether each
expectation of the scenario held. The exit status is 1 when an
expectation fails.

Many runs at once. --seeds N runs the scenario with seeds S, S+1, ...,
S+N-1 (S is --seed, default 1) and prints a summary: runs, passed, failed,
and for each failed run its failed expectations and the command that
replays it alone. --sweep PARAM=v1,v2,... runs once per value; given more
than once, it runs every combination (nodes=100 refresh=0, nodes=100
refresh=60s, ...), each with every seed of --seeds. The parameters:
  announce      the announce interval (default 5s)
  max_links     the links a node keeps (8)
  heartbeat     the heartbeat interval (250ms; 0: no heartbeats)
  latency       the LAN links' one-way latency, or a range: 1ms..5ms
  nodes         the node count of a line, ring, star, mesh, random or
                organic topology (the faults and traffic may name only
                nodes that exist at every count)
  degree        the mean degree of a random topology
  refresh       the quiet-refresh interval (120s); 0: the original
                cadence, every round flooded each announce interval
  batch_delay   the longest a relay holds refreshes to batch them (250ms)
  change_delay  the least time between two batches of changes to one
                neighbour (5ms); 0: every change at once
  ask_window    how long a node that lost a link waits for the peer's
                own ask before asking for the peer's routes (10ms); 0:
                at once
  duration      how long the scenario runs (e.g. 10m)
Runs go --jobs at a time (default: one per CPU), each on one goroutine
with its own world, so every run is the same whatever --jobs is, and the
output is in the same order: by variant, then seed. A run that panics is
a failed run. A progress line (runs done, failures, rate) goes to
standard error; with --csv or --json the summary goes there too.

With --csv, each row also has routes_per_node (mean live routes per node
at the end), heap_bytes_per_node (the live heap of the world at the end
of the run, after a collection, per node: measured only when the runs go
one at a time, --jobs 1 or a single run; empty otherwise, since runs side
by side share one heap), events_per_s (of wall time), error (a run that
did not finish) and one sweep_PARAM column per swept parameter.

Memory: the simulator's heap holds almost no pointers, so the garbage
collector's marking costs little, and the runs go with GOGC=%d (a heap
goal a quarter above the live heap, not twice it) unless GOGC is set in
the environment: at 1000 nodes it measured the same wall time and a third
less resident memory than the default of 100.

To plot, write CSV and give it to the separate command invpn-plot (go run
./cmd/invpn-plot), which draws an SVG: --csv --faults for the recovery
after each fault over time, --csv --sweep for failover against the swept
parameter, and --csv --sweep nodes=... for each metric against the node
count (one line per value of a second swept parameter).

Flags (one or two dashes):
`, defaultScenario, strings.Join(embeddedNames(), ", "), simGCPercent)
		fset.PrintDefaults()
		fmt.Fprintf(stderr, `
Examples:
  invpn sim
  invpn sim --seed 42 scenarios/ring-300.yaml
  invpn sim --seeds 200 --jobs 2 scenarios/diamond.yaml
  invpn sim --seed 1234 --sweep refresh=0 scenarios/random-200.yaml
  invpn sim --sweep announce=1s,2s,5s,10s --csv > sweep.csv
  invpn sim --sweep heartbeat=0,250ms diamond.yaml
  invpn sim --sweep nodes=100,300,1000 --sweep refresh=0,120s --jobs 1 --csv scenarios/scale.yaml > scale.csv
  invpn-plot -o scale.svg scale.csv
  invpn sim --csv --faults scenarios/random-200.yaml > faults.csv
  invpn-plot -o failover.svg faults.csv
`)
	}
	if plotFlag(args) {
		fmt.Fprintln(stderr, "invpn sim: --plot has moved out of the daemon binary to the command invpn-plot:\n"+
			"  invpn sim --csv --faults [FILE.yaml] > faults.csv\n"+
			"  go run ./cmd/invpn-plot -o failover.svg faults.csv")
		return errUsage
	}
	// Flags may come after the file name too.
	var files []string
	rest := args
	for {
		if err := fset.Parse(rest); err != nil {
			if err == flag.ErrHelp {
				return nil
			}
			return errUsage
		}
		if fset.NArg() == 0 {
			break
		}
		files = append(files, fset.Arg(0))
		rest = fset.Args()[1:]
	}
	if len(files) > 1 {
		fmt.Fprintf(stderr, "invpn sim: one scenario file at a time, got %v\n", files)
		return errUsage
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		defer debug.SetGCPercent(debug.SetGCPercent(simGCPercent))
	}
	if *asJSON && *asCSV {
		fmt.Fprintln(stderr, "invpn sim: --json and --csv exclude each other")
		return errUsage
	}
	if *faultRows && !*asCSV {
		fmt.Fprintln(stderr, "invpn sim: --faults is a form of --csv")
		return errUsage
	}
	if *seeds < 0 || *jobs < 1 {
		fmt.Fprintln(stderr, "invpn sim: --seeds wants a count of seeds and --jobs a count of runs at a time of at least 1")
		return errUsage
	}
	var (
		name string
		src  []byte
		err  error
	)
	if len(files) == 0 {
		name = defaultScenario
		src, err = fs.ReadFile(scenarios.Files, name)
	} else {
		name = files[0]
		src, err = os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			// A built-in scenario may be named without its directory.
			if b, err2 := fs.ReadFile(scenarios.Files, strings.TrimPrefix(name, "scenarios/")); err2 == nil {
				src, err = b, nil
			}
		}
	}
	if err != nil {
		return fmt.Errorf("read scenario: %w", err)
	}
	base, err := sim.ParseScenario(name, src)
	if err != nil {
		return err
	}
	vars, err := variants(base, sweeps)
	if err != nil {
		return fmt.Errorf("--sweep: %w", err)
	}
	b := &batch{vars: vars, jobs: makeJobs(vars, jobSeeds(*seed, *seeds)), parallel: *jobs, heapProfile: *memProfile}
	single := len(b.jobs) == 1 && len(sweeps) == 0 && *seeds == 0
	if single {
		b.progress = barProgress{newProgress(stderr, base.Name)}
	} else {
		b.progress = newLineProgress(stderr, b)
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	start := time.Now()
	results := b.run()
	wall := time.Since(start)
	stopProfile()
	if b.heapErr != nil {
		return b.heapErr
	}
	if single && results[0].err != nil && !results[0].panicked {
		return results[0].err
	}

	ok := true
	for _, r := range results {
		ok = ok && !r.failed()
	}
	// label names run k in CSV rows: its variant, and its seed when
	// there are several.
	label := func(k int) string {
		l := vars[b.jobs[k].variant].label
		if *seeds > 0 {
			l += fmt.Sprintf(" seed=%d", b.jobs[k].seed)
		}
		return l
	}
	machine := *asJSON || *asCSV
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if single && results[0].report != nil {
			err = enc.Encode(results[0].report)
		} else {
			all := []*sim.Report{}
			for _, r := range results {
				if r.report != nil {
					all = append(all, r.report)
				}
			}
			err = enc.Encode(all)
		}
	case *asCSV && *faultRows:
		cw := csv.NewWriter(stdout)
		_ = cw.Write([]string{"run", "kind", "desc", "at_s", "recovered", "recovery_s", "broken_pairs",
			"link_dropped_s", "link_back_s", "loss_run_s"})
		for k, r := range results {
			if r.report == nil {
				continue
			}
			for _, f := range r.report.Faults {
				_ = cw.Write([]string{label(k), f.Kind, f.Desc, seconds(f.At), strconv.FormatBool(f.Recovered),
					seconds(f.Recovery), strconv.Itoa(f.BrokenPairs), optSeconds(f.DetectIn), optSeconds(f.LinkBackIn),
					optSeconds(f.LossRun)})
			}
		}
		cw.Flush()
		err = cw.Error()
	case *asCSV:
		err = writeRunsCSV(stdout, b, results, sweeps, func(k int) string { return vars[b.jobs[k].variant].label })
	case *seeds > 0:
		if len(sweeps) > 0 {
			writeVariantTable(stdout, b, results, sweeps)
		}
	case len(sweeps) > 0:
		err = writeSweepTable(stdout, name, base, b, results, sweeps)
	default:
		r := results[0]
		if r.report != nil {
			fmt.Fprint(stdout, r.report.Text())
			fmt.Fprintf(stdout, "speed     %.1f s of wall time: %.0f simulated s per wall s, %.0f events/s\n", r.wall.Seconds(),
				time.Duration(r.report.Duration).Seconds()/max(r.wall.Seconds(), 1e-9), float64(r.report.Totals.Events)/max(r.wall.Seconds(), 1e-9))
		}
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	// The summary and the failures: after the text report, or on
	// standard error when standard output is CSV or JSON. A single run's
	// report shows its failures itself.
	sw := stdout
	if machine {
		sw = stderr
	}
	if *seeds > 0 {
		if len(sweeps) > 0 {
			fmt.Fprintln(sw)
		}
		writeSummary(sw, results, *jobs, wall)
	}
	if !single || results[0].report == nil {
		writeFailures(sw, name, b, results)
	}
	if !ok {
		return errExpectations
	}
	return nil
}

// writeRunsCSV writes one summary row per run: the columns the plots and
// goldens rely on first, then the newer ones, then one sweep_PARAM column
// per swept parameter.
func writeRunsCSV(w io.Writer, b *batch, results []simResult, sweeps []sweepAxis, label func(int) string) error {
	cw := csv.NewWriter(w)
	header := []string{"run", "seed", "nodes", "simulated_s", "converged", "converge_s", "faults", "unrecovered",
		"failover_p50_s", "failover_p95_s", "failover_max_s", "frames_expected", "delivered", "lost", "duplicated",
		"loops", "control_msgs_per_node_s", "control_bytes_per_node_s", "heartbeat_msgs_per_node_s",
		"liveness_failures", "user_timeouts", "events", "wall_s", "ok",
		"routes_per_node", "heap_bytes_per_node", "events_per_s", "error",
		"quiet_control_msgs_per_node_s", "quiet_control_bytes_per_node_s", "quiet_s"}
	for _, a := range sweeps {
		header = append(header, "sweep_"+a.param)
	}
	_ = cw.Write(header)
	for k, r := range results {
		job := b.jobs[k]
		v := b.vars[job.variant]
		var row []string
		if rp := r.report; rp != nil {
			heap := ""
			if r.heapPerNode >= 0 {
				heap = strconv.FormatFloat(r.heapPerNode, 'f', 0, 64)
			}
			row = []string{label(k), strconv.FormatUint(rp.Seed, 10), strconv.Itoa(rp.Nodes), seconds(rp.Duration),
				strconv.FormatBool(rp.Converged), seconds(rp.ConvergeIn), strconv.Itoa(rp.Failover.Faults),
				strconv.Itoa(rp.Failover.Unrecovered), seconds(rp.Failover.P50), seconds(rp.Failover.P95), seconds(rp.Failover.Max),
				strconv.FormatUint(rp.Frames.Expected, 10), strconv.FormatUint(rp.Frames.Delivered, 10),
				strconv.FormatUint(rp.Frames.Lost, 10), strconv.FormatUint(rp.Frames.Duplicated, 10),
				strconv.FormatUint(rp.Frames.Loops, 10), strconv.FormatFloat(rp.ControlMsgs, 'f', 2, 64),
				strconv.FormatFloat(rp.ControlB, 'f', 0, 64), strconv.FormatFloat(rp.Heartbeats, 'f', 2, 64),
				strconv.FormatUint(rp.Liveness, 10), strconv.FormatUint(rp.UserTO, 10), strconv.FormatUint(rp.Totals.Events, 10),
				strconv.FormatFloat(r.wall.Seconds(), 'f', 2, 64), strconv.FormatBool(rp.OK),
				strconv.FormatFloat(rp.Routes, 'f', 1, 64), heap,
				strconv.FormatFloat(float64(rp.Totals.Events)/max(r.wall.Seconds(), 1e-9), 'f', 0, 64), "",
				strconv.FormatFloat(rp.QuietControlMsgs, 'f', 2, 64), strconv.FormatFloat(rp.QuietControlB, 'f', 0, 64),
				strconv.FormatFloat(rp.QuietSeconds, 'f', 0, 64)}
		} else {
			// A run that did not finish: its name, seed and error.
			row = make([]string, 31)
			row[0], row[1], row[2] = label(k), strconv.FormatUint(job.seed, 10), strconv.Itoa(v.scen.Topology.Nodes)
			row[22], row[23] = strconv.FormatFloat(r.wall.Seconds(), 'f', 2, 64), "false"
			row[27] = headLine(r.err.Error())
		}
		for _, st := range v.settings {
			row = append(row, st.value)
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

// writeSweepTable writes one line per variant of a sweep of one seed.
func writeSweepTable(w io.Writer, file string, base *sim.Scenario, b *batch, results []simResult, sweeps []sweepAxis) error {
	var params []string
	for _, a := range sweeps {
		params = append(params, a.param)
	}
	fmt.Fprintf(w, "sweep of %s over scenario %s (%s)\n\n", strings.Join(params, " and "), base.Name, file)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(params, "\t")+"\tconverge\tfailover p50\tp95\tmax\tlost\tctl msgs/node/s\theartbeats\tctl bytes/node/s\tliveness fails\tuser timeouts\texpectations")
	for k, r := range results {
		var vals []string
		for _, st := range b.vars[b.jobs[k].variant].settings {
			vals = append(vals, st.value)
		}
		rp := r.report
		if rp == nil {
			fmt.Fprintf(tw, "%s\t(did not finish: see below)\n", strings.Join(vals, "\t"))
			continue
		}
		conv := "never"
		if rp.Converged {
			conv = rp.ConvergeIn.String()
		}
		lost := 0.0
		if rp.Frames.Expected > 0 {
			lost = 100 * float64(rp.Frames.Lost) / float64(rp.Frames.Expected)
		}
		verdict := "ok"
		if !rp.OK {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%v\t%.2f%%\t%.2f\t%.2f\t%.0f\t%d\t%d\t%s\n", strings.Join(vals, "\t"), conv, rp.Failover.P50, rp.Failover.P95,
			rp.Failover.Max, lost, rp.ControlMsgs, rp.Heartbeats, rp.ControlB, rp.Liveness, rp.UserTO, verdict)
	}
	return tw.Flush()
}

// writeVariantTable writes, for a sweep run with many seeds, one line per
// variant: its runs and failures, and the worst and mean of its seeds.
func writeVariantTable(w io.Writer, b *batch, results []simResult, sweeps []sweepAxis) {
	var params []string
	for _, a := range sweeps {
		params = append(params, a.param)
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(params, "\t")+"\truns\tfailed\tconverge max\tfailover p95 max\tfailover max\tctl msgs/node/s\tctl bytes/node/s\troutes/node")
	for vi, v := range b.vars {
		var runs, failed, n int
		var conv, p95, mx sim.Dur
		var msgs, bytes, routes float64
		for k, r := range results {
			if b.jobs[k].variant != vi {
				continue
			}
			runs++
			if r.failed() {
				failed++
			}
			if rp := r.report; rp != nil {
				n++
				conv, p95, mx = max(conv, rp.ConvergeIn), max(p95, rp.Failover.P95), max(mx, rp.Failover.Max)
				msgs, bytes, routes = msgs+rp.ControlMsgs, bytes+rp.ControlB, routes+rp.Routes
			}
		}
		var vals []string
		for _, st := range v.settings {
			vals = append(vals, st.value)
		}
		d := float64(max(n, 1))
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%v\t%v\t%.2f\t%.0f\t%.1f\n", strings.Join(vals, "\t"), runs, failed, conv, p95, mx,
			msgs/d, bytes/d, routes/d)
	}
	_ = tw.Flush()
}

// embeddedNames lists the built-in scenarios.
func embeddedNames() []string {
	names, _ := fs.Glob(scenarios.Files, "*.yaml")
	return names
}

// seconds formats d in seconds with millisecond precision, for CSV.
func seconds(d sim.Dur) string { return strconv.FormatFloat(time.Duration(d).Seconds(), 'f', 3, 64) }

// optSeconds is seconds for a value that may be absent (an empty cell).
func optSeconds(d *sim.Dur) string {
	if d == nil {
		return ""
	}
	return seconds(*d)
}

// plotFlag reports whether args, up to a "--", hold the --plot flag that
// invpn sim no longer has.
func plotFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "plot" {
			return true
		}
	}
	return false
}

// progress draws a progress bar on a terminal once a run has taken more
// than two seconds of wall time.
type progress struct {
	w     io.Writer
	label string
	tty   bool
	start time.Time
	shown bool
	last  time.Time
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done, total time.Duration) {
	if !p.tty {
		return
	}
	now := time.Now()
	if now.Sub(p.start) < 2*time.Second || now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	const width = 30
	frac := float64(done) / float64(max(total, 1))
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %v/%v", p.label, strings.Repeat("#", n), strings.Repeat(" ", width-n), 100*frac,
		done.Truncate(time.Second), total)
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", len(p.label)+60))
	}
}

// startCPUProfile starts a CPU profile into file (none when file is
// empty) and returns what stops it.
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeHeapProfile writes the heap profile, after a collection, to file.
func writeHeapProfile(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("--memprofile: %w", err)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--memprofile: %w", err)
	}
	return f.Close()
}
