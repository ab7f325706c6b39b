// Command invpn-decode decodes a stream of framed invpn protocol messages
// written as hex and prints each message, with a summary of any Ethernet
// frame it carries. It is a separate command so that the daemon does not
// link gopacket, whose layer tables cost every process several MiB.
package main

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/invpn/invpn/wire"
	"github.com/invpn/invpn/wire/ethinfo"
)

// sampleStream is a short framed exchange written by hand from the packet
// table: what invpn-decode shows when given no input.
//
//go:embed testdata/sample-stream.hex
var sampleStream string

func main() {
	if err := runDecode(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if err != errUsage {
			fmt.Fprintf(os.Stderr, "invpn-decode: %v\n", err)
		}
		os.Exit(1)
	}
}

// errUsage ends a run whose flags were wrong.
var errUsage = errors.New("usage")

func runDecode(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("invpn-decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "read hex from `FILE` ('-' for standard input); default: a built-in sample exchange")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: invpn-decode [-f FILE]\n\n"+
			"Decodes a stream of framed invpn messages (2-byte length, type, body) written\n"+
			"as hex (whitespace and '#' comments ignored) and prints each message.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return errUsage
	}
	text := sampleStream
	switch *file {
	case "":
		fmt.Fprintln(stdout, "# no -f given: decoding the built-in sample exchange")
	case "-":
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
		text = string(b)
	default:
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		text = string(b)
	}
	raw, err := parseHex(text)
	if err != nil {
		return err
	}
	return printStream(stdout, raw)
}

// parseHex strips comments and whitespace and decodes the rest.
func parseHex(text string) ([]byte, error) {
	var sb strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		return nil, fmt.Errorf("input is not hex: %w", err)
	}
	return b, nil
}

func printStream(w io.Writer, raw []byte) error {
	r := wire.NewReader(bytes.NewReader(raw))
	in := ethinfo.NewInspector()
	for i := 1; ; i++ {
		msg, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		m, err := wire.Decode(msg)
		if err != nil {
			fmt.Fprintf(w, "%d: %d bytes: rejected: %v\n", i, len(msg), err)
			continue
		}
		fmt.Fprintf(w, "%d: %s %s\n", i, m.Type(), describe(m, in))
	}
}

// describe formats the fields of a decoded message for people.
func describe(m wire.Message, in *ethinfo.Inspector) string {
	switch m := m.(type) {
	case *wire.InitialInfo:
		return fmt.Sprintf("id=%d mac=%s port=%d", m.ID, m.MAC, m.Port)
	case *wire.Info:
		return fmt.Sprintf("id=%d mac=%s port=%d addr=%v", m.ID, m.MAC, m.Port, m.Addr)
	case *wire.InfoPath:
		path := "unknown"
		if m.PathKnown {
			path = fmt.Sprint(m.Path)
		}
		return fmt.Sprintf("path=%s id=%d mac=%s port=%d addr=%v", path, m.ID, m.MAC, m.Port, m.Addr)
	case *wire.HealthRequest:
		return fmt.Sprintf("id=%d requester=%s traceroute=%v", m.ID, m.Requester, m.Traceroute)
	case *wire.HealthResponse:
		return fmt.Sprintf("dest=%s origin=%s id=%d links=%v routes=%v traceroute=%v reverse=%v",
			m.Dest, m.Origin, m.ID, m.Links, m.Routes, m.Traceroute, m.Reverse)
	case *wire.TargetedFrame:
		return frameSummary(in, m.Frame)
	case *wire.LimitedFrame:
		return fmt.Sprintf("hops=%d %s", m.Hops, frameSummary(in, m.Frame))
	case *wire.GroupFrame:
		return fmt.Sprintf("id=%d %s", m.ID, frameSummary(in, m.Frame))
	case *wire.BroadcastFrame:
		return fmt.Sprintf("id=%d %s", m.ID, frameSummary(in, m.AppendEthernet(nil)))
	}
	return ""
}

func frameSummary(in *ethinfo.Inspector, frame []byte) string {
	s, err := in.Inspect(frame)
	if err != nil {
		return err.Error()
	}
	return s.String()
}
