package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/invpn/invpn/wire"
	"gopkg.in/ini.v1"
)

const file = "/etc/invpn/invpn.conf"

// sslSection is the smallest valid configuration.
const sslSection = "[ssl]\nkey = node.key\ncert = node.crt\nca = /etc/ca/ca.crt\n"

// base is the configuration sslSection parses to.
func base() *Config {
	c := Default()
	c.File = file
	c.SSL = SSL{Key: "/etc/invpn/node.key", Cert: "/etc/invpn/node.crt", CA: "/etc/ca/ca.crt"}
	return c
}

func mac(s string) wire.MAC {
	m, err := wire.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestDefaults(t *testing.T) {
	c, err := Parse(file, []byte(sslSection))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File:    file,
		SSL:     SSL{Key: "/etc/invpn/node.key", Cert: "/etc/invpn/node.crt", CA: "/etc/ca/ca.crt"},
		Network: Network{Port: 41744, Cache: "/var/lib/invpn/cache.json", MaxLinks: 8, MinLinks: 2, Transports: []string{"tls"}},
		Timers: Timers{Announce: 5 * time.Second, Connect: time.Minute, RouteExpiry: 5 * time.Minute, LinkTimeout: 15 * time.Second,
			Heartbeat: 250 * time.Millisecond, DeadAfter: 750 * time.Millisecond, Refresh: 2 * time.Minute, BatchDelay: 250 * time.Millisecond,
			ChangeDelay: 5 * time.Millisecond, AskWindow: 10 * time.Millisecond},
		TAP:     TAP{Name: "invpn%d", MTU: 1500, Offload: true},
		Log:     Log{Level: slog.LevelInfo, Format: "text"},
		Control: Control{Socket: "/run/invpn/invpn.sock"},
		Metrics: Metrics{Map: true},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

// TestValues sets every key (docs/protocol.md#identity-and-links lists the
// original's [ssl] and [network] options) and checks where it lands.
func TestValues(t *testing.T) {
	tests := []struct {
		name string
		text string // appended to sslSection
		want func(c *Config)
	}{
		{"ssl paths absolute and relative", "", func(c *Config) {}},
		{"crl relative", "crl = revoked.pem", func(c *Config) { c.SSL.CRL = "/etc/invpn/revoked.pem" }},
		{"crl empty", "crl =", func(c *Config) {}},
		{"port", "[network]\nport = 1234", func(c *Config) { c.Network.Port = 1234 }},
		{"port max", "[network]\nport = 65535", func(c *Config) { c.Network.Port = 65535 }},
		{"cache relative", "[network]\ncache = state/cache.json", func(c *Config) { c.Network.Cache = "/etc/invpn/state/cache.json" }},
		{"cache absolute", "[network]\ncache = /tmp/x/../c.json", func(c *Config) { c.Network.Cache = "/tmp/c.json" }},
		{"init IPv4", "[network]\ninit = 02:50:56:00:00:01@192.0.2.1:41744", func(c *Config) {
			c.Network.Init = []Seed{{mac("02:50:56:00:00:01"), netip.MustParseAddrPort("192.0.2.1:41744")}}
		}},
		{"init IPv6 and several", "[network]\ninit = 02:50:56:00:00:01@[fd00::1]:41744 , 02-50-56-00-00-02@10.0.0.2:7,", func(c *Config) {
			c.Network.Init = []Seed{
				{mac("02:50:56:00:00:01"), netip.MustParseAddrPort("[fd00::1]:41744")},
				{mac("02:50:56:00:00:02"), netip.MustParseAddrPort("10.0.0.2:7")},
			}
		}},
		{"init empty", "[network]\ninit =", func(c *Config) {}},
		{"bootstrap", "[network]\nbootstrap = 02:50:56:00:00:09@192.0.2.9:41744", func(c *Config) {
			c.Network.Bootstrap = []Seed{{mac("02:50:56:00:00:09"), netip.MustParseAddrPort("192.0.2.9:41744")}}
		}},
		{"no_incoming", "[network]\nno_incoming = true", func(c *Config) { c.Network.NoIncoming = true }},
		{"no_incoming yes", "[network]\nno_incoming = Yes", func(c *Config) { c.Network.NoIncoming = true }},
		{"no_relay", "[network]\nno_relay = 1", func(c *Config) { c.Network.NoRelay = true }},
		{"no_relay false", "[network]\nno_relay = false", func(c *Config) {}},
		{"transports", "[network]\ntransports = QUIC, tls", func(c *Config) { c.Network.Transports = []string{"quic", "tls"} }},
		{"quic alone", "[network]\ntransports = quic", func(c *Config) { c.Network.Transports = []string{"quic"} }},
		{"max_links", "[network]\nmax_links = 100", func(c *Config) { c.Network.MaxLinks = 100 }},
		{"min_links", "[network]\nmin_links = 0", func(c *Config) { c.Network.MinLinks = 0 }},
		{"min equals max", "[network]\nmin_links = 3\nmax_links = 3", func(c *Config) { c.Network.MinLinks, c.Network.MaxLinks = 3, 3 }},
		{"listen", "[network]\nlisten = 192.0.2.1, fd00::1", func(c *Config) {
			c.Network.Listen = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fd00::1")}
		}},
		{"announce", "[timers]\nannounce = 1500ms", func(c *Config) { c.Timers.Announce = 1500 * time.Millisecond }},
		{"connect", "[timers]\nconnect = 2m", func(c *Config) { c.Timers.Connect = 2 * time.Minute }},
		{"route_expiry", "[timers]\nroute_expiry = 1h", func(c *Config) { c.Timers.RouteExpiry = time.Hour }},
		{"link_timeout", "[timers]\nlink_timeout = 1m30s", func(c *Config) { c.Timers.LinkTimeout = 90 * time.Second }},
		{"heartbeat", "[timers]\nheartbeat = 100ms\ndead_after = 2s", func(c *Config) {
			c.Timers.Heartbeat, c.Timers.DeadAfter = 100*time.Millisecond, 2*time.Second
		}},
		{"heartbeat off", "[timers]\nheartbeat = 0", func(c *Config) { c.Timers.Heartbeat, c.Timers.Refresh = 0, 0 }},
		{"refresh", "[timers]\nrefresh = 2m\nbatch_delay = 100ms\nchange_delay = 0", func(c *Config) {
			c.Timers.Refresh, c.Timers.BatchDelay, c.Timers.ChangeDelay = 2*time.Minute, 100*time.Millisecond, 0
		}},
		{"ask_window", "[timers]\nask_window = 25ms", func(c *Config) { c.Timers.AskWindow = 25 * time.Millisecond }},
		{"ask_window off", "[timers]\nask_window = 0", func(c *Config) { c.Timers.AskWindow = 0 }},
		{"refresh off", "[timers]\nrefresh = 0", func(c *Config) { c.Timers.Refresh = 0 }},
		{"tap name", "[tap]\nname = vpn0", func(c *Config) { c.TAP.Name = "vpn0" }},
		{"tap name pattern", "[tap]\nname = mesh%d", func(c *Config) { c.TAP.Name = "mesh%d" }},
		{"tap mtu", "[tap]\nmtu = 9000", func(c *Config) { c.TAP.MTU = 9000 }},
		{"tap small mtu without IPv6", "[tap]\nmtu = 576\naddress = 10.78.0.1/24", func(c *Config) {
			c.TAP.MTU = 576
			c.TAP.Addresses = []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")}
		}},
		{"tap address", "[tap]\naddress = 10.78.0.1/24, fd00:78::1/64", func(c *Config) {
			c.TAP.Addresses = []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24"), netip.MustParsePrefix("fd00:78::1/64")}
		}},
		{"log level debug", "[log]\nlevel = debug", func(c *Config) { c.Log.Level = slog.LevelDebug }},
		{"log level warn", "[log]\nlevel = warn", func(c *Config) { c.Log.Level = slog.LevelWarn }},
		{"log level error", "[log]\nlevel = error", func(c *Config) { c.Log.Level = slog.LevelError }},
		{"log level info", "[log]\nlevel = info", func(c *Config) {}},
		{"log format json", "[log]\nformat = json", func(c *Config) { c.Log.Format = "json" }},
		{"control socket", "[control]\nsocket = run/ctl.sock", func(c *Config) { c.Control.Socket = "/etc/invpn/run/ctl.sock" }},
		{"metrics listen", "[metrics]\nlisten = 127.0.0.1:9742", func(c *Config) { c.Metrics.Listen = "127.0.0.1:9742" }},
		{"metrics listen all, no map", "[metrics]\nlisten = :9742\nmap = false", func(c *Config) { c.Metrics.Listen, c.Metrics.Map = ":9742", false }},
		{"metrics listen all, map token", "[metrics]\nlisten = :9742\nmap_token = 0123456789abcdef", func(c *Config) { c.Metrics.Listen, c.Metrics.MapToken = ":9742", "0123456789abcdef" }},
		{"metrics listen localhost", "[metrics]\nlisten = localhost:9742", func(c *Config) { c.Metrics.Listen = "localhost:9742" }},
		{"metrics listen ::1", "[metrics]\nlisten = [::1]:9742", func(c *Config) { c.Metrics.Listen = "[::1]:9742" }},
		{"metrics off", "[metrics]\nlisten =", func(c *Config) {}},
		{"comments and quotes", "; comment\n[network]\n# comment\ncache = \"/var/lib/a;b#c.json\" ; trailing comment\nport = 99 # trailing", func(c *Config) {
			c.Network.Cache = "/var/lib/a;b#c.json"
			c.Network.Port = 99
		}},
		{"sections split and merged", "[network]\nport = 1\n[tap]\nmtu = 1400\n[network]\nno_relay = true", func(c *Config) {
			c.Network.Port = 1
			c.Network.NoRelay = true
			c.TAP.MTU = 1400
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(file, []byte(sslSection+tt.text))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := base()
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestErrors checks every error names the file, section and key and says
// what is expected.
func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		text    string // whole file unless it starts with '+': appended to sslSection
		section string
		key     string
		msg     string // substring of Msg
	}{
		{"syntax", "[ssl\nkey", "", "", "not a valid INI file"},
		{"key outside section", "port = 1\n" + sslSection, "", "port", "outside any section"},
		{"unknown section", "+[ssh]\nkey = x", "ssh", "", "unknown section (want one of [ssl], [network], [timers], [tap], [log], [control], [metrics])"},
		{"section case", "+[Network]\nport = 1", "Network", "", `did you mean "network"`},
		{"unknown key", "+[network]\nprot = 1", "network", "prot", "unknown key (want one of port, cache, init"},
		{"key case", "+[network]\nPort = 1", "network", "Port", `did you mean "port"`},
		{"key twice", "+[network]\nport = 1\nport = 2", "network", "port", "set 2 times"},
		{"key twice across sections", "+[tap]\nmtu = 1400\n[tap]\nmtu = 1500", "tap", "mtu", "set 2 times"},
		{"missing ssl", "[network]\nport = 1", "ssl", "key", "missing (want the path of this node's PEM private key)"},
		{"missing cert", "[ssl]\nkey = a\nca = b", "ssl", "cert", "missing"},
		{"missing ca", "[ssl]\nkey = a\ncert = b", "ssl", "ca", "missing"},
		{"empty key", "[ssl]\nkey =\ncert = a\nca = b", "ssl", "key", "empty value (want the path"},
		{"port not a number", "+[network]\nport = abc", "network", "port", `"abc" is not a port number (want 1-65535)`},
		{"port zero", "+[network]\nport = 0", "network", "port", "not a port number"},
		{"port too big", "+[network]\nport = 65536", "network", "port", "not a port number"},
		{"port negative", "+[network]\nport = -1", "network", "port", "not a port number"},
		{"port empty", "+[network]\nport =", "network", "port", "empty value (want a port number 1-65535)"},
		{"cache empty", "+[network]\ncache =", "network", "cache", "empty value"},
		{"init no @", "+[network]\ninit = 02:50:56:00:00:01", "network", "init", "has no '@'"},
		{"bootstrap no @", "+[network]\nbootstrap = 02:50:56:00:00:01", "network", "bootstrap", "has no '@'"},
		{"init bad MAC", "+[network]\ninit = 02:50:56:00:01@10.0.0.1:1", "network", "init", "bad MAC"},
		{"init group MAC", "+[network]\ninit = 03:50:56:00:00:01@10.0.0.1:1", "network", "init", "unicast"},
		{"init zero MAC", "+[network]\ninit = 00:00:00:00:00:00@10.0.0.1:1", "network", "init", "not a node's MAC"},
		{"init no port", "+[network]\ninit = 02:50:56:00:00:01@10.0.0.1", "network", "init", "bad address"},
		{"init IPv6 without brackets", "+[network]\ninit = 02:50:56:00:00:01@fd00::1:41744", "network", "init", "brackets around IPv6"},
		{"init hostname", "+[network]\ninit = 02:50:56:00:00:01@example.org:41744", "network", "init", "bad address"},
		{"init port zero", "+[network]\ninit = 02:50:56:00:00:01@10.0.0.1:0", "network", "init", "port 0"},
		{"init twice", "+[network]\ninit = 02:50:56:00:00:01@10.0.0.1:1, 02:50:56:00:00:01@10.0.0.2:1", "network", "init", "listed twice"},
		{"no_incoming", "+[network]\nno_incoming = maybe", "network", "no_incoming", `"maybe" is not a boolean (want true or false)`},
		{"no_relay", "+[network]\nno_relay = 2", "network", "no_relay", "not a boolean"},
		{"max_links zero", "+[network]\nmax_links = 0", "network", "max_links", `"0" is not a number of links (want 1-1024)`},
		{"max_links word", "+[network]\nmax_links = many", "network", "max_links", "not a number of links"},
		{"transport unknown", "+[network]\ntransports = quic, udp", "network", "transports", `"udp" is not a transport`},
		{"transport twice", "+[network]\ntransports = tls, tls", "network", "transports", "tls is listed twice"},
		{"transports empty", "+[network]\ntransports =", "network", "transports", "tls, quic, or both"},
		{"min_links negative", "+[network]\nmin_links = -1", "network", "min_links", "(want 0-1024)"},
		{"min above max", "+[network]\nmin_links = 9", "network", "min_links", "min_links 9 is more than max_links 8"},
		{"max below min", "+[network]\nmax_links = 1", "network", "max_links", "min_links 2 is more than max_links 1"},
		{"listen with port", "+[network]\nlisten = 10.0.0.1:41744", "network", "listen", "not an IP address"},
		{"announce no unit", "+[timers]\nannounce = 5", "timers", "announce", `"5" is not a positive duration`},
		{"connect zero", "+[timers]\nconnect = 0s", "timers", "connect", "not a positive duration"},
		{"route_expiry negative", "+[timers]\nroute_expiry = -5m", "timers", "route_expiry", "not a positive duration"},
		{"link_timeout word", "+[timers]\nlink_timeout = soon", "timers", "link_timeout", "(want e.g. 5s, 1m30s)"},
		{"heartbeat negative", "+[timers]\nheartbeat = -1s", "timers", "heartbeat", "(want e.g. 250ms, or 0 for off)"},
		{"dead_after not above heartbeat", "+[timers]\ndead_after = 200ms", "timers", "dead_after", "want dead_after > heartbeat"},
		{"heartbeat above dead_after", "+[timers]\nheartbeat = 1s", "timers", "heartbeat", "want dead_after > heartbeat"},
		{"refresh without heartbeats", "+[timers]\nheartbeat = 0\nrefresh = 60s", "timers", "refresh", "needs heartbeats"},
		{"refresh below announce", "+[timers]\nrefresh = 1s", "timers", "refresh", "want refresh >= announce"},
		{"refresh over half the expiry", "+[timers]\nrefresh = 3m", "timers", "refresh", "want refresh <= route_expiry/2"},
		{"refresh negative", "+[timers]\nrefresh = -1s", "timers", "refresh", "or 0 for a round every announce interval"},
		{"tap name long", "+[tap]\nname = invpn-tap-device-0", "tap", "name", "at most 15 bytes"},
		{"tap name slash", "+[tap]\nname = a/b", "tap", "name", "not an interface name"},
		{"tap name percent", "+[tap]\nname = tap%s", "tap", "name", "at most one %d"},
		{"tap name two patterns", "+[tap]\nname = t%d%d", "tap", "name", "at most one %d"},
		{"tap mtu small", "+[tap]\nmtu = 67", "tap", "mtu", `"67" is not an MTU (want 68-65535)`},
		{"tap mtu big", "+[tap]\nmtu = 65536", "tap", "mtu", "not an MTU"},
		{"tap mtu IPv6", "+[tap]\nmtu = 1200\naddress = fd00::1/64", "tap", "mtu", "at least 1280"},
		{"tap address no length", "+[tap]\naddress = 10.78.0.1", "tap", "address", "not an address with a prefix length"},
		{"tap address bad length", "+[tap]\naddress = 10.78.0.1/33", "tap", "address", "want CIDR"},
		{"tap address twice", "+[tap]\naddress = 10.78.0.1/24, 10.78.0.1/16", "tap", "address", "listed twice"},
		{"log level", "+[log]\nlevel = verbose", "log", "level", `"verbose" is not a log level (want debug, info, warn or error)`},
		{"log format", "+[log]\nformat = xml", "log", "format", `"xml" is not a log format (want text or json)`},
		{"control socket empty", "+[control]\nsocket =", "control", "socket", "empty value"},
		{"control socket long", "+[control]\nsocket = /" + strings.Repeat("s", 107), "control", "socket", "at most 107"},
		{"metrics no port", "+[metrics]\nlisten = 127.0.0.1", "metrics", "listen", "not HOST:PORT"},
		{"metrics bad port", "+[metrics]\nlisten = 127.0.0.1:http", "metrics", "listen", "not a port number"},
		{"map on all addresses", "+[metrics]\nlisten = :9742", "metrics", "map_token", `missing, and listen ":9742" is not a loopback address`},
		{"map on a LAN address", "+[metrics]\nlisten = 192.0.2.7:9742\nmap = true", "metrics", "map_token", "want a map_token of at least 16 characters, listen on 127.0.0.1 or [::1], or map = false"},
		{"map token short", "+[metrics]\nmap_token = abc", "metrics", "map_token", "3 characters long (want at least 16"},
		{"map token unsafe", "+[metrics]\nmap_token = 0123456789abcdef&x", "metrics", "map_token", `has "&" at byte 16`},
		{"map not bool", "+[metrics]\nmap = maybe", "metrics", "map", "not a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.text
			if rest, ok := strings.CutPrefix(text, "+"); ok {
				text = sslSection + rest
			}
			c, err := Parse(file, []byte(text))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want an error", c)
			}
			if c != nil {
				t.Errorf("Parse returned a Config with its error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %q (%T) is not an *Error", err, err)
			}
			if e.File != file || e.Section != tt.section || e.Key != tt.key {
				t.Errorf("error at %q [%s] %s, want %q [%s] %s", e.File, e.Section, e.Key, file, tt.section, tt.key)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), file+": ") {
				t.Errorf("message %q does not start with the file name", err)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse("invpn.conf", []byte(sslSection+"[network]\nport = abc"))
	want := `invpn.conf: [network] port: "abc" is not a port number (want 1-65535)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{File: "f", Section: "s", Msg: "m"}, "f: [s]: m"},
		{Error{File: "f", Key: "k", Msg: "m"}, "f: k: m"},
		{Error{File: "f", Msg: "m"}, "f: m"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, err := Parse(file, []byte("[network]\nport = abc\nmax_links = x\n[bogus]\n"))
	var found []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not an *Error", e)
		}
		found = append(found, "["+ce.Section+"] "+ce.Key)
	}
	want := []string{"[network] port", "[network] max_links", "[bogus] ", "[ssl] key", "[ssl] cert", "[ssl] ca"}
	if !reflect.DeepEqual(found, want) {
		t.Errorf("errors at %q, want %q", found, want)
	}
}

func TestErrorUnwrapsCause(t *testing.T) {
	_, err := Parse(file, []byte(sslSection+"[metrics]\nlisten = nonsense"))
	var e *Error
	if !errors.As(err, &e) || e.Err == nil {
		t.Fatalf("error %v carries no cause", err)
	}
}

func TestLoadResolvesAgainstFileDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "invpn.conf")
	if err := os.WriteFile(path, []byte("[ssl]\nkey = keys/node.key\ncert = node.crt\nca = ../ca.crt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := SSL{Key: filepath.Join(dir, "keys/node.key"), Cert: filepath.Join(dir, "node.crt"), CA: filepath.Join(filepath.Dir(dir), "ca.crt")}
	if c.SSL != want || c.File != path {
		t.Errorf("SSL = %+v, File = %q; want %+v, %q", c.SSL, c.File, want, path)
	}

	// A file named relative to the working directory resolves to absolute paths too.
	t.Chdir(dir)
	c, err = Load("invpn.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.SSL != want {
		t.Errorf("relative name: SSL = %+v, want %+v", c.SSL, want)
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.conf")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing) = %v, want a not-exist error naming %s", err, path)
	}
}

const samplePath = "../../invpn.conf.sample"

func TestSampleParses(t *testing.T) {
	c, err := Load(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	// The sample shows defaults except for keys without one.
	want := Default()
	want.File = samplePath
	want.SSL = SSL{Key: "/etc/invpn/node.key", Cert: "/etc/invpn/node.crt", CA: "/etc/invpn/ca.crt"}
	want.Network.Init = []Seed{
		{mac("02:50:56:00:00:01"), netip.MustParseAddrPort("192.0.2.1:41744")},
		{mac("02:50:56:00:00:02"), netip.MustParseAddrPort("[fd00::1]:41744")},
	}
	want.Network.Listen = []netip.Addr{netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::")}
	want.TAP.Addresses = []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24"), netip.MustParsePrefix("fd00:78::1/64")}
	want.Metrics.Listen = "127.0.0.1:9742"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("sample:\n got %+v\nwant %+v", c, want)
	}
}

// TestSampleUsesEveryKey keeps the sample complete as keys are added.
func TestSampleUsesEveryKey(t *testing.T) {
	f, err := ini.Load(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range schema {
		for _, fld := range s.fields {
			if !f.Section(s.name).HasKey(fld.key) {
				t.Errorf("sample lacks [%s] %s", s.name, fld.key)
			}
		}
	}
}

func TestSeedString(t *testing.T) {
	for _, s := range []string{"02:50:56:00:00:01@192.0.2.1:41744", "02:50:56:00:00:01@[fd00::1]:41744"} {
		seeds, err := parseSeeds(s)
		if err != nil || len(seeds) != 1 || seeds[0].String() != s {
			t.Errorf("parseSeeds(%q) = %v, %v; want it to format back", s, seeds, err)
		}
	}
}
