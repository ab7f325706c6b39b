package sim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// expectKind says which check an expectation asks for.
type expectKind uint8

const (
	expectConverged    expectKind = iota + 1 // converged within D
	expectReconnected                        // every pair reconnected within D of each KIND
	expectBroadcast                          // broadcast delivered exactly once
	expectUnicast                            // unicast delivered exactly once after convergence
	expectNoLoops                            // no loops
	expectHealth                             // health traceroute exact
	expectNoViolations                       // no protocol violations
	expectLost                               // at most P% of frames lost
	expectLossRun                            // unicast loss run at most D around each KIND
	expectDropped                            // a link dropped within D of each KIND
	expectLivenessMax                        // at most N links failed by liveness
	expectLivenessMin                        // at least N links failed by liveness
	expectDegree                             // degree at most N
	expectNoForged                           // no forged routes
	expectRevoked                            // revoked members cut off within D
	expectNoneDropped                        // no unicast frame dropped by a node
)

// faultKinds is the alternation of fault kinds expectations name.
const faultKinds = `(fault|cut|one_way|reset|loss|heal|crash|halt|stall|resume|restart|partition|jump)`

// Expectation is one line of a scenario's expect list.
type Expectation struct {
	Line int
	Text string
	kind expectKind
	dur  time.Duration
	arg  string  // expectReconnected, expectLossRun, expectDropped: the fault kind, or "fault" for any
	pct  float64 // expectLost: the percentage; expectLiveness*: the count
}

var expectPatterns = []struct {
	kind expectKind
	re   *regexp.Regexp
}{
	{expectConverged, regexp.MustCompile(`^converged within (\S+)$`)},
	{expectReconnected, regexp.MustCompile(`^every pair reconnected within (\S+) of each ` + faultKinds + `$`)},
	{expectBroadcast, regexp.MustCompile(`^broadcast delivered exactly once$`)},
	{expectUnicast, regexp.MustCompile(`^unicast delivered exactly once after convergence$`)},
	{expectNoLoops, regexp.MustCompile(`^no loops$`)},
	{expectHealth, regexp.MustCompile(`^health traceroute exact$`)},
	{expectNoViolations, regexp.MustCompile(`^no protocol violations$`)},
	{expectLost, regexp.MustCompile(`^at most (\S+)% of frames lost$`)},
	{expectLossRun, regexp.MustCompile(`^(?:unicast|ping) loss run at most (\S+) around each ` + faultKinds + `$`)},
	{expectDropped, regexp.MustCompile(`^a link dropped within (\S+) of each ` + faultKinds + `$`)},
	{expectLivenessMax, regexp.MustCompile(`^at most (\d+) links? failed by liveness$`)},
	{expectLivenessMin, regexp.MustCompile(`^at least (\d+) links? failed by liveness$`)},
	{expectDegree, regexp.MustCompile(`^degree at most (\d+)$`)},
	{expectNoForged, regexp.MustCompile(`^no forged routes$`)},
	{expectRevoked, regexp.MustCompile(`^revoked members cut off within (\S+)$`)},
	{expectNoneDropped, regexp.MustCompile(`^no unicast frame dropped by a node$`)},
}

// ExpectationForms lists the expectation sentences a scenario may use.
var ExpectationForms = []string{
	"converged within DURATION",
	"every pair reconnected within DURATION of each KIND (fault, or one of cut one_way reset loss heal crash halt stall resume restart partition jump)",
	"broadcast delivered exactly once",
	"unicast delivered exactly once after convergence",
	"no loops",
	"health traceroute exact",
	"no protocol violations",
	"at most N% of frames lost",
	"unicast|ping loss run at most DURATION around each KIND (of the first unicast or ping nA-nB stream)",
	"a link dropped within DURATION of each KIND",
	"at most N links failed by liveness",
	"at least N links failed by liveness",
	"degree at most N (mesh links of any node at any time)",
	"no forged routes (no node but the forger takes a forged round)",
	"revoked members cut off within DURATION (of each revoke: no link to it left)",
	"no unicast frame dropped by a node (each lost one was still in a link: one a node closed, or held by TCP past the flood window)",
}

func parseExpectation(y ynode) (Expectation, error) {
	text, err := y.str()
	if err != nil {
		return Expectation{}, err
	}
	text = strings.Join(strings.Fields(text), " ")
	e := Expectation{Line: y.line(), Text: text}
	for _, p := range expectPatterns {
		m := p.re.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		e.kind = p.kind
		switch p.kind {
		case expectConverged, expectReconnected, expectLossRun, expectDropped, expectRevoked:
			if e.dur, err = parseDuration(m[1]); err != nil {
				return e, y.errf("%v", err)
			}
			if len(m) > 2 {
				e.arg = m[2]
			}
		case expectLivenessMax, expectLivenessMin, expectDegree:
			n, err := strconv.Atoi(m[1])
			if err != nil {
				return e, y.errf("want a count, got %q", m[1])
			}
			e.pct = float64(n)
		case expectLost:
			if e.pct, err = strconv.ParseFloat(m[1], 64); err != nil {
				return e, y.errf("want a percentage, got %q", m[1])
			}
		}
		return e, nil
	}
	return e, y.errf("unknown expectation %q; want one of:\n  %s", text, strings.Join(ExpectationForms, "\n  "))
}

// check judges the expectation on a finished run's report and the
// violations its world counted. An expectation about what the checker
// checks fails when the checker checked nothing.
func (e Expectation) check(r *Report, cats map[string]int) ExpectResult {
	res := ExpectResult{Line: e.Line, Text: e.Text, OK: true}
	fail := func(format string, args ...any) {
		res.OK = false
		res.Detail = fmt.Sprintf(format, args...)
	}
	switch e.kind {
	case expectConverged:
		switch {
		case !r.Converged:
			fail("never converged")
		case time.Duration(r.ConvergeIn) > e.dur:
			fail("converged in %v", r.ConvergeIn)
		default:
			res.Detail = fmt.Sprintf("converged in %v", r.ConvergeIn)
		}
	case expectReconnected:
		n, worst := 0, time.Duration(0)
		for _, f := range r.Faults {
			if e.arg != "fault" && f.Kind != e.arg {
				continue
			}
			n++
			if !f.Recovered {
				fail("%s at %v never recovered", f.Desc, f.At)
				return res
			}
			worst = max(worst, time.Duration(f.Recovery))
		}
		switch {
		case n == 0:
			fail("no %s happened", e.arg)
		case worst > e.dur:
			fail("worst recovery %v over %d faults", worst, n)
		default:
			res.Detail = fmt.Sprintf("worst recovery %v over %d faults", worst, n)
		}
	case expectLossRun, expectDropped:
		n, worst := 0, time.Duration(0)
		what := "loss run"
		if e.kind == expectDropped {
			what = "link dropped after"
		}
		untouched := 0
		for _, f := range r.Faults {
			if e.arg != "fault" && f.Kind != e.arg {
				continue
			}
			if e.kind == expectDropped && f.Links == 0 && f.DetectIn == nil {
				untouched++ // nothing to drop: a crash of an isolated node
				continue
			}
			n++
			v := f.LossRun
			if e.kind == expectDropped {
				v = f.DetectIn
			}
			switch {
			case v == nil && e.kind == expectLossRun:
				fail("the scenario has no unicast or ping nA-nB stream to measure")
				return res
			case e.kind == expectLossRun && !strings.HasPrefix(r.Stream, strings.Fields(e.Text)[0]+" "):
				fail("the stream measured is %s", r.Stream)
				return res
			case v == nil:
				fail("%s at %v: no node dropped a link it touched", f.Desc, f.At)
				return res
			}
			worst = max(worst, time.Duration(*v))
		}
		switch {
		case n == 0:
			fail("no %s happened", e.arg)
		case worst > e.dur:
			fail("worst %s %v over %d faults", what, worst, n)
		default:
			res.Detail = fmt.Sprintf("worst %s %v over %d faults", what, worst, n)
			if untouched > 0 {
				res.Detail += fmt.Sprintf(" (%d more touched no link)", untouched)
			}
		}
	case expectDegree:
		res.Detail = fmt.Sprintf("peak degree %d (%d with directory links)", r.PeakDegree, r.PeakLinks)
		res.OK = float64(r.PeakDegree) <= e.pct
	case expectLivenessMax, expectLivenessMin:
		res.Detail = fmt.Sprintf("%d links failed by liveness", r.Liveness)
		if e.kind == expectLivenessMax && float64(r.Liveness) > e.pct || e.kind == expectLivenessMin && float64(r.Liveness) < e.pct {
			res.OK = false
		}
	case expectBroadcast, expectUnicast:
		cat, checked := "broadcast", r.Frames.BroadcastChecked
		if e.kind == expectUnicast {
			cat, checked = "unicast", r.Frames.UnicastChecked
		}
		switch {
		case cats[cat] > 0:
			fail("%d %s violations (see below)", cats[cat], cat)
		case checked == 0:
			fail("no %s frame was sent while the mesh was quiet: nothing checked", cat)
		default:
			res.Detail = fmt.Sprintf("%d frames checked in a quiet mesh", checked)
		}
	case expectNoLoops:
		if cats["loop"] > 0 {
			fail("%d unicast loops", cats["loop"])
		}
	case expectHealth:
		switch {
		case cats["health"] > 0:
			fail("%d health violations", cats["health"])
		case r.Health.Checked == 0:
			fail("no health answer checked (%d requests)", r.Health.Requests)
		default:
			res.Detail = fmt.Sprintf("%d answers checked", r.Health.Checked)
		}
	case expectNoViolations:
		if cats["protocol"] > 0 {
			fail("%d protocol violations", cats["protocol"])
		}
	case expectRevoked:
		if len(r.Revocations) == 0 {
			fail("no member was revoked")
		}
		var worst time.Duration
		for _, rv := range r.Revocations {
			if rv.CutOff == nil {
				fail("%s: still linked %v later", rv.Fault, revokeWatchFor)
				continue
			}
			worst = max(worst, time.Duration(*rv.CutOff))
		}
		if res.OK {
			res.Detail = fmt.Sprintf("%d revoked, the slowest cut off in %v", len(r.Revocations), worst)
			res.OK = worst <= e.dur
		}
	case expectNoForged:
		if cats["forged"] > 0 {
			fail("%d nodes took a forged round", cats["forged"])
		}
	case expectNoneDropped:
		fr := r.Frames
		res.Detail = fmt.Sprintf("%d unicast frames lost: %d in links a node closed, %d held by TCP past the flood window, %d dropped by nodes",
			fr.UnicastLost, fr.LostInClosedLinks, fr.LostInLinks-fr.LostInClosedLinks, fr.UnicastLost-fr.LostInLinks)
		if fr.UnicastLost > fr.LostInLinks {
			res.OK = false
		}
	case expectLost:
		pct := 0.0
		if r.Frames.Expected > 0 {
			pct = 100 * float64(r.Frames.Lost) / float64(r.Frames.Expected)
		}
		res.Detail = fmt.Sprintf("%.2f%% lost (%d of %d)", pct, r.Frames.Lost, r.Frames.Expected)
		if pct > e.pct {
			res.OK = false
		}
	}
	return res
}
