// Package meshlab builds a mesh of real invpn daemons in Linux network
// namespaces from a topology: one namespace per node, one veth pair and /24
// per underlay link, a group CA (and any other CA a node is given), one
// certificate and one configuration per node, and the daemons. It is the
// one harness of `invpn demo` and of the end-to-end tests.
//
// State is read from each daemon's control socket (the JSON that
// `invpn status --json` prints), never from its log; waits poll that socket
// with a deadline. The daemons' logs are kept in their directories to be
// shown when something fails.
//
// A Mesh removes what it created on Close: it stops the daemons it started
// (by PID), deletes its namespaces, through a netns.Lab, and stops its link
// emulators (whose TAP devices go with their namespaces and descriptors).
// Everything here needs root; see netns.Check.
package meshlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/linkemu"
	"github.com/invpn/invpn/cmd/invpn/internal/netns"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/wire"
)

// Port is the port every daemon listens on (the default).
const Port = 41744

// GroupCA is the name of the CA every node uses unless Topology.CA names
// another.
const GroupCA = "ca"

// Link is one underlay link: a veth pair between nodes A and B in the /24
// 10.99.Net.0, where node I has the address 10.99.Net.I. The interface in
// node A's namespace is named toB, the one in B's toA.
//
// With Emulated set the link is instead two TAP devices, toB in A's
// namespace and toA in B's, bridged by a linkemu.Emulator running in this
// process with those impairments (A→B is the Params' direction): delay,
// jitter, loss and rate that a veth cannot have on a kernel without netem.
type Link struct {
	A, B     int
	Net      int // the third octet, 1 to 254; 0: the link's 1-based index in Topology.Links
	Emulated *linkemu.Params
}

// Timers are the daemons' [timers]; a zero field leaves the daemon's
// default.
type Timers struct {
	Announce, LinkTimeout, Connect time.Duration
	Heartbeat, DeadAfter           time.Duration
}

// Topology describes a mesh. Nodes are numbered 1 to Nodes.
type Topology struct {
	Nodes int
	Links []Link
	// Dial lists, for each node, the neighbours it has as seeds ([network]
	// init), each at its address on the link between the two.
	Dial map[int][]int
	// MACBase is the MAC of node 0: node I's MAC is MACBase with I in its
	// last byte.
	MACBase wire.MAC
	// IPv4 is the overlay: node I's TAP device has address I in it, with
	// its prefix length. IPv6, if valid, adds an IPv6 overlay the same way.
	IPv4, IPv6 netip.Prefix
	Timers     Timers
	LogLevel   string         // [log] level; "" is debug
	CA         map[int]string // a node's CA name, if not GroupCA
	// Metrics lists the nodes whose [metrics] listen is 127.0.0.1:Port+1
	// in their namespace (with the live map on).
	Metrics map[int]bool
	// Transports is a node's [network] transports ("quic, tls"); a node
	// not in it has the daemon's default (tls).
	Transports map[int]string
	// MTU is every TAP device's [tap] mtu; 0 leaves the default (1500).
	MTU int
	// NoOffload lists the nodes whose TAP devices have no offloads
	// ([tap] offload = false); the others have the default (true).
	// INVPN_E2E_OFFLOAD=off turns them off on every node of every mesh,
	// and =mixed on the odd-numbered ones, so that the end-to-end tests
	// can run once each way.
	NoOffload map[int]bool
}

// offloadOff says whether node i's TAP goes without offloads.
func (t *Topology) offloadOff(i int) bool {
	switch os.Getenv("INVPN_E2E_OFFLOAD") {
	case "off":
		return true
	case "mixed":
		return i%2 == 1
	}
	return t.NoOffload[i]
}

// MetricsAddr is the address a node of Topology.Metrics serves its
// metrics and live map on, inside its namespace.
var MetricsAddr = fmt.Sprintf("127.0.0.1:%d", Port+1)

// Options place a Mesh on this machine.
type Options struct {
	Prefix string // namespace name prefix (netns.RandomPrefix); namespace I is Prefix-I
	Dir    string // the directory for CAs, node directories and logs; must exist
	Bin    string // the invpn binary the daemons run
}

// Mesh is a topology built on this machine.
type Mesh struct {
	topo  Topology
	opts  Options
	lab   *netns.Lab
	nodes []*Node // 1-based
	nets  []int   // third octet of each link

	mu   sync.Mutex
	emus map[int]*linkemu.Emulator // by link index
}

// Node is one daemon of a Mesh and the namespace it runs in.
type Node struct {
	I      int
	MAC    wire.MAC
	NS     string // its namespace (once MakeNetwork ran)
	Dir    string // certificate, key, CA, configuration, cache, logs
	Conf   string // its configuration file
	Socket string // its control socket

	m    *Mesh
	logs []string // one per start, the last is the current one
	proc *netns.Proc
}

// New checks topo and returns a Mesh that has not created anything yet.
func New(opts Options, topo Topology) (*Mesh, error) {
	if topo.Nodes < 1 || topo.Nodes > 254 {
		return nil, fmt.Errorf("meshlab: %d nodes, want 1 to 254", topo.Nodes)
	}
	if !topo.IPv4.Addr().Is4() {
		return nil, errors.New("meshlab: no IPv4 overlay prefix")
	}
	if topo.LogLevel == "" {
		topo.LogLevel = "debug"
	}
	m := &Mesh{topo: topo, opts: opts, lab: netns.NewLab(opts.Prefix), nodes: make([]*Node, topo.Nodes+1)}
	seen := map[int]bool{}
	for k, l := range topo.Links {
		net := l.Net
		if net == 0 {
			net = k + 1
		}
		if net < 1 || net > 254 || seen[net] {
			return nil, fmt.Errorf("meshlab: link %d-%d: net %d is out of range or used twice", l.A, l.B, net)
		}
		if l.A < 1 || l.A > topo.Nodes || l.B < 1 || l.B > topo.Nodes || l.A == l.B || m.link(l.A, l.B) < k {
			return nil, fmt.Errorf("meshlab: bad or repeated link %d-%d", l.A, l.B)
		}
		if l.Emulated != nil {
			if err := l.Emulated.Validate(); err != nil {
				return nil, fmt.Errorf("meshlab: link %d-%d: %w", l.A, l.B, err)
			}
		}
		seen[net] = true
		m.nets = append(m.nets, net)
	}
	for i, peers := range topo.Dial {
		for _, j := range peers {
			if i < 1 || i > topo.Nodes || m.link(i, j) < 0 {
				return nil, fmt.Errorf("meshlab: node %d dials node %d, which is not its neighbour", i, j)
			}
		}
	}
	for i := 1; i <= topo.Nodes; i++ {
		mac := topo.MACBase
		mac[5] = byte(i)
		dir := filepath.Join(opts.Dir, fmt.Sprint("node", i))
		m.nodes[i] = &Node{I: i, MAC: mac, Dir: dir, m: m,
			Conf: filepath.Join(dir, "invpn.conf"), Socket: filepath.Join(dir, "invpn.sock")}
		if len(m.nodes[i].Socket) > 107 {
			return nil, fmt.Errorf("meshlab: control socket path %s is too long for a unix socket", m.nodes[i].Socket)
		}
	}
	return m, nil
}

// Build makes the certificates, the network and the configurations;
// StartAll then starts the daemons.
func (m *Mesh) Build() error {
	for _, step := range []func() error{m.MakePKI, m.MakeNetwork, m.WriteConfigs} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// MakePKI creates the group CA, any other CA the topology names, and each
// node's certificate (CN its MAC), key and CA certificate in its directory.
func (m *Mesh) MakePKI() error {
	made := map[string]bool{}
	for _, n := range m.Nodes() {
		ca := m.caOf(n.I)
		if !made[ca] {
			if err := pki.InitCA(m.CADir(ca)); err != nil {
				return err
			}
			made[ca] = true
		}
		if err := pki.IssueNode(m.CADir(ca), n.MAC, n.Dir); err != nil {
			return err
		}
	}
	if !made[GroupCA] {
		return pki.InitCA(m.CADir(GroupCA))
	}
	return nil
}

// MakeNetwork creates the namespaces and the underlay links.
func (m *Mesh) MakeNetwork() error {
	for _, n := range m.Nodes() {
		ns, err := m.lab.AddNamespace(fmt.Sprint(n.I))
		if err != nil {
			return err
		}
		n.NS = ns
	}
	for k, l := range m.topo.Links {
		a, b := m.nodes[l.A], m.nodes[l.B]
		if l.Emulated != nil {
			if err := m.emulate(k, l); err != nil {
				return err
			}
			continue
		}
		if err := m.lab.Veth(a.NS, m.Iface(a.I, b.I), m.Underlay(a.I, b.I)+"/24",
			b.NS, m.Iface(b.I, a.I), m.Underlay(b.I, a.I)+"/24"); err != nil {
			return err
		}
	}
	return nil
}

// emulate makes link k an emulated one: for each end a TAP device created
// in this process's namespace (so that its descriptor is this process's),
// moved into the node's namespace, renamed toPEER and given its address;
// then an Emulator between the two descriptors.
func (m *Mesh) emulate(k int, l Link) error {
	ends := [2][2]int{{l.A, l.B}, {l.B, l.A}}
	var taps [2]*linkemu.TAP
	fail := func(err error) error {
		for _, t := range taps {
			if t != nil {
				t.Close() // removes the device, wherever it is
			}
		}
		return fmt.Errorf("meshlab: emulated link %d-%d: %w", l.A, l.B, err)
	}
	for e, end := range ends {
		var err error
		// A unique name in the root namespace, for the moment before the
		// move: ivt, five random digits, the end and the link.
		for range 5 {
			if taps[e], err = linkemu.OpenTAP(fmt.Sprintf("%s%c%d", netns.RandomPrefix("ivt"), 'a'+e, k+1)); !errors.Is(err, syscall.EBUSY) {
				break
			}
		}
		if err != nil {
			return fail(err)
		}
		n := m.nodes[end[0]]
		for _, step := range [][]string{
			{"link", "set", "dev", taps[e].Name(), "netns", n.NS},
			{"-n", n.NS, "link", "set", "dev", taps[e].Name(), "name", m.Iface(end[0], end[1])},
			{"-n", n.NS, "addr", "add", m.Underlay(end[0], end[1]) + "/24", "dev", m.Iface(end[0], end[1])},
			{"-n", n.NS, "link", "set", "dev", m.Iface(end[0], end[1]), "up"},
		} {
			if _, err := netns.IP(step...); err != nil {
				return fail(err)
			}
		}
	}
	emu, err := linkemu.New(taps[0], taps[1], *l.Emulated)
	if err != nil {
		return fail(err)
	}
	m.mu.Lock()
	if m.emus == nil {
		m.emus = map[int]*linkemu.Emulator{}
	}
	m.emus[k] = emu
	m.mu.Unlock()
	return nil
}

// Emulator returns the emulator of the link between nodes i and j, nil if
// it is a veth pair (or not made yet). Its A end is the link's A node.
func (m *Mesh) Emulator(i, j int) *linkemu.Emulator {
	k := m.link(i, j)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.emus[k]
}

// Iface returns the name of node i's interface on its link to node j.
func (m *Mesh) Iface(i, j int) string { return fmt.Sprint("to", j) }

// SetLink sets both ends of the underlay link between nodes i and j down
// or up: down is a silent cut (no FIN, no reset reaches either daemon).
func (m *Mesh) SetLink(i, j int, up bool) error {
	if !m.Linked(i, j) {
		return fmt.Errorf("meshlab: no link %d-%d", i, j)
	}
	return errors.Join(netns.SetLink(m.nodes[i].NS, m.Iface(i, j), up), netns.SetLink(m.nodes[j].NS, m.Iface(j, i), up))
}

// nftTimeout bounds one nft command.
const nftTimeout = 10 * time.Second

// Block installs an nftables table in node i's namespace that drops every
// IPv4 packet to and from node j's address on their link, with the
// interfaces up: a silent cut by a middlebox. The returned function
// removes the table again. It needs the nft command (nftables).
func (m *Mesh) Block(i, j int) (unblock func() error, err error) {
	if !m.Linked(i, j) {
		return nil, fmt.Errorf("meshlab: no link %d-%d", i, j)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, errors.New("meshlab: nft is not installed (nftables)")
	}
	ns, peer, table := m.nodes[i].NS, m.Underlay(j, i), fmt.Sprint("ivblock", j)
	rules := fmt.Sprintf(`table inet %[1]s {
	chain in { type filter hook input priority -300; policy accept; ip saddr %[2]s drop; }
	chain out { type filter hook output priority -300; policy accept; ip daddr %[2]s drop; }
}
`, table, peer)
	nft := func(stdin string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), nftTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft %s in %s: %w: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := nft(rules, "-f", "-"); err != nil {
		return nil, err
	}
	return func() error { return nft("", "delete", "table", "inet", table) }, nil
}

// configTemplate is the configuration of every daemon a Mesh starts.
var configTemplate = template.Must(template.New("invpn.conf").Parse(`# node {{.I}} of a meshlab mesh
[ssl]
key = node.key
cert = node.crt
ca = ca.crt
[network]
port = {{.Port}}
cache = cache.json
init = {{.Init}}
{{- if .Transports}}
transports = {{.Transports}}
{{- end}}
{{- if .Timers}}
[timers]
{{- range .Timers}}
{{.}}
{{- end}}
{{- end}}
[tap]
name = invpn0
address = {{.Addresses}}
{{- if .MTU}}
mtu = {{.MTU}}
{{- end}}
{{- if .NoOffload}}
offload = false
{{- end}}
[log]
level = {{.LogLevel}}
[control]
socket = {{.Socket}}
{{- if .Metrics}}
[metrics]
listen = {{.Metrics}}
{{- end}}
`))

// WriteConfigs writes each node's configuration file.
func (m *Mesh) WriteConfigs() error {
	var timers []string
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"announce", m.topo.Timers.Announce}, {"link_timeout", m.topo.Timers.LinkTimeout}, {"connect", m.topo.Timers.Connect},
		{"heartbeat", m.topo.Timers.Heartbeat}, {"dead_after", m.topo.Timers.DeadAfter}} {
		if t.d != 0 {
			timers = append(timers, fmt.Sprintf("%s = %v", t.key, t.d))
		}
	}
	for _, n := range m.Nodes() {
		var seeds []string
		for _, j := range m.topo.Dial[n.I] {
			seeds = append(seeds, fmt.Sprintf("%s@%s:%d", m.nodes[j].MAC, m.Underlay(j, n.I), Port))
		}
		addrs := []string{n.overlay(m.topo.IPv4).String()}
		if m.topo.IPv6.IsValid() {
			addrs = append(addrs, n.overlay(m.topo.IPv6).String())
		}
		metrics := ""
		if m.topo.Metrics[n.I] {
			metrics = MetricsAddr
		}
		var b bytes.Buffer
		err := configTemplate.Execute(&b, map[string]any{
			"I": n.I, "Port": Port, "Init": strings.Join(seeds, ", "), "Timers": timers,
			"Addresses": strings.Join(addrs, ", "), "LogLevel": m.topo.LogLevel, "Socket": n.Socket,
			"Metrics": metrics, "Transports": m.topo.Transports[n.I], "MTU": m.topo.MTU,
			"NoOffload": m.topo.offloadOff(n.I),
		})
		if err != nil {
			return err
		}
		if err := os.MkdirAll(n.Dir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(n.Conf, b.Bytes(), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// StartAll starts every node's daemon.
func (m *Mesh) StartAll() error {
	for _, n := range m.Nodes() {
		if err := n.Start(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the daemons still running (SIGTERM, then SIGKILL after 5 s),
// deletes the namespaces and stops the link emulators. It reports a daemon
// that did not exit cleanly on SIGTERM. The directory stays. It may be
// called more than once.
func (m *Mesh) Close() error {
	err := m.lab.Close()
	m.mu.Lock()
	emus := m.emus
	m.emus = nil
	m.mu.Unlock()
	for _, e := range emus {
		err = errors.Join(err, e.Close())
	}
	return err
}

// Prefix returns the namespace name prefix.
func (m *Mesh) Prefix() string { return m.lab.Prefix() }

// Namespaces returns the namespaces created and not yet deleted.
func (m *Mesh) Namespaces() []string { return m.lab.Namespaces() }

// Node returns node i (1-based).
func (m *Mesh) Node(i int) *Node { return m.nodes[i] }

// Nodes returns the nodes in order.
func (m *Mesh) Nodes() []*Node { return m.nodes[1:] }

// ByMAC returns the node with the MAC, or nil.
func (m *Mesh) ByMAC(mac wire.MAC) *Node {
	for _, n := range m.Nodes() {
		if n.MAC == mac {
			return n
		}
	}
	return nil
}

// CADir returns the directory of the CA named name (GroupCA: the group's).
func (m *Mesh) CADir(name string) string { return filepath.Join(m.opts.Dir, name) }

func (m *Mesh) caOf(i int) string {
	if ca := m.topo.CA[i]; ca != "" {
		return ca
	}
	return GroupCA
}

// link returns the index of the link between i and j, or -1.
func (m *Mesh) link(i, j int) int {
	return slices.IndexFunc(m.topo.Links, func(l Link) bool { return l.A == i && l.B == j || l.A == j && l.B == i })
}

// Underlay returns node i's address on its link to node j: 10.99.Net.i.
func (m *Mesh) Underlay(i, j int) string {
	k := m.link(i, j)
	if k < 0 {
		panic(fmt.Sprintf("meshlab: no link %d-%d", i, j))
	}
	return fmt.Sprintf("10.99.%d.%d", m.nets[k], i)
}

// Linked reports whether nodes i and j share an underlay link.
func (m *Mesh) Linked(i, j int) bool { return m.link(i, j) >= 0 }

func (n *Node) overlay(p netip.Prefix) netip.Prefix {
	a := p.Masked().Addr().As16()
	a[15] += byte(n.I)
	addr := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		addr = addr.Unmap()
	}
	return netip.PrefixFrom(addr, p.Bits())
}

// Addr4 returns the node's overlay IPv4 address.
func (n *Node) Addr4() string { return n.overlay(n.m.topo.IPv4).Addr().String() }

// Addr6 returns the node's overlay IPv6 address ("" without an IPv6 overlay).
func (n *Node) Addr6() string {
	if !n.m.topo.IPv6.IsValid() {
		return ""
	}
	return n.overlay(n.m.topo.IPv6).Addr().String()
}

// Start starts the node's daemon (again, after Kill) in its namespace,
// logging to a new file in its directory.
func (n *Node) Start() error {
	if n.Running() {
		return fmt.Errorf("node %d is running", n.I)
	}
	log := filepath.Join(n.Dir, "daemon.log")
	if len(n.logs) > 0 {
		log = filepath.Join(n.Dir, fmt.Sprintf("daemon.%d.log", len(n.logs)+1))
	}
	p, err := n.m.lab.Start(fmt.Sprint("node ", n.I), n.NS, log, n.m.opts.Bin, "run", "-c", n.Conf)
	if err != nil {
		return err
	}
	n.proc, n.logs = p, append(n.logs, log)
	return nil
}

// PID returns the process id of the daemon last started (0: none).
func (n *Node) PID() int {
	if n.proc == nil {
		return 0
	}
	return n.proc.PID()
}

// Running reports whether the daemon last started still runs.
func (n *Node) Running() bool {
	if n.proc == nil {
		return false
	}
	select {
	case <-n.proc.Done():
		return false
	default:
		return true
	}
}

// Exited reports whether the daemon last started has exited, and its
// exit error.
func (n *Node) Exited() (bool, error) {
	if n.proc == nil || n.Running() {
		return false, nil
	}
	return true, n.proc.Err()
}

// Stop stops the daemon with SIGTERM and waits up to 5 s for a clean exit
// (then kills it); it reports an exit that was not clean.
func (n *Node) Stop() error {
	if n.proc == nil {
		return fmt.Errorf("node %d was not started", n.I)
	}
	return n.proc.Stop(5 * time.Second)
}

// Kill kills the daemon with SIGKILL (a crash) and waits for it.
func (n *Node) Kill() error {
	if n.proc == nil {
		return fmt.Errorf("node %d was not started", n.I)
	}
	return n.proc.Kill()
}

// Logs returns the paths of the node's logs, one per start.
func (n *Node) Logs() []string { return slices.Clone(n.logs) }

// LogTail returns the last limit bytes of each of the node's logs, with a
// header per file.
func (n *Node) LogTail(limit int) string {
	var b strings.Builder
	for _, p := range n.logs {
		data, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(&b, "--- node %d: %v\n", n.I, err)
			continue
		}
		if len(data) > limit {
			data = data[len(data)-limit:]
		}
		fmt.Fprintf(&b, "--- node %d, %s (last %d bytes) ---\n%s", n.I, filepath.Base(p), len(data), data)
	}
	return b.String()
}

// callTimeout bounds one control socket request.
const callTimeout = 3 * time.Second

// Status asks the daemon for its status over its control socket.
func (n *Node) Status(ctx context.Context) (*control.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := control.Call(ctx, n.Socket, control.Request{Op: "status"})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", n.I, err)
	}
	if resp.Status == nil {
		return nil, fmt.Errorf("node %d: status answer without a status", n.I)
	}
	return resp.Status, nil
}

// PollInterval is how often the waits ask a control socket.
const PollInterval = 20 * time.Millisecond

// WaitStatus polls the daemon's status every interval (PollInterval if
// zero) until cond holds, and returns that status. It fails when limit
// passes, ctx ends, or the daemon exits first; the error describes the last
// status seen.
func (n *Node) WaitStatus(ctx context.Context, limit, interval time.Duration, cond func(*control.Status) bool) (*control.Status, error) {
	if interval <= 0 {
		interval = PollInterval
	}
	deadline := time.Now().Add(limit)
	var last *control.Status
	var lastErr error
	for {
		st, err := n.Status(ctx)
		if err == nil {
			last, lastErr = st, nil
			if cond(st) {
				return st, nil
			}
		} else {
			lastErr = err
		}
		if exited, err := n.Exited(); exited {
			return last, fmt.Errorf("node %d exited while waiting: %v", n.I, err)
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("node %d: condition not met within %v; last status: %s", n.I, limit, n.m.Describe(last, lastErr))
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Holds polls the daemon's status every interval (PollInterval if zero)
// until ctx ends or limit passes, and checks that cond holds for every
// status read. It returns the first status for which cond fails, with an
// error; an error too if the daemon exits or no status could be read.
func (n *Node) Holds(ctx context.Context, limit, interval time.Duration, cond func(*control.Status) bool) (*control.Status, error) {
	if interval <= 0 {
		interval = PollInterval
	}
	deadline := time.Now().Add(limit)
	read := 0
	var lastErr error
	for {
		st, err := n.Status(ctx)
		switch {
		case err == nil:
			read++
			if !cond(st) {
				return st, fmt.Errorf("node %d: condition failed after %d good statuses", n.I, read-1)
			}
		case ctx.Err() == nil:
			lastErr = err
		}
		if exited, err := n.Exited(); exited {
			return nil, fmt.Errorf("node %d exited while watched: %v", n.I, err)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			if read == 0 {
				return nil, fmt.Errorf("node %d: no status read: %v", n.I, lastErr)
			}
			return nil, nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// RouteTo returns st's route to mac.
func RouteTo(st *control.Status, mac wire.MAC) (control.RouteStatus, bool) {
	for _, r := range st.Routes {
		if r.Target == mac {
			return r, true
		}
	}
	return control.RouteStatus{}, false
}

// LinkTo returns st's link to mac.
func LinkTo(st *control.Status, mac wire.MAC) (control.LinkStatus, bool) {
	for _, l := range st.Links {
		if l.Peer == mac {
			return l, true
		}
	}
	return control.LinkStatus{}, false
}

// Describe summarizes a status in one line, naming nodes by number.
func (m *Mesh) Describe(st *control.Status, err error) string {
	if st == nil {
		return fmt.Sprintf("none (%v)", err)
	}
	name := func(mac wire.MAC) string {
		if n := m.ByMAC(mac); n != nil {
			return fmt.Sprint(n.I)
		}
		return mac.String()
	}
	var links, routes []string
	for _, l := range st.Links {
		links = append(links, name(l.Peer)+"@"+l.Addr)
	}
	for _, r := range st.Routes {
		routes = append(routes, fmt.Sprintf("%s via %s (%d hops)", name(r.Target), name(r.NextHop), r.Hops))
	}
	s := fmt.Sprintf("node %s: links [%s], routes [%s]", name(st.MAC), strings.Join(links, " "), strings.Join(routes, ", "))
	if err != nil {
		s += fmt.Sprintf(" (then: %v)", err)
	}
	return s
}

// NextHop returns the node that node from's daemon routes to node to
// through, from its status.
func (m *Mesh) NextHop(ctx context.Context, from, to int) (int, error) {
	st, err := m.nodes[from].Status(ctx)
	if err != nil {
		return 0, err
	}
	r, ok := RouteTo(st, m.nodes[to].MAC)
	if !ok {
		return 0, fmt.Errorf("node %d has no route to node %d", from, to)
	}
	via := m.ByMAC(r.NextHop)
	if via == nil {
		return 0, fmt.Errorf("node %d routes to node %d via unknown %s", from, to, r.NextHop)
	}
	return via.I, nil
}

// Path follows the next hops from node from to node to, asking each
// daemon on the way, and returns the nodes in order (from first). On an
// error it returns the path so far.
func (m *Mesh) Path(ctx context.Context, from, to int) ([]int, error) {
	path := []int{from}
	for cur := from; cur != to; {
		via, err := m.NextHop(ctx, cur, to)
		if err != nil {
			return path, err
		}
		if slices.Contains(path, via) || len(path) > m.topo.Nodes {
			return path, fmt.Errorf("loop at node %d", via)
		}
		path = append(path, via)
		cur = via
	}
	return path, nil
}

// WaitConverged polls every running daemon until each has a link to every
// running neighbour (with liveness "up" where it has heartbeats) and a
// route to every other running node, for at most limit.
func (m *Mesh) WaitConverged(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var why string
		for _, n := range m.Nodes() {
			if !n.Running() {
				continue
			}
			st, err := n.Status(ctx)
			if err != nil {
				why = err.Error()
				break
			}
			if why = m.unconverged(n, st); why != "" {
				why += "; " + m.Describe(st, nil)
				break
			}
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("meshlab: not converged within %v: %s", limit, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(PollInterval):
		}
	}
}

// unconverged says what node n's status st lacks, "" if nothing.
func (m *Mesh) unconverged(n *Node, st *control.Status) string {
	for _, o := range m.Nodes() {
		if o == n || !o.Running() {
			continue
		}
		if m.Linked(n.I, o.I) {
			l, ok := LinkTo(st, o.MAC)
			if !ok {
				return fmt.Sprintf("node %d has no link to node %d", n.I, o.I)
			}
			if l.Liveness != "" && l.Liveness != "up" {
				return fmt.Sprintf("node %d's link to node %d is %s", n.I, o.I, l.Liveness)
			}
		}
		if _, ok := RouteTo(st, o.MAC); !ok {
			return fmt.Sprintf("node %d has no route to node %d", n.I, o.I)
		}
	}
	return ""
}
