package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/wire"
)

const caUsage = `Usage: invpn ca init --dir DIR

Creates a new group CA in DIR: DIR/ca.crt and DIR/ca.key (ECDSA P-256, mode
0600). Every member of a mesh holds a certificate issued by one CA; a new CA
starts a new group, so an existing CA is never overwritten. Keep ca.key off
the members.
`

const certUsage = `Usage: invpn cert issue --ca DIR --mac MAC|random --out DIR2

Issues a member certificate signed by the CA in DIR. Its Common Name is the
member's MAC (the node's identity and the MAC of its TAP device); "random"
picks a random locally administered unicast MAC. Writes DIR2/node.crt,
DIR2/node.key (mode 0600) and a copy of the CA certificate as DIR2/ca.crt,
the three files of the [ssl] section. Existing node files are never
overwritten.
`

// subcommand checks that args start with the one subcommand name; else
// it prints usage and returns errHelp (for -h) or errUsage.
func subcommand(args []string, name, usage string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == name {
		return nil
	}
	fmt.Fprint(stderr, usage)
	if len(args) > 0 && isHelp(args[0]) {
		return errHelp
	}
	return errUsage
}

// runCA implements `invpn ca init`.
func runCA(args []string, stdout, stderr io.Writer) error {
	if err := subcommand(args, "init", caUsage, stderr); err != nil {
		return err
	}
	fs := flag.NewFlagSet("ca init", flag.ContinueOnError)
	dir := fs.String("dir", "", "the `DIR`ectory of the new CA (required)")
	if err := parseFlags(fs, args[1:], stderr, caUsage); err != nil {
		return err
	}
	if *dir == "" {
		fmt.Fprint(stderr, "invpn ca init: --dir is required\n\n")
		fs.Usage()
		return errUsage
	}
	if err := pki.InitCA(*dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created the group CA: %s and %s\n",
		filepath.Join(*dir, pki.CACertFile), filepath.Join(*dir, pki.CAKeyFile))
	return nil
}

// runCert implements `invpn cert issue`.
func runCert(args []string, stdout, stderr io.Writer) error {
	if err := subcommand(args, "issue", certUsage, stderr); err != nil {
		return err
	}
	fs := flag.NewFlagSet("cert issue", flag.ContinueOnError)
	caDir := fs.String("ca", "", "the CA's `DIR`ectory (required)")
	macStr := fs.String("mac", "", "the member's `MAC`, or random (required)")
	out := fs.String("out", "", "the `DIR`ectory to write the member's files to (required)")
	if err := parseFlags(fs, args[1:], stderr, certUsage); err != nil {
		return err
	}
	if *caDir == "" || *macStr == "" || *out == "" {
		fmt.Fprint(stderr, "invpn cert issue: --ca, --mac and --out are required\n\n")
		fs.Usage()
		return errUsage
	}
	var mac wire.MAC
	if *macStr == "random" {
		mac = pki.RandomMAC(nil)
	} else {
		m, err := wire.ParseMAC(*macStr)
		if err != nil {
			return fmt.Errorf("--mac %q: %w (want a MAC like 02:50:56:00:00:01, or random)", *macStr, err)
		}
		if m.IsGroup() || m.IsZero() {
			return fmt.Errorf("--mac %s is not a unicast MAC (want the first octet even, e.g. 02:50:56:00:00:01)", m)
		}
		mac = m
	}
	if err := pki.IssueNode(*caDir, mac, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "issued %s: %s, %s, %s\n", mac, filepath.Join(*out, pki.NodeCertFile),
		filepath.Join(*out, pki.NodeKeyFile), filepath.Join(*out, pki.CACertFile))
	return nil
}

func isHelp(s string) bool { return s == "-h" || s == "--help" || s == "-help" || s == "help" }
