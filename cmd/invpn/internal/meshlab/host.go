package meshlab

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/invpn/invpn/cmd/invpn/internal/netns"
)

// Host is a namespace of a Mesh that runs no daemon: a client of the
// mesh's nodes over the underlay, such as the attacker of the hostile
// tests. It has one veth link, to one node.
type Host struct {
	Name  string
	NS    string       // its namespace, Prefix-Name
	Node  int          // the node it is linked to
	Addrs []netip.Addr // its addresses on the link, the first its primary
	Peer  netip.Addr   // the node's address on the link
	Iface string       // its interface, "to" and the node's number
}

// AddHost creates the namespace Prefix-name, linked to node i (whose
// namespace must exist: after MakeNetwork) by a veth pair in the /24
// 10.99.net.0. Node i gets 10.99.net.i on its interface to<name>; the host
// gets count addresses from 10.99.net.first on, all in the /24, so that a
// client in it may bind any of them as its source. The Mesh removes the
// namespace on Close. name is at most 13 characters (an interface name has
// at most 15).
func (m *Mesh) AddHost(name string, i, net, first, count int) (*Host, error) {
	switch {
	case i < 1 || i > m.topo.Nodes || m.nodes[i].NS == "":
		return nil, fmt.Errorf("meshlab: host %s: node %d has no namespace yet", name, i)
	case net < 1 || net > 254 || slices.Contains(m.nets, net):
		return nil, fmt.Errorf("meshlab: host %s: net %d is out of range or a link's", name, net)
	case count < 1 || first < 1 || first+count-1 > 254 || i >= first && i < first+count:
		return nil, fmt.Errorf("meshlab: host %s: addresses 10.99.%d.%d+%d do not fit beside node %d", name, net, first, count, i)
	case len(name) == 0 || len(name) > 13:
		return nil, fmt.Errorf("meshlab: host name %q: want 1 to 13 characters", name)
	}
	ns, err := m.lab.AddNamespace(name)
	if err != nil {
		return nil, err
	}
	h := &Host{Name: name, NS: ns, Node: i, Iface: fmt.Sprint("to", i),
		Peer: netip.AddrFrom4([4]byte{10, 99, byte(net), byte(i)})}
	for k := range count {
		h.Addrs = append(h.Addrs, netip.AddrFrom4([4]byte{10, 99, byte(net), byte(first + k)}))
	}
	if err := m.lab.Veth(m.nodes[i].NS, "to"+name, h.Peer.String()+"/24", ns, h.Iface, h.Addrs[0].String()+"/24"); err != nil {
		return nil, err
	}
	for _, a := range h.Addrs[1:] {
		if _, err := netns.IP("-n", ns, "addr", "add", a.String()+"/24", "dev", h.Iface); err != nil {
			return nil, err
		}
	}
	m.nets = append(m.nets, net) // after the links' nets: AddHost checks it, Underlay never reads it
	return h, nil
}

// Resources is what a daemon process holds, read from /proc.
type Resources struct {
	FDs int // open file descriptors
	// RSS is the resident set now, HWM its peak since the process
	// started (VmRSS, VmHWM), in bytes.
	RSS, HWM int64
}

// MiB returns b in mebibytes.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }

func (r Resources) String() string {
	return fmt.Sprintf("%d fds, RSS %.1f MiB, peak RSS %.1f MiB", r.FDs, MiB(r.RSS), MiB(r.HWM))
}

// Resources reads the daemon's descriptors and memory from /proc.
func (n *Node) Resources() (Resources, error) {
	if !n.Running() {
		return Resources{}, fmt.Errorf("node %d is not running", n.I)
	}
	return ProcResources(n.PID())
}

// ProcResources reads process pid's descriptors (/proc/PID/fd) and memory
// (/proc/PID/status).
func ProcResources(pid int) (Resources, error) {
	var r Resources
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return r, err
	}
	r.FDs = len(fds)
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return r, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || key != "VmRSS" && key != "VmHWM" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return r, fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			r.RSS = kb << 10
		} else {
			r.HWM = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	if r.HWM == 0 {
		return r, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
	}
	return r, nil
}
