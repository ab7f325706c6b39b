package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/invpn/invpn/wire"
)

// sectionSchema lists the keys of one section.
type sectionSchema struct {
	name   string
	fields []field
}

// field is one key: what it expects and how its value is stored.
type field struct {
	key     string
	want    string // what a value must be, for messages about empty values
	emptyOK bool   // an empty value is meaningful (an empty list, "off")
	// set parses v (trimmed) into p.cfg. Its error message says what is
	// wrong with v and what is expected.
	set func(p *parser, v string) error
}

// schema is every section and key the file may contain, in the order of the
// sample file.
var schema = []sectionSchema{
	{"ssl", []field{
		{key: "key", want: "the path of this node's PEM private key",
			set: func(p *parser, v string) error { p.cfg.SSL.Key = p.path(v); return nil }},
		{key: "cert", want: "the path of this node's PEM certificate",
			set: func(p *parser, v string) error { p.cfg.SSL.Cert = p.path(v); return nil }},
		{key: "ca", want: "the path of the PEM CA certificate or bundle",
			set: func(p *parser, v string) error { p.cfg.SSL.CA = p.path(v); return nil }},
		{key: "crl", want: "the path of the group's revocation list (PEM or DER), or empty for none", emptyOK: true,
			set: func(p *parser, v string) error {
				if v != "" {
					p.cfg.SSL.CRL = p.path(v)
				}
				return nil
			}},
	}},
	{"network", []field{
		{key: "port", want: "a port number 1-65535",
			set: func(p *parser, v string) error { return into(&p.cfg.Network.Port)(parsePort(v)) }},
		{key: "cache", want: "the path of the peer cache file",
			set: func(p *parser, v string) error { p.cfg.Network.Cache = p.path(v); return nil }},
		{key: "init", want: "MAC@IP:PORT, comma separated", emptyOK: true,
			set: func(p *parser, v string) error { return into(&p.cfg.Network.Init)(parseSeeds(v)) }},
		{key: "bootstrap", want: "MAC@IP:PORT, comma separated", emptyOK: true,
			set: func(p *parser, v string) error { return into(&p.cfg.Network.Bootstrap)(parseSeeds(v)) }},
		{key: "no_incoming", want: "true or false",
			set: func(p *parser, v string) error { return into(&p.cfg.Network.NoIncoming)(parseBool(v)) }},
		{key: "no_relay", want: "true or false",
			set: func(p *parser, v string) error { return into(&p.cfg.Network.NoRelay)(parseBool(v)) }},
		{key: "accept_unsigned", want: "true or false",
			set: func(p *parser, v string) error { return into(&p.cfg.Network.AcceptUnsigned)(parseBool(v)) }},
		{key: "refuse_original_relays", want: "true or false",
			set: func(p *parser, v string) error { return into(&p.cfg.Network.RefuseOriginalRelays)(parseBool(v)) }},
		{key: "max_links", want: "a number of links 1-1024",
			set: func(p *parser, v string) error {
				return into(&p.cfg.Network.MaxLinks)(parseInt(v, 1, 1024, "a number of links"))
			}},
		{key: "min_links", want: "a number of links 0-1024",
			set: func(p *parser, v string) error {
				return into(&p.cfg.Network.MinLinks)(parseInt(v, 0, 1024, "a number of links"))
			}},
		{key: "listen", want: "IP addresses, comma separated", emptyOK: true,
			set: func(p *parser, v string) error { return into(&p.cfg.Network.Listen)(parseAddrs(v)) }},
		{key: "transports", want: "tls, quic, or both in the order to dial them (quic, tls)",
			set: func(p *parser, v string) error { return into(&p.cfg.Network.Transports)(parseTransports(v)) }},
	}},
	{"timers", []field{
		durationField("announce", func(c *Config) *time.Duration { return &c.Timers.Announce }),
		durationField("connect", func(c *Config) *time.Duration { return &c.Timers.Connect }),
		durationField("route_expiry", func(c *Config) *time.Duration { return &c.Timers.RouteExpiry }),
		durationField("link_timeout", func(c *Config) *time.Duration { return &c.Timers.LinkTimeout }),
		durationOrZeroField("heartbeat", "250ms", "to turn heartbeats off", "for off",
			func(c *Config) *time.Duration { return &c.Timers.Heartbeat }),
		durationField("dead_after", func(c *Config) *time.Duration { return &c.Timers.DeadAfter }),
		durationOrZeroField("refresh", "60s", "for a round every announce interval", "for a round every announce interval",
			func(c *Config) *time.Duration { return &c.Timers.Refresh }),
		durationField("batch_delay", func(c *Config) *time.Duration { return &c.Timers.BatchDelay }),
		durationOrZeroField("change_delay", "5ms", "to send each change at once", "for at once",
			func(c *Config) *time.Duration { return &c.Timers.ChangeDelay }),
		durationOrZeroField("ask_window", "10ms", "to ask at once", "for at once",
			func(c *Config) *time.Duration { return &c.Timers.AskWindow }),
	}},
	{"tap", []field{
		{key: "name", want: "an interface name of at most 15 bytes, optionally with one %d",
			set: func(p *parser, v string) error { return into(&p.cfg.TAP.Name)(parseIfName(v)) }},
		{key: "mtu", want: "an MTU 68-65535",
			set: func(p *parser, v string) error { return into(&p.cfg.TAP.MTU)(parseInt(v, 68, 65535, "an MTU")) }},
		{key: "address", want: "CIDR prefixes, comma separated", emptyOK: true,
			set: func(p *parser, v string) error { return into(&p.cfg.TAP.Addresses)(parsePrefixes(v)) }},
		{key: "offload", want: "true or false",
			set: func(p *parser, v string) error { return into(&p.cfg.TAP.Offload)(parseBool(v)) }},
	}},
	{"log", []field{
		{key: "level", want: "debug, info, warn or error",
			set: func(p *parser, v string) error { return into(&p.cfg.Log.Level)(parseLevel(v)) }},
		{key: "format", want: "text or json",
			set: func(p *parser, v string) error {
				if v != "text" && v != "json" {
					return fmt.Errorf("%q is not a log format (want text or json)", v)
				}
				p.cfg.Log.Format = v
				return nil
			}},
	}},
	{"control", []field{
		{key: "socket", want: "the path of the control socket",
			set: func(p *parser, v string) error {
				path := p.path(v)
				// sun_path holds 108 bytes including the terminating NUL.
				if len(path) > 107 {
					return fmt.Errorf("%q is %d bytes long as an absolute path (want at most 107 for a Unix socket)", path, len(path))
				}
				p.cfg.Control.Socket = path
				return nil
			}},
	}},
	{"metrics", []field{
		{key: "listen", want: "HOST:PORT", emptyOK: true,
			set: func(p *parser, v string) error {
				if v != "" {
					if _, port, err := net.SplitHostPort(v); err != nil {
						return fmt.Errorf("%q is not HOST:PORT (want e.g. 127.0.0.1:9742 or [::1]:9742; empty for off): %w", v, err)
					} else if _, err := parsePort(port); err != nil {
						return fmt.Errorf("%q: port %w", v, err)
					}
				}
				p.cfg.Metrics.Listen = v
				return nil
			}},
		{key: "map", want: "true or false",
			set: func(p *parser, v string) error { return into(&p.cfg.Metrics.Map)(parseBool(v)) }},
		{key: "map_token", want: fmt.Sprintf("a token of at least %d characters", MinMapToken), emptyOK: true,
			set: func(p *parser, v string) error {
				if v != "" && len(v) < MinMapToken {
					return fmt.Errorf("%d characters long (want at least %d: the token is all that guards the map)", len(v), MinMapToken)
				}
				if i := strings.IndexFunc(v, func(r rune) bool { return !urlSafe(r) }); i >= 0 {
					return fmt.Errorf("has %q at byte %d (want letters, digits and - . _ ~ only: the token goes into the map's address)", v[i:i+1], i)
				}
				p.cfg.Metrics.MapToken = v
				return nil
			}},
	}},
}

// into returns a function that stores a parsed value in dst unless parsing
// failed, and passes the error on: set: ... { return into(&dst)(parse(v)) }.
func into[T any](dst *T) func(T, error) error {
	return func(v T, err error) error {
		if err == nil {
			*dst = v
		}
		return err
	}
}

// durationOrZeroField is a setting that takes a duration like example or
// 0, which means what zeroWant says (in the field's description) and
// zeroErr (in an error).
func durationOrZeroField(key, example, zeroWant, zeroErr string, dst func(*Config) *time.Duration) field {
	return field{key: key, want: "a duration like " + example + ", or 0 " + zeroWant,
		set: func(p *parser, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("%q is not a duration (want e.g. %s, or 0 %s)", v, example, zeroErr)
			}
			*dst(p.cfg) = d
			return nil
		}}
}

func durationField(key string, dst func(*Config) *time.Duration) field {
	return field{key: key, want: "a positive duration like 5s or 1m30s",
		set: func(p *parser, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%q is not a positive duration (want e.g. 5s, 1m30s)", v)
			}
			*dst(p.cfg) = d
			return nil
		}}
}

func findSection(name string) *sectionSchema {
	for i := range schema {
		if schema[i].name == name {
			return &schema[i]
		}
	}
	return nil
}

func (s *sectionSchema) find(key string) *field {
	for i := range s.fields {
		if s.fields[i].key == key {
			return &s.fields[i]
		}
	}
	return nil
}

func (s *sectionSchema) keyNames() []string {
	names := make([]string, len(s.fields))
	for i, f := range s.fields {
		names[i] = f.key
	}
	return names
}

func sectionNames() []string {
	names := make([]string, len(schema))
	for i, s := range schema {
		names[i] = s.name
	}
	return names
}

// sectionList formats the section names as "[ssl], [network], ...".
func sectionList() string {
	return "[" + strings.Join(sectionNames(), "], [") + "]"
}

// path resolves v against the configuration file's directory.
func (p *parser) path(v string) string {
	if filepath.IsAbs(v) {
		return filepath.Clean(v)
	}
	return filepath.Join(p.dir, v)
}

func parsePort(v string) (uint16, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number (want 1-65535)", v)
	}
	return uint16(n), nil
}

func parseInt(v string, lo, hi int, what string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not %s (want %d-%d)", v, what, lo, hi)
	}
	return n, nil
}

// urlSafe reports whether r stands for itself in a URL's query.
func urlSafe(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~", r)
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (want true or false)", v)
}

// list splits a comma-separated value into trimmed, non-empty items.
func list(v string) []string {
	var items []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// parseSeeds parses MAC@IP:PORT entries.
func parseSeeds(v string) ([]Seed, error) {
	const want = "want MAC@IP:PORT like 02:50:56:00:00:01@192.0.2.1:41744 or 02:50:56:00:00:01@[fd00::1]:41744"
	var seeds []Seed
	for _, item := range list(v) {
		macStr, addrStr, ok := strings.Cut(item, "@")
		if !ok {
			return nil, fmt.Errorf("%q has no '@' (%s)", item, want)
		}
		mac, err := wire.ParseMAC(strings.TrimSpace(macStr))
		if err != nil {
			return nil, fmt.Errorf("%q: bad MAC (%s): %w", item, want, err)
		}
		if mac.IsGroup() || mac.IsZero() {
			return nil, fmt.Errorf("%q: %s is not a node's MAC (want a unicast MAC: the first octet must be even)", item, mac)
		}
		ap, err := netip.ParseAddrPort(strings.TrimSpace(addrStr))
		if err != nil {
			return nil, fmt.Errorf("%q: bad address (%s, brackets around IPv6): %w", item, want, err)
		}
		if ap.Port() == 0 {
			return nil, fmt.Errorf("%q: port 0 (want a port number 1-65535)", item)
		}
		for _, s := range seeds {
			if s.MAC == mac {
				return nil, fmt.Errorf("%s is listed twice (want each peer once)", mac)
			}
		}
		seeds = append(seeds, Seed{MAC: mac, Addr: ap})
	}
	return seeds, nil
}

func parseAddrs(v string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, item := range list(v) {
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address (want addresses like 192.0.2.1 or fd00::1, comma separated, without ports; empty for all): %w", item, err)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

func parseTransports(v string) ([]string, error) {
	var out []string
	for _, item := range list(v) {
		t := strings.ToLower(item)
		if t != TransportTLS && t != TransportQUIC {
			return nil, fmt.Errorf("%q is not a transport (want tls, quic, or both in the order to dial them, like quic, tls)", item)
		}
		if slices.Contains(out, t) {
			return nil, fmt.Errorf("%s is listed twice (want each transport once)", t)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("no transport (want tls, quic, or both in the order to dial them)")
	}
	return out, nil
}

func parsePrefixes(v string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for _, item := range list(v) {
		pfx, err := netip.ParsePrefix(item)
		if err != nil || pfx.Addr().Is4In6() || pfx.Addr().Zone() != "" {
			return nil, fmt.Errorf("%q is not an address with a prefix length (want CIDR like 10.78.0.1/24 or fd00:78::1/64, comma separated)", item)
		}
		for _, q := range prefixes {
			if q.Addr() == pfx.Addr() {
				return nil, fmt.Errorf("%s is listed twice (want each address once)", pfx.Addr())
			}
		}
		prefixes = append(prefixes, pfx)
	}
	return prefixes, nil
}

// parseIfName checks an interface name as the kernel does, allowing one %d.
func parseIfName(v string) (string, error) {
	switch {
	case len(v) > 15:
		return "", fmt.Errorf("%q is %d bytes long (want an interface name of at most 15 bytes)", v, len(v))
	case v == "." || v == ".." || strings.ContainsAny(v, "/: \t"):
		return "", fmt.Errorf("%q is not an interface name (no '/', ':' or spaces)", v)
	case strings.Count(v, "%") > 1 || strings.Contains(v, "%") && !strings.Contains(v, "%d"):
		return "", fmt.Errorf("%q is not an interface name (want at most one %%d and no other %%)", v)
	}
	return v, nil
}

func parseLevel(v string) (slog.Level, error) {
	switch v {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, errors.New(strconv.Quote(v) + " is not a log level (want debug, info, warn or error)")
}
