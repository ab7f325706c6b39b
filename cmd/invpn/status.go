package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/config"
	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/healthreport"
)

// socketFlags are the flags that find a daemon's control socket.
type socketFlags struct {
	config, socket string
}

func (s *socketFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.config, "c", "", "the daemon's config `FILE`, to find its [control] socket")
	fs.StringVar(&s.socket, "socket", "", "the control socket `PATH` (default "+config.DefaultControlSocket+")")
}

// path returns the socket path: --socket, else the config's, else the
// default.
func (s *socketFlags) path() (string, error) {
	switch {
	case s.socket != "":
		return s.socket, nil
	case s.config != "":
		cfg, err := config.Load(s.config)
		if err != nil {
			return "", err
		}
		return cfg.Control.Socket, nil
	}
	return config.DefaultControlSocket, nil
}

// parseFlags parses args with fs, printing usage on -h.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage string) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var sf socketFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON, for scripts")
	if err := parseFlags(fs, args, stderr, "Usage: invpn status [-c FILE | --socket PATH] [--json]\n\n"+
		"Shows a running daemon's links, routes and drop counters.\n"); err != nil {
		return err
	}
	path, err := sf.path()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, path, control.Request{Op: "status"})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp.Status)
	}
	return writeStatus(stdout, resp.Status)
}

// writeStatus prints a status snapshot as tables.
func writeStatus(w io.Writer, st *control.Status) error {
	fmt.Fprintf(w, "invpn %s  node %s  up %v\n", st.Version, st.MAC, st.Now.Sub(st.Started).Round(time.Second))
	writeTrust(w, st)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "LINK PEER\tADDRESS\tTRANSPORT\tDIR\tPROTO\tUP\tLIVENESS\tRTT\tCERT\tFRAMES IN/OUT\tBYTES IN/OUT\tQUEUE DROPS\n")
	for _, l := range st.Links {
		dir, proto := "in", "seed"
		if l.Dialed {
			dir = "out"
		}
		if l.Extended {
			proto = "invpn/1"
		}
		if l.Directory {
			proto = "directory" // a table for the cache, then closed
		}
		live, rtt := l.Liveness, "-"
		if live == "" {
			live = "-" // no heartbeats: the link timeout alone
		}
		if l.RTTSeconds > 0 {
			rtt = time.Duration(l.RTTSeconds * float64(time.Second)).Round(10 * time.Microsecond).String()
		}
		transport := l.Transport
		if transport == "" {
			transport = "-" // a daemon from before transports were named
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\t%d/%d\t%d/%d\t%d\n", l.Peer, l.Addr, transport, dir, proto,
			st.Now.Sub(l.Up).Round(time.Second), live, rtt, certDays(l.CertExpires, st.Now), l.FramesIn, l.FramesOut, l.BytesIn, l.BytesOut, l.QueueDrops)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "ROUTE TO\tNEXT HOP\tHOPS\tAGE\tBACKUPS\n")
	for _, r := range st.Routes {
		hops := "?"
		if r.Hops >= 0 {
			hops = fmt.Sprint(r.Hops)
		}
		var backups []string
		for _, b := range r.Backups {
			backups = append(backups, b.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", r.Target, r.NextHop, hops,
			st.Now.Sub(r.Refreshed).Round(time.Millisecond), strings.Join(backups, " "))
	}
	tw.Flush()
	fmt.Fprintln(w)
	var reasons []string
	for k := range st.Drops {
		reasons = append(reasons, k)
	}
	slices.Sort(reasons)
	fmt.Fprintf(w, "drops:")
	for _, k := range reasons {
		fmt.Fprintf(w, "  %s %d", k, st.Drops[k])
	}
	fmt.Fprintln(w)
	if len(st.Counters) > 0 {
		var names []string
		for k := range st.Counters {
			names = append(names, k)
		}
		slices.Sort(names)
		fmt.Fprintf(w, "counters:")
		for _, k := range names {
			fmt.Fprintf(w, "  %s %d", k, st.Counters[k])
		}
		fmt.Fprintln(w)
	}
	// Connections refused before they authenticated (docs/security.md).
	refused := make([]string, 0, len(st.PreauthRefused))
	for k := range st.PreauthRefused {
		refused = append(refused, k)
	}
	slices.Sort(refused)
	fmt.Fprintf(w, "pre-auth:  in handshake %d  refused", st.PreauthInProgress)
	if len(refused) == 0 {
		fmt.Fprintf(w, " 0")
	}
	for _, k := range refused {
		fmt.Fprintf(w, "  %s %d", k, st.PreauthRefused[k])
	}
	_, err := fmt.Fprintln(w)
	return err
}

// writeTrust prints this node's certificate and the revocation list in
// force, and a warning for every certificate, this node's or a
// neighbour's, that expires within control.ExpiryWarning.
func writeTrust(w io.Writer, st *control.Status) {
	if c := st.Certificate; c != nil {
		fmt.Fprintf(w, "certificate: serial %s, expires %s (%s)\n", c.Serial, c.NotAfter.UTC().Format(time.DateOnly), certDays(c.NotAfter, st.Now))
	}
	if r := st.Revocation; r != nil {
		fmt.Fprintf(w, "revocation list: number %d, %d revoked, issued %s by %s\n", r.Number, r.Revoked, r.Issued.UTC().Format(time.DateTime), r.Issuer)
	} else {
		fmt.Fprintln(w, "revocation list: none")
	}
	if c := st.Certificate; c != nil && control.ExpiresSoon(c.NotAfter, st.Now) {
		fmt.Fprintf(w, "WARNING: this node's certificate expires on %s: renew it (invpn cert renew) and send the daemon SIGHUP\n", c.NotAfter.UTC().Format(time.DateOnly))
	}
	if n := st.Counters["unsigned_from_original"]; n > 0 {
		fmt.Fprintf(w, "WARNING: %d announcements of other members relayed by original nodes were believed unsigned ([network] refuse_original_relays refuses them)\n", n)
	}
	if n := st.Counters["forged_signatures"]; n > 0 {
		fmt.Fprintf(w, "WARNING: %d forged signatures of announcements refused (a member announced another's MAC; see the log's drops)\n", n)
	}
	for _, l := range st.Links {
		if control.ExpiresSoon(l.CertExpires, st.Now) {
			fmt.Fprintf(w, "WARNING: the certificate of neighbour %s expires on %s\n", l.Peer, l.CertExpires.UTC().Format(time.DateOnly))
		}
	}
}

// certDays says how long a certificate valid until notAfter has left:
// "in 3650 days", "expires in 12 days!", "expired!"; "-" for none.
func certDays(notAfter, now time.Time) string {
	switch left := notAfter.Sub(now); {
	case notAfter.IsZero():
		return "-"
	case left <= 0:
		return "expired!"
	case left < control.ExpiryWarning:
		return fmt.Sprintf("expires in %d days!", int(left.Hours()/24))
	default:
		return fmt.Sprintf("%d days left", int(left.Hours()/24))
	}
}

func runHealth(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	var sf socketFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON, for scripts")
	dotFile := fs.String("dot", "", "write a Graphviz graph of the mesh to `FILE`")
	timeout := fs.Duration("timeout", control.DefaultHealthTimeout, "how long to collect answers")
	if err := parseFlags(fs, args, stderr, "Usage: invpn health [-c FILE | --socket PATH] [--timeout 2s] [--dot FILE] [--json]\n\n"+
		"Floods a health request (0x02) through the mesh from the local daemon, collects\n"+
		"the answers (0x03) and prints one row per node: hops out and back, round-trip\n"+
		"time, links and routes. It flags nodes that did not answer, paths that differ\n"+
		"out and back, and routes through neighbours that are not linked.\n"); err != nil {
		return err
	}
	path, err := sf.path()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout+10*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, path, control.Request{Op: "health", TimeoutMS: int(timeout.Milliseconds())})
	if err != nil {
		return err
	}
	h := resp.Health
	rep := healthreport.Build(h.Requester, h.ID, h.Start, h.Answers, h.Routes)
	if *dotFile != "" {
		b, err := rep.DOT()
		if err != nil {
			return err
		}
		if err := os.WriteFile(*dotFile, b, 0o644); err != nil {
			return err
		}
	}
	if *asJSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}
