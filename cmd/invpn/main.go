// Command invpn is the invpn mesh VPN: the daemon, the simulator, and the
// operator's tools. Run `invpn help` for the list of subcommands.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// command is one subcommand of invpn.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the daemon: invpn run -c FILE", runRun},
		{"ca", "create a group CA: invpn ca init --dir DIR", runCA},
		{"cert", "issue, revoke, list or renew member certificates: invpn cert SUBCOMMAND --ca DIR", runCert},
		{"sim", "run a scenario in the deterministic mesh simulator", runSim},
		{"status", "show a running daemon's links, routes and drops", runStatus},
		{"health", "trace the mesh from the local daemon and report every node", runHealth},
		{"demo", "run a throwaway mesh in network namespaces and show failover (root)", runDemo},
		{"version", "print the version", func([]string, io.Writer, io.Writer) error {
			fmt.Println("invpn", version)
			return nil
		}},
	}
}

// errUsage and errHelp end a command whose flags were wrong (exit 2) or
// that printed its help (exit 0).
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func usage(w io.Writer) {
	fmt.Fprintf(w, "invpn %s: a decentralized layer-2 mesh VPN\n\nUsage: invpn COMMAND [flags]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `invpn COMMAND -h` for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run(args[1:], stdout, stderr); err != nil {
				if err == errUsage {
					return 2
				}
				if err == errHelp {
					return 0
				}
				fmt.Fprintf(stderr, "invpn %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "invpn: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
