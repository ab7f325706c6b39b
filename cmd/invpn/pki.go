package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/wire"
)

const caUsage = `Usage: invpn ca init --dir DIR

Creates a new group CA in DIR: DIR/ca.crt and DIR/ca.key (ECDSA P-256, mode
0600). Every member of a mesh holds a certificate issued by one CA; a new CA
starts a new group, so an existing CA is never overwritten. Keep ca.key off
the members.
`

// certIssueUsage, certRevokeUsage, certListUsage and certRenewUsage are
// the usage texts of the cert subcommands; certUsage is all of them.
const (
	certIssueUsage = `Usage: invpn cert issue --ca DIR --mac MAC|random --out DIR2

Issues a member certificate signed by the CA in DIR. Its Common Name is the
member's MAC (the node's identity and the MAC of its TAP device); "random"
picks a random locally administered unicast MAC. Writes DIR2/node.crt,
DIR2/node.key (mode 0600) and a copy of the CA certificate as DIR2/ca.crt,
the three files of the [ssl] section. Existing node files are never
overwritten. The CA keeps a copy of the certificate in DIR/issued.
`
	certRevokeUsage = `Usage: invpn cert revoke --ca DIR TARGET...

Revokes certificates of the CA in DIR and writes its revocation list,
DIR/crl.pem, with every earlier revocation and a CRL number one higher. A
TARGET is a MAC, revoking every certificate DIR/issued holds for that
member, or a serial in hex (as cert list or openssl x509 -serial print it),
revoked even when DIR/issued does not hold it. Give the list to one member
as [ssl] crl and send it SIGHUP; the mesh passes it on.
`
	certListUsage = `Usage: invpn cert list --ca DIR

Lists the certificates the CA in DIR issued (DIR/issued) and any serial
DIR/crl.pem revokes that is not among them: serial, MAC, end of validity
and status (valid, expires in N days, expired, or revoked and when).
`
	certRenewUsage = `Usage: invpn cert renew --ca DIR --out DIR2

Renews the member certificate in DIR2/node.crt: issues a new one from the
CA in DIR for the same MAC and the same key, DIR2/node.key, valid from now,
and replaces DIR2/node.crt with it atomically. The old certificate stays
valid until it expires or is revoked by its serial; send the daemon SIGHUP
to use the new one.
`
	certUsage = certIssueUsage + "\n" + certRevokeUsage + "\n" + certListUsage + "\n" + certRenewUsage
)

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

// certCommand is one subcommand of `invpn cert`.
type certCommand struct {
	name string
	run  func(args []string, stdout, stderr io.Writer) error
}

func certCommands() []certCommand {
	return []certCommand{
		{"issue", runCertIssue},
		{"revoke", runCertRevoke},
		{"list", runCertList},
		{"renew", runCertRenew},
	}
}

// runCert implements `invpn cert`: it dispatches to a subcommand, or
// prints the usage of all of them.
func runCert(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		for _, c := range certCommands() {
			if c.name == args[0] {
				return c.run(args[1:], stdout, stderr)
			}
		}
		if !isHelp(args[0]) {
			fmt.Fprintf(stderr, "invpn cert: unknown subcommand %q\n\n", args[0])
		}
	}
	fmt.Fprint(stderr, certUsage)
	if len(args) > 0 && isHelp(args[0]) {
		return errHelp
	}
	return errUsage
}

// runCertIssue implements `invpn cert issue`.
func runCertIssue(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cert issue", flag.ContinueOnError)
	caDir := fs.String("ca", "", "the CA's `DIR`ectory (required)")
	macStr := fs.String("mac", "", "the member's `MAC`, or random (required)")
	out := fs.String("out", "", "the `DIR`ectory to write the member's files to (required)")
	if err := parseFlags(fs, args, stderr, certIssueUsage); err != nil {
		return err
	}
	if *caDir == "" || *macStr == "" || *out == "" {
		fmt.Fprint(stderr, "invpn cert issue: --ca, --mac and --out are required\n\n")
		fs.Usage()
		return errUsage
	}
	mac, err := parseIssueMAC(*macStr)
	if err != nil {
		return err
	}
	if err := pki.IssueNode(*caDir, mac, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "issued %s: %s, %s, %s\n", mac, filepath.Join(*out, pki.NodeCertFile),
		filepath.Join(*out, pki.NodeKeyFile), filepath.Join(*out, pki.CACertFile))
	return nil
}

// parseIssueMAC reads the --mac of cert issue: a unicast MAC, or random.
func parseIssueMAC(s string) (wire.MAC, error) {
	if s == "random" {
		return pki.RandomMAC(nil), nil
	}
	m, err := wire.ParseMAC(s)
	if err != nil {
		return wire.MAC{}, fmt.Errorf("--mac %q: %w (want a MAC like 02:50:56:00:00:01, or random)", s, err)
	}
	if m.IsGroup() || m.IsZero() {
		return wire.MAC{}, fmt.Errorf("--mac %s is not a unicast MAC (want the first octet even, e.g. 02:50:56:00:00:01)", m)
	}
	return m, nil
}

// runCertRevoke implements `invpn cert revoke`.
func runCertRevoke(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cert revoke", flag.ContinueOnError)
	caDir := fs.String("ca", "", "the CA's `DIR`ectory (required)")
	targets, err := parseFlagsAndArgs(fs, args, stderr, certRevokeUsage)
	if err != nil {
		return err
	}
	if *caDir == "" || len(targets) == 0 {
		fmt.Fprint(stderr, "invpn cert revoke: --ca and at least one TARGET are required\n\n")
		fs.Usage()
		return errUsage
	}
	rev, err := pki.Revoke(*caDir, targets, time.Now())
	if err != nil {
		return err
	}
	for _, c := range rev.Certs {
		fmt.Fprintln(stdout, describeRevoked(c))
	}
	if !rev.Written {
		fmt.Fprintf(stdout, "nothing new to revoke: %s unchanged (CRL number %d, %d revoked)\n", rev.CRLPath, rev.Number, rev.Entries)
		return nil
	}
	fmt.Fprintf(stdout, "wrote %s (CRL number %d, %d revoked)\n", rev.CRLPath, rev.Number, rev.Entries)
	fmt.Fprintln(stdout, "give it to one member as [ssl] crl and send it SIGHUP; the mesh passes it on")
	return nil
}

// describeRevoked is revoke's line for one certificate: "revoked SERIAL
// (MAC)", "already revoked SERIAL (MAC) on DATE", with "not in the
// records" for the MAC of a serial the CA has no record of.
func describeRevoked(c pki.RevokedCert) string {
	who := c.MAC
	if !c.InRecords {
		who = "not in the records"
	}
	if c.Already {
		return fmt.Sprintf("already revoked %s (%s) on %s", pki.SerialString(c.Serial), who, c.RevokedAt.UTC().Format(time.DateOnly))
	}
	return fmt.Sprintf("revoked %s (%s)", pki.SerialString(c.Serial), who)
}

// runCertList implements `invpn cert list`.
func runCertList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cert list", flag.ContinueOnError)
	caDir := fs.String("ca", "", "the CA's `DIR`ectory (required)")
	if err := parseFlags(fs, args, stderr, certListUsage); err != nil {
		return err
	}
	if *caDir == "" {
		fmt.Fprint(stderr, "invpn cert list: --ca is required\n\n")
		fs.Usage()
		return errUsage
	}
	certs, err := pki.List(*caDir)
	if err != nil {
		return err
	}
	return printCertList(stdout, certs, time.Now())
}

// printCertList writes List's certificates as a table; "-" stands for the
// MAC and validity of a serial known only from the CRL.
func printCertList(w io.Writer, certs []pki.Issued, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SERIAL\tMAC\tNOT AFTER\tSTATUS\n")
	unrecorded := false
	for _, c := range certs {
		mac, notAfter := c.MAC, c.NotAfter.UTC().Format(time.DateOnly)
		if !c.InRecords {
			mac, notAfter, unrecorded = "-", "-", true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", pki.SerialString(c.Serial), mac, notAfter, c.Status(now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if unrecorded {
		fmt.Fprintln(w, "(-: revoked by serial, not in the records; made elsewhere, with openssl say)")
	}
	return nil
}

// runCertRenew implements `invpn cert renew`.
func runCertRenew(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cert renew", flag.ContinueOnError)
	caDir := fs.String("ca", "", "the CA's `DIR`ectory (required)")
	out := fs.String("out", "", "the member's `DIR`ectory, holding node.crt and node.key (required)")
	if err := parseFlags(fs, args, stderr, certRenewUsage); err != nil {
		return err
	}
	if *caDir == "" || *out == "" {
		fmt.Fprint(stderr, "invpn cert renew: --ca and --out are required\n\n")
		fs.Usage()
		return errUsage
	}
	certPath := filepath.Join(*out, pki.NodeCertFile)
	old, err := pki.LoadKeyPair(certPath, filepath.Join(*out, pki.NodeKeyFile))
	if err != nil {
		return err
	}
	cert, err := pki.RenewNode(*caDir, *out, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "renewed %s: %s (serial %s, valid until %s); send the daemon SIGHUP to use it\n",
		cert.Subject.CommonName, certPath, pki.SerialString(cert.SerialNumber), cert.NotAfter.UTC().Format(time.DateOnly))
	oldSerial := pki.SerialString(old.Leaf.SerialNumber)
	fmt.Fprintf(stdout, "the old certificate (serial %s) stays valid until %s; to end it: invpn cert revoke --ca %s %s\n",
		oldSerial, old.Leaf.NotAfter.UTC().Format(time.DateOnly), *caDir, oldSerial)
	return nil
}

// parseFlagsAndArgs is parseFlags for a command that also takes
// arguments: flags may come before, between or after them. It returns
// the arguments.
func parseFlagsAndArgs(fs *flag.FlagSet, args []string, stderr io.Writer, usage string) ([]string, error) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, errHelp
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func isHelp(s string) bool { return s == "-h" || s == "--help" || s == "-help" || s == "help" }
