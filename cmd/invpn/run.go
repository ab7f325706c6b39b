package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/daemon"
	"github.com/invpn/invpn/cmd/invpn/internal/sdnotify"
	"github.com/invpn/invpn/tapdev"
)

const runUsage = `Usage: invpn run -c FILE

Runs the invpn daemon: opens the TAP device named in [tap] with the MAC of the
certificate in [ssl] cert, listens for links on [network] port (unless
no_incoming), dials the [network] init seeds and the cached peers, and routes
Ethernet frames through the mesh until it gets SIGTERM or SIGINT.

It answers ` + "`invpn status`" + ` and ` + "`invpn health`" + ` on the [control] socket (root
only) and, when [metrics] listen is set, serves Prometheus metrics at
http://LISTEN/metrics. Both stop with the daemon.

SIGHUP reloads the certificate, key, CA and the init seeds from FILE without
taking the TAP device down: links that are up stay, new links use the new
files, and the listeners stay open (the new identity takes over in place,
so no link is refused meanwhile). Other changes need a restart.

Needs CAP_NET_ADMIN (run as root) and /dev/net/tun. Logs go to standard error,
as text or JSON ([log] format) at [log] level. See invpn.conf.sample for every
key of FILE.

As a systemd service (cmd/invpn/invpn.service, Type=notify) it tells the
service manager over $NOTIFY_SOCKET when it is ready (its TAP is up and it
listens), reloading (SIGHUP) and stopping.
`

func runRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "the configuration `FILE` (required)")
	if err := parseFlags(fs, args, stderr, runUsage); err != nil {
		return err
	}
	if *cfgPath == "" {
		fmt.Fprint(stderr, "invpn run: -c FILE is required\n\n")
		fs.Usage()
		return errUsage
	}
	// Catch signals before anything is opened: a SIGTERM during start-up
	// waits in the channel and stops the daemon cleanly once it runs.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	opts, err := tlsOptions(cfg, *cfgPath, log) // runconfig.go
	if err != nil {
		return err
	}
	mac := opts.Node.MAC
	tap, err := tapdev.Open(tapdev.Config{Name: cfg.TAP.Name, MAC: mac, MTU: cfg.TAP.MTU, Addresses: cfg.TAP.Addresses, Offload: cfg.TAP.Offload})
	if err != nil {
		return err
	}
	if cfg.TAP.Offload && !tap.Offloads() {
		log.Warn("TAP offloads refused by the kernel: every frame crosses the mesh MSS-sized", "tap", tap.Name())
	}
	opts.TAP, opts.Signals = tap, sigs
	if opts.Notify, err = serviceNotify(log); err != nil {
		tap.Close()
		return err
	}
	d, err := daemon.New(opts)
	if err != nil {
		tap.Close()
		return err
	}
	defer tuneRuntime(log)()
	stop, err := cpuProfile(os.Getenv("INVPN_CPUPROFILE"), log)
	if err != nil {
		return err
	}
	defer stop()
	return d.Run(context.Background())
}

// cpuProfile starts a CPU profile into path until the returned function
// is called (the daemon stops), for measuring the data path
// (cmd/invpn/bench): INVPN_CPUPROFILE=FILE in the daemon's environment,
// where %p in FILE stands for the daemon's process id (several daemons,
// one environment). An empty path profiles nothing.
func cpuProfile(path string, log *slog.Logger) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("INVPN_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("INVPN_CPUPROFILE: %w", err)
	}
	log.Info("writing a CPU profile", "file", path)
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Warn("CPU profile", "file", path, "err", err)
		}
	}, nil
}

// serviceNotify returns the daemon's Options.Notify when it runs as a
// Type=notify service ($NOTIFY_SOCKET set, see dist/invpn.service); nil
// otherwise. A state that cannot be sent is logged: the daemon runs on.
func serviceNotify(log *slog.Logger) (func(string), error) {
	n, err := sdnotify.FromEnv()
	if n == nil || err != nil {
		return nil, err
	}
	return func(state string) {
		if err := n.Notify(state); err != nil {
			log.Warn("cannot tell the service manager", "err", err)
		}
	}, nil
}

// tuneRuntime sets GOMAXPROCS to 1 for the daemon process on a machine
// with at most onePCPUs CPUs, unless the GOMAXPROCS environment variable
// chooses, and returns a function that restores the previous value.
//
// The data path is a pipeline of goroutines (TAP reader → loop → link
// writer, link reader → loop → TAP writer) that hand each frame on. With
// one P a hand-off puts the receiver in the P's run queue and the next
// switch is a cheap goroutine switch on the same thread; with more Ps the
// runtime wakes an idle thread (futex) for nearly every hand-off. On this
// project's 2-core benchmark machine (cmd/invpn/bench/netns.sh, iperf3
// and both daemons sharing the cores) one P moved 27 % more over 2 nodes
// and 44 % more over a 3-node line before TAP offloads; with offloads and
// 64 KB super-frames (2026-12-03, four interleaved 5-s runs each) the
// throughput was the same (3.41 against 3.37 Gbit/s) and one P spent
// 16 % less CPU per GB (2.80 against 3.32 s). On a larger machine the
// runtime's default stays, so that links do not share one core for their
// encryption; that case has not been measured here.
func tuneRuntime(log *slog.Logger) (restore func()) {
	if os.Getenv("GOMAXPROCS") != "" || runtime.NumCPU() > onePCPUs {
		return func() {}
	}
	prev := runtime.GOMAXPROCS(1)
	log.Debug("GOMAXPROCS set to 1 for the data path", "was", prev)
	return func() { runtime.GOMAXPROCS(prev) }
}

// onePCPUs is the most CPUs on which the daemon runs with one P.
const onePCPUs = 2

// newLogger returns the logger [log] asks for, writing to w.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
