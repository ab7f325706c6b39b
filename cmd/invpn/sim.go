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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/invpn/invpn/scenarios"
	"github.com/invpn/invpn/sim"
)

// defaultScenario is what `invpn sim` runs when given no file.
const defaultScenario = "wan-3site.yaml"

// errExpectations is returned when a scenario's expectations fail.
var errExpectations = errors.New("expectations failed")

// sweepParams are the parameters --sweep can vary.
var sweepParams = map[string]func(s *sim.Scenario, v string) error{
	"announce": func(s *sim.Scenario, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("announce interval %q: want a duration like 5s", v)
		}
		s.Timers.Announce = d
		return nil
	},
	"max_links": func(s *sim.Scenario, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("max_links %q: want a positive integer", v)
		}
		s.Timers.MaxLinks = n
		if s.Timers.MinLinks > n {
			s.Timers.MinLinks = n
		}
		return nil
	},
	"heartbeat": func(s *sim.Scenario, v string) error {
		d, err := time.ParseDuration(v)
		if v == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 {
			return fmt.Errorf("heartbeat interval %q: want a duration like 250ms, or 0 for no heartbeats", v)
		}
		if d == 0 {
			d = -1 // off
		}
		s.Timers.Heartbeat = d
		if dead := s.Timers.DeadAfter; d > 0 && dead > 0 && dead <= d {
			return fmt.Errorf("heartbeat interval %q: not below dead_after %v", v, dead)
		}
		if d > 0 && s.Timers.DeadAfter == 0 && 3*d > 750*time.Millisecond {
			s.Timers.DeadAfter = 3 * d // keep three intervals, as the default
		}
		return nil
	},
	"latency": func(s *sim.Scenario, v string) error {
		lo, hi, ok := strings.Cut(v, "..")
		if !ok {
			hi = lo
		}
		a, err1 := time.ParseDuration(lo)
		b, err2 := time.ParseDuration(hi)
		if err1 != nil || err2 != nil || b < a {
			return fmt.Errorf("latency %q: want a duration or a range like 2ms..20ms", v)
		}
		s.LAN.Latency = sim.Range{Min: a, Max: b}
		return nil
	},
}

func runSim(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("sim", flag.ContinueOnError)
	fset.SetOutput(stderr)
	seed := fset.Uint64("seed", 0, "run with `SEED` instead of the scenario's seed")
	asJSON := fset.Bool("json", false, "print the report as JSON")
	asCSV := fset.Bool("csv", false, "print the summary as CSV (one row per run)")
	sweep := fset.String("sweep", "", "run once per value of a parameter: `PARAM=v1,v2,...` with PARAM one of announce, max_links, heartbeat, latency")
	faultRows := fset.Bool("faults", false, "with --csv: one row per fault (its time and recovery) instead of one per run")
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

To plot, write CSV and give it to the separate command invpn-plot (go run
./cmd/invpn-plot), which draws an SVG: --csv --faults for the recovery
after each fault over time, --csv --sweep for failover against the swept
parameter.

Flags (one or two dashes):
`, defaultScenario, strings.Join(embeddedNames(), ", "))
		fset.PrintDefaults()
		fmt.Fprintf(stderr, `
Examples:
  invpn sim
  invpn sim --seed 42 scenarios/ring-300.yaml
  invpn sim --sweep announce=1s,2s,5s,10s --csv > sweep.csv
  invpn sim --sweep heartbeat=0,250ms diamond.yaml
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
	if *asJSON && *asCSV {
		fmt.Fprintln(stderr, "invpn sim: --json and --csv exclude each other")
		return errUsage
	}
	if *faultRows && !*asCSV {
		fmt.Fprintln(stderr, "invpn sim: --faults is a form of --csv")
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

	type run struct {
		label  string
		report *sim.Report
		wall   time.Duration
	}
	var runs []run
	values := []string{""}
	param := ""
	if *sweep != "" {
		p, list, ok := strings.Cut(*sweep, "=")
		set, known := sweepParams[p]
		if !ok || !known || list == "" {
			fmt.Fprintf(stderr, "invpn sim: --sweep %q: want PARAM=v1,v2,... with PARAM one of announce, max_links, heartbeat, latency\n", *sweep)
			return errUsage
		}
		param, values = p, strings.Split(list, ",")
		for _, v := range values {
			if err := set(&sim.Scenario{}, v); err != nil {
				return fmt.Errorf("--sweep: %w", err)
			}
		}
	}
	for _, v := range values {
		s := *base
		label := base.Name
		if param != "" {
			if err := sweepParams[param](&s, v); err != nil {
				return fmt.Errorf("--sweep: %w", err)
			}
			label = param + "=" + v
		}
		bar := newProgress(stderr, label)
		start := time.Now()
		r, err := s.Run(sim.RunOptions{Seed: *seed, Progress: bar.update})
		bar.done()
		if err != nil {
			return err
		}
		runs = append(runs, run{label: label, report: r, wall: time.Since(start)})
	}

	ok := true
	for _, r := range runs {
		ok = ok && r.report.OK
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if param == "" {
			err = enc.Encode(runs[0].report)
		} else {
			var all []*sim.Report
			for _, r := range runs {
				all = append(all, r.report)
			}
			err = enc.Encode(all)
		}
	case *asCSV && *faultRows:
		cw := csv.NewWriter(stdout)
		_ = cw.Write([]string{"run", "kind", "desc", "at_s", "recovered", "recovery_s", "broken_pairs",
			"link_dropped_s", "link_back_s", "loss_run_s"})
		for _, r := range runs {
			for _, f := range r.report.Faults {
				_ = cw.Write([]string{r.label, f.Kind, f.Desc, seconds(f.At), strconv.FormatBool(f.Recovered),
					seconds(f.Recovery), strconv.Itoa(f.BrokenPairs), optSeconds(f.DetectIn), optSeconds(f.LinkBackIn),
					optSeconds(f.LossRun)})
			}
		}
		cw.Flush()
		err = cw.Error()
	case *asCSV:
		cw := csv.NewWriter(stdout)
		_ = cw.Write([]string{"run", "seed", "nodes", "simulated_s", "converged", "converge_s", "faults", "unrecovered",
			"failover_p50_s", "failover_p95_s", "failover_max_s", "frames_expected", "delivered", "lost", "duplicated",
			"loops", "control_msgs_per_node_s", "control_bytes_per_node_s", "heartbeat_msgs_per_node_s",
			"liveness_failures", "user_timeouts", "events", "wall_s", "ok"})
		for _, r := range runs {
			rp := r.report
			_ = cw.Write([]string{r.label, strconv.FormatUint(rp.Seed, 10), strconv.Itoa(rp.Nodes), seconds(rp.Duration),
				strconv.FormatBool(rp.Converged), seconds(rp.ConvergeIn), strconv.Itoa(rp.Failover.Faults),
				strconv.Itoa(rp.Failover.Unrecovered), seconds(rp.Failover.P50), seconds(rp.Failover.P95), seconds(rp.Failover.Max),
				strconv.FormatUint(rp.Frames.Expected, 10), strconv.FormatUint(rp.Frames.Delivered, 10),
				strconv.FormatUint(rp.Frames.Lost, 10), strconv.FormatUint(rp.Frames.Duplicated, 10),
				strconv.FormatUint(rp.Frames.Loops, 10), strconv.FormatFloat(rp.ControlMsgs, 'f', 2, 64),
				strconv.FormatFloat(rp.ControlB, 'f', 0, 64), strconv.FormatFloat(rp.Heartbeats, 'f', 2, 64),
				strconv.FormatUint(rp.Liveness, 10), strconv.FormatUint(rp.UserTO, 10), strconv.FormatUint(rp.Totals.Events, 10),
				strconv.FormatFloat(r.wall.Seconds(), 'f', 2, 64), strconv.FormatBool(rp.OK)})
		}
		cw.Flush()
		err = cw.Error()
	case param != "":
		fmt.Fprintf(stdout, "sweep of %s over scenario %s (%s)\n\n", param, base.Name, name)
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, param+"\tconverge\tfailover p50\tp95\tmax\tlost\tctl msgs/node/s\theartbeats\tctl bytes/node/s\tliveness fails\tuser timeouts\texpectations")
		for i, r := range runs {
			rp := r.report
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
			fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%v\t%.2f%%\t%.2f\t%.2f\t%.0f\t%d\t%d\t%s\n", values[i], conv, rp.Failover.P50, rp.Failover.P95,
				rp.Failover.Max, lost, rp.ControlMsgs, rp.Heartbeats, rp.ControlB, rp.Liveness, rp.UserTO, verdict)
		}
		err = tw.Flush()
	default:
		r := runs[0]
		fmt.Fprint(stdout, r.report.Text())
		fmt.Fprintf(stdout, "speed     %.1f s of wall time: %.0f simulated s per wall s, %.0f events/s\n", r.wall.Seconds(),
			time.Duration(r.report.Duration).Seconds()/max(r.wall.Seconds(), 1e-9), float64(r.report.Totals.Events)/max(r.wall.Seconds(), 1e-9))
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if !ok {
		return errExpectations
	}
	return nil
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
