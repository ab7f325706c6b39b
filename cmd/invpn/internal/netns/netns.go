// Package netns builds throwaway Linux network namespaces for `invpn demo`
// and the end-to-end tests: namespaces with one name prefix, veth pairs
// between them, processes started inside them, and ping measurements.
//
// A Lab remembers everything it created and Close removes exactly that: it
// stops the processes it started (by PID, SIGTERM then SIGKILL) and deletes
// the namespaces it added, never anything else. Every wait is bounded.
// Everything here needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the ip
// and ping commands (iproute2, iputils-ping).
package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cmdTimeout bounds one ip command.
const cmdTimeout = 10 * time.Second

// Check reports why this machine cannot run namespaces and TAP devices:
// not root, no /dev/net/tun, or ip or ping missing. nil means it can.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("not root (network namespaces and TAP devices need CAP_NET_ADMIN)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return errors.New("/dev/net/tun is missing")
	}
	for _, tool := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (iproute2, iputils-ping)", tool)
		}
	}
	return nil
}

// RandomPrefix returns base followed by five random digits, a namespace
// name prefix unlikely to be in use.
func RandomPrefix(base string) string {
	return fmt.Sprintf("%s%05d", base, rand.IntN(100000))
}

// IP runs the ip command with args (bounded in time) and returns its
// output; the error includes the output.
func IP(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Exec runs argv in namespace ns until it exits or ctx ends, and returns
// its combined output.
func Exec(ctx context.Context, ns string, argv ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	return string(out), err
}

// List returns the namespaces whose names start with prefix.
func List(prefix string) ([]string, error) {
	out, err := IP("netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// Lab is a set of namespaces sharing a name prefix, and the processes
// started in them. Its methods are safe for concurrent use, so that a
// signal handler may call Close while a step is running.
type Lab struct {
	prefix string

	mu     sync.Mutex
	names  []string
	procs  []*Proc
	closed bool
}

// NewLab returns an empty Lab whose namespaces are named prefix-SUFFIX.
func NewLab(prefix string) *Lab { return &Lab{prefix: prefix} }

// Prefix returns the Lab's name prefix.
func (l *Lab) Prefix() string { return l.prefix }

// Namespaces returns the namespaces the Lab added and has not deleted.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.names)
}

// AddNamespace creates the namespace prefix-suffix with its loopback up
// and returns its name.
func (l *Lab) AddNamespace(suffix string) (string, error) {
	name := l.prefix + "-" + suffix
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return "", errors.New("netns: lab closed")
	}
	l.mu.Unlock()
	if _, err := IP("netns", "add", name); err != nil {
		return "", err
	}
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
	if _, err := IP("-n", name, "link", "set", "lo", "up"); err != nil {
		return name, err
	}
	return name, nil
}

// Veth connects namespaces nsA and nsB with a veth pair: ifA with address
// cidrA in nsA, ifB with cidrB in nsB, both up. The pair is created inside
// the namespaces and goes away with them.
func (l *Lab) Veth(nsA, ifA, cidrA, nsB, ifB, cidrB string) error {
	steps := [][]string{
		{"link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB},
		{"-n", nsA, "addr", "add", cidrA, "dev", ifA},
		{"-n", nsB, "addr", "add", cidrB, "dev", ifB},
		{"-n", nsA, "link", "set", ifA, "up"},
		{"-n", nsB, "link", "set", ifB, "up"},
	}
	for _, s := range steps {
		if _, err := IP(s...); err != nil {
			return err
		}
	}
	return nil
}

// SetLink sets interface ifName in ns up or down.
func SetLink(ns, ifName string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	_, err := IP("-n", ns, "link", "set", ifName, state)
	return err
}

// Proc is a process started in a namespace by Lab.Start.
type Proc struct {
	Name string // for messages
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	err  error         // its exit status, valid once done is closed
	logf *os.File
}

// PID returns the process id (the program's own: ip netns exec execs it).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done returns a channel closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns the process's exit error once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Start starts argv in namespace ns with its standard output and error
// appended to logPath. The Lab stops it on Close if it is still running.
func (l *Lab) Start(name, ns, logPath string, argv ...string) (*Proc, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("netns: lab closed")
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p := &Proc{Name: name, done: make(chan struct{}), logf: logf}
	// ip netns exec execs the program: the PID is the program's.
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	l.procs = append(l.procs, p)
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Kill sends SIGKILL to the process (a crash) and waits up to 5 s for it.
func (p *Proc) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not die within 5 s of SIGKILL", p.Name, p.PID())
	}
}

// Stop sends SIGTERM and waits up to grace for a clean exit, then kills
// the process. It returns the exit error of a process that stopped on
// SIGTERM, or an error saying it had to be killed.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil // already gone: its status was for whoever killed it
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil // died of the SIGTERM before it handled signals: stopped all the same
			}
		}
		return p.err
	case <-time.After(grace):
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s (pid %d) did not stop within %v of SIGTERM; killed", p.Name, p.PID(), grace)
}

// Close stops every process the Lab started that is still running
// (SIGTERM, then SIGKILL after 5 s), deletes every namespace it added, and
// reports what failed. It may be called more than once.
func (l *Lab) Close() error {
	l.mu.Lock()
	l.closed = true
	procs, names := l.procs, l.names
	l.procs, l.names = nil, nil
	l.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(5 * time.Second); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, n := range names {
		if _, err := IP("netns", "del", n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PingResult is what a bounded ping loop saw.
type PingResult struct {
	OK    bool          // a reply arrived
	After time.Duration // from the start of the loop to the first reply
	RTT   time.Duration // the first reply's round-trip time
	Sent  int           // echo requests sent before the first reply
}

var (
	replyRE = regexp.MustCompile(`bytes from .*icmp_seq=(\d+).* time=([0-9.]+) ms`)
	rttRE   = regexp.MustCompile(`= ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+) ms`)
	lossRE  = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
)

// PingUntil pings addr from namespace ns every interval until the first
// reply, for at most limit, and reports when it came. A ping that exits
// early (the address is not configured yet: "Network is unreachable") is
// started again. A ping to an IPv6 address uses ping -6.
func PingUntil(ctx context.Context, ns, addr string, interval, limit time.Duration) (PingResult, error) {
	start := time.Now()
	deadline := start.Add(limit)
	sent := 0
	for attempt := 0; attempt < 1000; attempt++ {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		r, n, err := pingOnce(ctx, ns, addr, interval, left)
		sent += n
		if err != nil {
			return PingResult{Sent: sent}, err
		}
		if r.OK {
			r.After = time.Since(start)
			r.Sent = sent
			return r, nil
		}
		select {
		case <-ctx.Done():
			return PingResult{Sent: sent}, ctx.Err()
		case <-time.After(max(interval, 50*time.Millisecond)):
		}
	}
	return PingResult{Sent: sent}, nil
}

// pingOnce runs one ping process for at most limit and returns at its
// first reply, or when it exits. It reports how many requests it sent.
func pingOnce(ctx context.Context, ns, addr string, interval, limit time.Duration) (PingResult, int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit+2*time.Second)
	defer cancel()
	args := []string{"netns", "exec", ns, "ping", "-n", "-i", secs(interval), "-W", "1",
		"-w", strconv.Itoa(max(1, int((limit+time.Second-1)/time.Second)))}
	if strings.Contains(addr, ":") {
		args = append(args, "-6")
	}
	cmd := exec.CommandContext(ctx, "ip", append(args, addr)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return PingResult{}, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return PingResult{}, 0, err
	}
	defer func() {
		cmd.Process.Kill() // our own ping, by PID
		cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		m := replyRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		seq, _ := strconv.Atoi(m[1])
		ms, _ := strconv.ParseFloat(m[2], 64)
		return PingResult{OK: true, RTT: time.Duration(ms * float64(time.Millisecond))}, seq, nil
	}
	if ctx.Err() != nil && time.Since(start) < limit {
		return PingResult{}, 0, ctx.Err()
	}
	return PingResult{}, int(time.Since(start) / interval), nil
}

// PingStats is the summary of a fixed number of pings.
type PingStats struct {
	Sent, Received int
	Min, Avg, Max  time.Duration
	Output         string
}

// Ping sends count pings from ns to addr, interval apart, and returns
// ping's summary. It is bounded by count*interval plus a few seconds.
func Ping(ctx context.Context, ns, addr string, count int, interval time.Duration) (PingStats, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(count)*interval+5*time.Second)
	defer cancel()
	args := []string{"ping", "-n", "-c", strconv.Itoa(count), "-i", secs(interval), "-W", "1"}
	if strings.Contains(addr, ":") {
		args = append(args, "-6")
	}
	out, err := Exec(ctx, ns, append(args, addr)...)
	st := PingStats{Output: out}
	if m := lossRE.FindStringSubmatch(out); m != nil {
		st.Sent, _ = strconv.Atoi(m[1])
		st.Received, _ = strconv.Atoi(m[2])
	}
	if m := rttRE.FindStringSubmatch(out); m != nil {
		st.Min, st.Avg, st.Max = msDur(m[1]), msDur(m[2]), msDur(m[3])
	}
	if err != nil && st.Received == 0 {
		return st, fmt.Errorf("ping %s from %s: %w", addr, ns, err)
	}
	return st, nil
}

// Stream is a ping running in the background, recording when each reply
// arrived, to measure an outage.
type Stream struct {
	cmd        *exec.Cmd
	interval   time.Duration
	mu         sync.Mutex
	replies    []Reply
	sent, recv int // ping's summary, once it printed it
	summary    bool
	done       chan struct{}
}

// Reply is one echo reply of a Stream.
type Reply struct {
	Seq int
	At  time.Time // when the reply was read
	RTT time.Duration
}

// StartStream pings addr from ns every interval for at most limit (and so
// at most limit/interval times).
func StartStream(ns, addr string, interval, limit time.Duration) (*Stream, error) {
	return StartStreamN(ns, addr, interval, max(1, int(limit/interval)), limit)
}

// StartStreamN pings addr from ns every interval until count replies came
// or limit passed (ping -c count -w limit), so it sends at most
// limit/interval requests. Summary tells how many it sent.
func StartStreamN(ns, addr string, interval time.Duration, count int, limit time.Duration) (*Stream, error) {
	args := []string{"netns", "exec", ns, "ping", "-n", "-i", secs(interval), "-W", "1",
		"-c", strconv.Itoa(count), "-w", strconv.Itoa(int((limit + time.Second - 1) / time.Second))}
	if strings.Contains(addr, ":") {
		args = append(args, "-6")
	}
	s := &Stream{cmd: exec.Command("ip", append(args, addr)...), interval: interval, done: make(chan struct{})}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := replyRE.FindStringSubmatch(sc.Text()); m != nil {
				seq, _ := strconv.Atoi(m[1])
				ms, _ := strconv.ParseFloat(m[2], 64)
				s.mu.Lock()
				s.replies = append(s.replies, Reply{Seq: seq, At: time.Now(), RTT: time.Duration(ms * float64(time.Millisecond))})
				s.mu.Unlock()
			} else if m := lossRE.FindStringSubmatch(sc.Text()); m != nil {
				s.mu.Lock()
				s.sent, _ = strconv.Atoi(m[1])
				s.recv, _ = strconv.Atoi(m[2])
				s.summary = true
				s.mu.Unlock()
			}
		}
		io.Copy(io.Discard, out)
		s.cmd.Wait()
	}()
	return s, nil
}

// Replies returns the replies so far.
func (s *Stream) Replies() []Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.replies)
}

// RepliesAfter returns how many replies were read after t.
func (s *Stream) RepliesAfter(t time.Time) int {
	n := 0
	for _, r := range s.Replies() {
		if r.At.After(t) {
			n++
		}
	}
	return n
}

// Summary returns the requests sent and the replies received as ping
// counted them when it exited; ok is false before it printed them.
func (s *Stream) Summary() (sent, received int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, s.recv, s.summary
}

// Done returns a channel closed when the ping has exited.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Stop ends the ping (by its PID) and waits for it.
func (s *Stream) Stop() {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(2 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Outage describes the largest gap in a Stream's replies after a moment.
type Outage struct {
	Gap  time.Duration // time between the last reply before the gap and the first after it
	Lost int           // sequence numbers missing in the gap
	From time.Time     // the last reply before the gap
}

// OutageAround returns the largest gap between consecutive replies that
// ends after t (an outage caused by an event at t).
func (s *Stream) OutageAround(t time.Time) (Outage, bool) {
	rs := s.Replies()
	var best Outage
	found := false
	for i := 1; i < len(rs); i++ {
		if !rs[i].At.After(t) {
			continue
		}
		g := rs[i].At.Sub(rs[i-1].At)
		if !found || g > best.Gap {
			best = Outage{Gap: g, Lost: rs[i].Seq - rs[i-1].Seq - 1, From: rs[i-1].At}
			found = true
		}
	}
	return best, found
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

func msDur(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Millisecond))
}
