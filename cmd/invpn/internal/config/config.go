// Package config reads the daemon's INI configuration file, the format of
// the original invpn ([ssl] and [network] sections) extended with the
// sections this project adds ([timers], [tap], [log], [control], [metrics]).
//
// Every key has a default except the three [ssl] paths. Unknown sections and
// keys, keys given twice and bad values are errors of type *Error naming the
// file, section and key and saying what is expected; Parse reports all of
// them at once, joined with errors.Join.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/invpn/invpn/wire"
	"gopkg.in/ini.v1"
)

// Defaults of the keys that have one.
const (
	DefaultPort          = 41744
	DefaultCache         = "/var/lib/invpn/cache.json"
	DefaultMaxLinks      = 8
	DefaultMinLinks      = 2
	DefaultAnnounce      = 5 * time.Second
	DefaultConnect       = 60 * time.Second
	DefaultRouteExpiry   = 5 * time.Minute
	DefaultLinkTimeout   = 15 * time.Second
	DefaultHeartbeat     = 250 * time.Millisecond
	DefaultDeadAfter     = 750 * time.Millisecond
	DefaultRefresh       = 120 * time.Second
	DefaultBatchDelay    = 250 * time.Millisecond
	DefaultChangeDelay   = 5 * time.Millisecond
	DefaultAskWindow     = 10 * time.Millisecond
	DefaultTAPName       = "invpn%d"
	DefaultMTU           = 1500
	DefaultLogLevel      = slog.LevelInfo
	DefaultLogFormat     = "text"
	DefaultControlSocket = "/run/invpn/invpn.sock"
)

// Config is the parsed configuration of one daemon.
type Config struct {
	// File is the name the configuration was parsed from.
	File    string
	SSL     SSL
	Network Network
	Timers  Timers
	TAP     TAP
	Log     Log
	Control Control
	Metrics Metrics
}

// SSL is the [ssl] section: PEM files of this node's identity. Relative
// paths in the file are resolved against the file's directory, so these are
// absolute whenever the file's directory could be made absolute.
type SSL struct {
	Key  string // this node's private key
	Cert string // this node's certificate; its Common Name is the node's MAC
	CA   string // the CA certificate (or bundle) every member is checked against
	// CRL is the group's revocation list (`invpn cert revoke`); empty
	// for none. Optional: the mesh also passes on the newest list.
	CRL string
}

// Network is the [network] section.
type Network struct {
	Port       uint16 // TCP port to listen on, and announced to the mesh
	Cache      string // path of the peer cache file
	Init       []Seed // peers dialled whenever they are not linked
	Bootstrap  []Seed // peers dialled for their table while below min_links (docs/protocol.md#link-limit)
	NoIncoming bool   // take no incoming connections
	NoRelay    bool   // do not forward announcements (implies announcing no address)
	// AcceptUnsigned believes relayed announcements from extended links
	// without a valid signature (an upgrade from nodes that sign
	// nothing); RefuseOriginalRelays drops what original nodes relay of
	// others (docs/protocol.md#signed-announcements).
	AcceptUnsigned, RefuseOriginalRelays bool
	MaxLinks                             int          // stop dialling cached peers at this many links
	MinLinks                             int          // try to keep at least this many links up
	Listen                               []netip.Addr // addresses to listen on; empty means all addresses
	// Transports are the transports to listen on (each at Port: TCP for
	// "tls", UDP for "quic") and to dial, in the order they are tried
	// (docs/protocol.md#quic-links). Default: tls alone.
	Transports []string
}

// The transports [network] transports may name.
const (
	TransportTLS  = "tls"  // TLS over TCP (transport/tlstransport)
	TransportQUIC = "quic" // QUIC over UDP (transport/quictransport)
)

// Seed is one entry of [network] init: a peer's identity and where to dial it.
type Seed struct {
	MAC  wire.MAC
	Addr netip.AddrPort
}

// String formats s as in the configuration file: MAC@IP:PORT, with brackets
// around an IPv6 address.
func (s Seed) String() string { return s.MAC.String() + "@" + s.Addr.String() }

// Timers is the [timers] section.
type Timers struct {
	Announce    time.Duration // interval between announcements
	Connect     time.Duration // interval between rounds of dialling unlinked peers
	RouteExpiry time.Duration // a route not refreshed for this long is removed
	LinkTimeout time.Duration // a link silent for this long is closed
	Heartbeat   time.Duration // an extended link's quiet direction gets a heartbeat this often; 0: off
	DeadAfter   time.Duration // an extended link silent for this long is failed
	Refresh     time.Duration // quiet refresh between invpn nodes: routes refreshed this often; 0: a round every announce
	BatchDelay  time.Duration // the longest a relay holds refreshes to send them in one message
	ChangeDelay time.Duration // the longest a relay holds changes to send them in one message; 0: at once
	AskWindow   time.Duration // how long a node that lost a link waits for the peer's ask before asking for the peer's routes; 0: at once
}

// TAP is the [tap] section: the frame device.
type TAP struct {
	Name      string         // interface name or pattern with one %d
	MTU       int            // device MTU
	Addresses []netip.Prefix // addresses assigned to the device
	// Offload asks the kernel for TCP segmentation and checksum offload
	// on the device (default true): TCP super-frames of up to 64 KB cross
	// the mesh as one message each (docs/protocol.md#gso-frames).
	Offload bool
}

// Log is the [log] section.
type Log struct {
	Level  slog.Level // debug, info, warn or error
	Format string     // "text" or "json"
}

// Control is the [control] section.
type Control struct {
	Socket string // path of the Unix control socket used by invpn status and health
}

// Metrics is the [metrics] section.
type Metrics struct {
	Listen string // host:port of the metrics HTTP listener; empty means off
	// Map serves the live map of the mesh at /map/ on the same listener
	// (default true). MapToken is the token a browser must give for it;
	// a listener on any address but loopback needs one.
	Map      bool
	MapToken string
}

// Loopback reports whether the listener's host is a loopback address or
// "localhost": only processes of this machine can reach it.
func (m Metrics) Loopback() bool {
	host, _, err := net.SplitHostPort(m.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// MinMapToken is the shortest [metrics] map_token accepted.
const MinMapToken = 16

// Default returns the configuration of a file that sets nothing (the [ssl]
// paths stay empty).
func Default() *Config {
	return &Config{
		Network: Network{
			Port:       DefaultPort,
			Cache:      DefaultCache,
			MaxLinks:   DefaultMaxLinks,
			MinLinks:   DefaultMinLinks,
			Transports: []string{TransportTLS},
		},
		Metrics: Metrics{Map: true},
		Timers: Timers{
			Announce:    DefaultAnnounce,
			Connect:     DefaultConnect,
			RouteExpiry: DefaultRouteExpiry,
			LinkTimeout: DefaultLinkTimeout,
			Heartbeat:   DefaultHeartbeat,
			DeadAfter:   DefaultDeadAfter,
			Refresh:     DefaultRefresh,
			BatchDelay:  DefaultBatchDelay,
			ChangeDelay: DefaultChangeDelay,
			AskWindow:   DefaultAskWindow,
		},
		TAP:     TAP{Name: DefaultTAPName, MTU: DefaultMTU, Offload: true},
		Log:     Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Control: Control{Socket: DefaultControlSocket},
	}
}

// Error is a problem with the configuration file. Section and Key are empty
// when the problem is not in one section or key (a syntax error).
type Error struct {
	File    string
	Section string
	Key     string
	Msg     string // what is wrong and what is expected
	Err     error  // underlying error, if any
}

// Error formats e as `FILE: [SECTION] KEY: MSG`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	if e.Section != "" {
		b.WriteString("[" + e.Section + "]")
		if e.Key != "" {
			b.WriteString(" " + e.Key)
		}
		b.WriteString(": ")
	} else if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses data as the configuration file name. name appears in errors,
// and relative paths in data are resolved against its directory.
func Parse(name string, data []byte) (*Config, error) {
	f, err := ini.LoadSources(ini.LoadOptions{
		AllowShadows:             true, // so that a key given twice can be reported
		SpaceBeforeInlineComment: true, // so that '#' and ';' may appear in values
	}, data)
	if err != nil {
		return nil, &Error{File: name, Msg: "not a valid INI file: " + err.Error(), Err: err}
	}
	dir := filepath.Dir(name)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	p := &parser{file: name, dir: dir, cfg: Default(), seen: make(map[string]bool), bad: make(map[string]bool)}
	p.cfg.File = name
	for _, sec := range f.Sections() {
		p.section(sec)
	}
	p.finish()
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return p.cfg, nil
}

// parser accumulates a Config and the errors found while filling it.
type parser struct {
	file string
	dir  string // absolute directory of file, for relative paths
	cfg  *Config
	seen map[string]bool // "section.key" of every key present
	bad  map[string]bool // "section.key" of every key with a bad value
	errs []error
}

func (p *parser) fail(section, key, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Section: section, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// section applies every key of sec, checking that sec and its keys exist.
func (p *parser) section(sec *ini.Section) {
	name := sec.Name()
	if name == ini.DefaultSection {
		for _, k := range sec.Keys() {
			p.fail("", k.Name(), "key outside any section (put it under one of %s)", sectionList())
		}
		return
	}
	s := findSection(name)
	if s == nil {
		p.fail(name, "", "unknown section%s (want one of %s)", didYouMean(name, sectionNames()), sectionList())
		return
	}
	for _, k := range sec.Keys() {
		fld := s.find(k.Name())
		if fld == nil {
			p.fail(name, k.Name(), "unknown key%s (want one of %s)", didYouMean(k.Name(), s.keyNames()), strings.Join(s.keyNames(), ", "))
			continue
		}
		if vals := k.ValueWithShadows(); len(vals) > 1 {
			p.fail(name, k.Name(), "set %d times (want it once; join several values with commas where the key takes a list)", len(vals))
			continue
		}
		p.seen[name+"."+k.Name()] = true
		v := strings.TrimSpace(k.String())
		if v == "" && !fld.emptyOK {
			p.bad[name+"."+k.Name()] = true
			p.fail(name, k.Name(), "empty value (want %s)", fld.want)
			continue
		}
		if err := fld.set(p, v); err != nil {
			p.bad[name+"."+k.Name()] = true
			p.errs = append(p.errs, &Error{File: p.file, Section: name, Key: k.Name(), Msg: err.Error(), Err: errors.Unwrap(err)})
		}
	}
}

// finish checks what involves more than one key, when those keys are
// individually valid.
func (p *parser) finish() {
	for _, k := range []string{"key", "cert", "ca"} {
		if !p.seen["ssl."+k] {
			p.fail("ssl", k, "missing (want %s)", findSection("ssl").find(k).want)
		}
	}
	n := p.cfg.Network
	if !p.bad["network.min_links"] && !p.bad["network.max_links"] {
		if n.MinLinks > n.MaxLinks {
			key := "min_links"
			if !p.seen["network.min_links"] {
				key = "max_links"
			}
			p.fail("network", key, "min_links %d is more than max_links %d (want min_links <= max_links)", n.MinLinks, n.MaxLinks)
		}
	}
	if tm := p.cfg.Timers; tm.Heartbeat > 0 && tm.DeadAfter <= tm.Heartbeat && !p.bad["timers.heartbeat"] && !p.bad["timers.dead_after"] {
		key := "dead_after"
		if !p.seen["timers.dead_after"] {
			key = "heartbeat"
		}
		p.fail("timers", key, "dead_after %v is not above heartbeat %v (want dead_after > heartbeat: every quiet link would fail)", tm.DeadAfter, tm.Heartbeat)
	}
	if tm := p.cfg.Timers; tm.Refresh > 0 && !p.bad["timers.refresh"] {
		switch {
		case tm.Heartbeat == 0 && !p.seen["timers.refresh"]:
			// Heartbeats off: quiet refresh would let quiet links time
			// out, so the default falls back to a round every announce.
			p.cfg.Timers.Refresh = 0
		case tm.Heartbeat == 0:
			p.fail("timers", "refresh", "%v needs heartbeats, and heartbeat is 0 (want refresh = 0, or heartbeats on): a quiet link would time out", tm.Refresh)
		case tm.Refresh < tm.Announce && !p.bad["timers.announce"]:
			p.fail("timers", "refresh", "%v is below announce %v (want refresh >= announce, or 0)", tm.Refresh, tm.Announce)
		case 2*tm.Refresh > tm.RouteExpiry && !p.bad["timers.route_expiry"]:
			p.fail("timers", "refresh", "%v is more than half of route_expiry %v (want refresh <= route_expiry/2: routes would expire between refreshes)", tm.Refresh, tm.RouteExpiry)
		}
	}
	if m := p.cfg.Metrics; m.Listen != "" && m.Map && m.MapToken == "" && !m.Loopback() && !p.bad["metrics.map_token"] {
		p.fail("metrics", "map_token", "missing, and listen %q is not a loopback address (want a map_token of at least %d characters, listen on 127.0.0.1 or [::1], or map = false): the live map shows the mesh to anyone who reaches the listener", m.Listen, MinMapToken)
	}
	t := p.cfg.TAP
	if !p.bad["tap.mtu"] && t.MTU < 1280 && slices.ContainsFunc(t.Addresses, func(a netip.Prefix) bool { return a.Addr().Is6() }) {
		p.fail("tap", "mtu", "%d is too small for the IPv6 addresses in [tap] address (want at least 1280)", t.MTU)
	}
}

// didYouMean suggests the name in names that equals s but for case.
func didYouMean(s string, names []string) string {
	for _, n := range names {
		if strings.EqualFold(s, n) {
			return fmt.Sprintf(" (did you mean %q? names are case-sensitive)", n)
		}
	}
	return ""
}
