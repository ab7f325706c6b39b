package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/invpn/invpn/sim"
)

// This file runs a batch of simulations, VOPR style: every variant of a
// scenario with every seed asked for, several at a time. Each run stays
// one goroutine on its own world, so it is the same run, event for
// event, whatever else runs beside it; results are kept in the order of
// the jobs (variant, then seed), never in the order they finish.

// simJob is one run of a batch: a variant of the scenario and a seed.
type simJob struct {
	variant int // index into the batch's variants
	seed    uint64
}

// simResult is what one run gave. report is nil when the run failed to
// start (err) or panicked (panicked, err holding the panic and stack).
type simResult struct {
	report   *sim.Report
	err      error
	panicked bool
	wall     time.Duration
	// heapPerNode is the live heap the world held at the end of its run
	// (after a collection, less the heap before the run), per node; -1
	// when not measured (runs side by side share one heap).
	heapPerNode float64
}

// failed reports whether the run did not pass.
func (r simResult) failed() bool { return r.report == nil || !r.report.OK }

// runScenario runs one scenario; tests replace it to inject failures.
var runScenario = func(s *sim.Scenario, opt sim.RunOptions) (*sim.Report, error) { return s.Run(opt) }

// batch is a set of runs and how to carry them out.
type batch struct {
	vars []variant
	jobs []simJob
	// parallel is how many runs go at a time.
	parallel int
	// progress, when set, is told of each run's simulated time and of
	// each finished run; it is called from the runs' goroutines.
	progress batchProgress
	// heapProfile, when set, is the file each run writes a heap profile
	// to as it ends, while its world is live (the last run's stays).
	heapProfile string
	heapMu      sync.Mutex
	heapErr     error
}

// batchProgress watches a batch. Its methods are called from the
// goroutines of the runs, concurrently.
type batchProgress interface {
	simulated(job int, done, total time.Duration)
	finished(job int, failed bool)
}

// run carries out every job, b.parallel at a time, and returns their
// results in the order of b.jobs.
func (b *batch) run() []simResult {
	results := make([]simResult, len(b.jobs))
	parallel := max(1, min(b.parallel, len(b.jobs)))
	measureHeap := parallel == 1
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				results[k] = b.runOne(k, measureHeap)
				if b.progress != nil {
					b.progress.finished(k, results[k].failed())
				}
			}
		}()
	}
	for k := range b.jobs {
		next <- k
	}
	close(next)
	wg.Wait()
	return results
}

// runOne runs job k on the calling goroutine; a panic of the run becomes
// its result. With measureHeap (no other run beside it) it measures the
// live heap of the world once it has run its course.
func (b *batch) runOne(k int, measureHeap bool) (res simResult) {
	job := b.jobs[k]
	s := b.vars[job.variant].scen
	res.heapPerNode = -1
	var base runtime.MemStats
	var gcTime time.Duration
	if measureHeap {
		runtime.GC()
		runtime.ReadMemStats(&base)
	}
	opt := sim.RunOptions{Seed: job.seed, Progress: func(done, total time.Duration) {
		if b.progress != nil {
			b.progress.simulated(k, done, total)
		}
		if b.heapProfile != "" && done >= total {
			// The world is still live here; the last run's profile stays.
			t := time.Now()
			if err := writeHeapProfile(b.heapProfile); err != nil {
				b.heapMu.Lock()
				b.heapErr = err
				b.heapMu.Unlock()
			}
			gcTime += time.Since(t)
		}
		if measureHeap && done >= total {
			// The world is still live here: its state after the run.
			t := time.Now()
			runtime.GC()
			var st runtime.MemStats
			runtime.ReadMemStats(&st)
			gcTime += time.Since(t)
			res.heapPerNode = max(0, float64(int64(st.HeapAlloc)-int64(base.HeapAlloc))) / float64(max(1, s.Topology.Nodes))
		}
	}}
	start := time.Now()
	defer func() {
		res.wall = time.Since(start) - gcTime
		if p := recover(); p != nil {
			res.report, res.panicked = nil, true
			res.err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	res.report, res.err = runScenario(s, opt)
	return res
}

// jobSeeds returns the seeds of a batch: count seeds from first (1 when
// first is 0), or, when count is 0, the one seed given (0: the
// scenario's).
func jobSeeds(first uint64, count int) []uint64 {
	if count == 0 {
		return []uint64{first}
	}
	first = max(first, 1)
	out := make([]uint64, count)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

// makeJobs returns one job per variant and seed, by variant then seed. A
// seed of 0 becomes the scenario's own, so that every job names the seed
// it runs with.
func makeJobs(vars []variant, seeds []uint64) []simJob {
	var jobs []simJob
	for v := range vars {
		for _, seed := range seeds {
			if seed == 0 {
				seed = vars[v].scen.Seed
			}
			jobs = append(jobs, simJob{variant: v, seed: seed})
		}
	}
	return jobs
}

// replayCommand returns the command that runs job alone: its seed, its
// variant's settings and the scenario file.
func replayCommand(file string, v variant, seed uint64) string {
	args := []string{"invpn", "sim", "--seed", strconv.FormatUint(seed, 10)}
	for _, st := range v.settings {
		args = append(args, "--sweep", st.param+"="+st.value)
	}
	args = append(args, file)
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

// shellQuote quotes a for a POSIX shell when it needs it.
func shellQuote(a string) string {
	safe := a != ""
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=,:+@%", c)) {
			safe = false
		}
	}
	if safe {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// writeFailures writes, for every failed run, its failed expectations (or
// its error) and the command that replays it alone.
func writeFailures(w io.Writer, file string, b *batch, results []simResult) {
	for k, r := range results {
		if !r.failed() {
			continue
		}
		job := b.jobs[k]
		v := b.vars[job.variant]
		fmt.Fprintf(w, "\nFAIL %s seed %d", v.label, job.seed)
		if r.report != nil {
			fmt.Fprintf(w, " (trace hash %s)\n", r.report.Hash)
			for _, e := range r.report.Expect {
				if !e.OK {
					fmt.Fprintf(w, "  FAIL  %s:%d %s: %s\n", r.report.File, e.Line, e.Text, e.Detail)
				}
			}
			if r.report.ViolationN > 0 {
				fmt.Fprintf(w, "  %d violations, the first: %s\n", r.report.ViolationN, headLine(r.report.Violations[0].String()))
			}
		} else {
			fmt.Fprintln(w)
			msg := r.err.Error()
			if r.panicked {
				msg = limitLines(msg, 12)
			}
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(strings.TrimRight(msg, "\n"), "\n", "\n  "))
		}
		fmt.Fprintf(w, "  replay: %s\n", replayCommand(file, v, job.seed))
	}
}

// headLine returns s up to its first newline.
func headLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// limitLines returns the first n lines of s, noting how many it left out.
func limitLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n... (%d more lines)", len(lines)-n)
}

// writeSummary writes the line that ends a batch: runs, passed, failed,
// wall time.
func writeSummary(w io.Writer, results []simResult, parallel int, wall time.Duration) {
	failed := 0
	for _, r := range results {
		if r.failed() {
			failed++
		}
	}
	fmt.Fprintf(w, "%d runs: %d passed, %d failed, in %v of wall time (%d at a time)\n",
		len(results), len(results)-failed, failed, wall.Round(time.Millisecond), max(1, min(parallel, len(results))))
}

// lineProgress shows a batch's progress on one line of a terminal,
// redrawn at most ten times a second; on anything else it writes a line
// every 30 s. It is safe for concurrent use.
type lineProgress struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	start  time.Time
	last   time.Time
	done   []time.Duration // simulated time reached, per job
	total  []time.Duration // each job's duration
	sum    time.Duration   // of total
	runs   int             // finished
	failed int
	shown  int // width of the line drawn
}

func newLineProgress(w io.Writer, b *batch) *lineProgress {
	now := time.Now()
	p := &lineProgress{w: w, tty: isTerminal(w), start: now, last: now, done: make([]time.Duration, len(b.jobs)),
		total: make([]time.Duration, len(b.jobs))}
	for k, j := range b.jobs {
		p.total[k] = b.vars[j.variant].scen.Duration
		p.sum += p.total[k]
	}
	return p
}

func (p *lineProgress) simulated(job int, done, _ time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[job] = done
	p.draw(false)
}

func (p *lineProgress) finished(job int, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[job] = p.total[job]
	p.runs++
	if failed {
		p.failed++
	}
	p.draw(p.runs == len(p.done))
}

// draw writes the line when it is due; p.mu is held.
func (p *lineProgress) draw(final bool) {
	now := time.Now()
	every := 30 * time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if !final && now.Sub(p.last) < every {
		return
	}
	p.last = now
	var done time.Duration
	for _, d := range p.done {
		done += d
	}
	frac := float64(done) / float64(max(p.sum, 1))
	elapsed := now.Sub(p.start)
	line := fmt.Sprintf("%d/%d runs, %d failed, %.2f runs/s, %.0f%% simulated, %v", p.runs, len(p.done), p.failed,
		float64(p.runs)/max(elapsed.Seconds(), 1e-9), 100*frac, elapsed.Round(time.Second))
	if frac > 0 && frac < 1 {
		line += fmt.Sprintf(", ETA %v", time.Duration(float64(elapsed)*(1-frac)/frac).Round(time.Second))
	}
	if !p.tty {
		if !final {
			fmt.Fprintln(p.w, line)
		}
		return
	}
	pad := max(0, p.shown-len(line))
	p.shown = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	if final {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.shown))
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// barProgress adapts the progress bar of a single run to a batch of one.
type barProgress struct{ bar *progress }

func (p barProgress) simulated(_ int, done, total time.Duration) { p.bar.update(done, total) }
func (p barProgress) finished(int, bool)                         { p.bar.done() }
