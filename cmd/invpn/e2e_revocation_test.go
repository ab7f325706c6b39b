package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/invpn/invpn/cmd/invpn/internal/control"
	"github.com/invpn/invpn/cmd/invpn/internal/meshlab"
	"github.com/invpn/invpn/cmd/invpn/internal/netns"
	"github.com/invpn/invpn/cmd/invpn/internal/pki"
)

// TestE2ERevocation revokes a member of a mesh of real daemons in
// network namespaces (docs/protocol.md#revocation):
//
//	node 1 --- node 2
//	  |  \       |
//	node 5    node 3   (revoked: linked to 1, 2 and 4)
//	  |       /
//	node 4 --
//
// `invpn cert revoke` writes the list; node 1 gets it in its
// configuration and `kill -HUP`. The test measures the time from the
// signal until no daemon has a link to node 3, checks that node 3, which
// keeps redialling its cached addresses, links to nobody again, that the
// rest of the mesh still reaches itself, and that a member restarted
// without the list in its configuration still refuses node 3 (the list
// was saved next to its peer cache).
func TestE2ERevocation(t *testing.T) {
	e2eSkip(t)
	m := newMesh(t, "ivr", meshlab.Topology{
		Nodes: 5,
		Links: []meshlab.Link{{A: 1, B: 2, Net: 12}, {A: 2, B: 3, Net: 23}, {A: 3, B: 4, Net: 34},
			{A: 4, B: 5, Net: 45}, {A: 5, B: 1, Net: 15}, {A: 1, B: 3, Net: 13}},
		Dial:    map[int][]int{2: {1}, 3: {1, 2}, 4: {3}, 5: {4, 1}},
		MACBase: e2eMACs,
		IPv4:    netip.MustParsePrefix("10.79.0.0/24"),
		Timers:  meshlab.Timers{Connect: 2 * time.Second},
	})
	ctx := context.Background()
	revoked := m.Node(3)
	// Every link up, so that the list has every path to take.
	degree := map[int]int{1: 3, 2: 2, 3: 3, 4: 2, 5: 2}
	for _, n := range m.Nodes() {
		if _, err := n.WaitStatus(ctx, 30*time.Second, 0, func(st *control.Status) bool {
			return len(st.Routes) == 4 && st.MeshLinks() == degree[n.I]
		}); err != nil {
			t.Fatal(err)
		}
	}
	linkedTo3 := func(st *control.Status) bool {
		for _, l := range st.Links {
			if l.Peer == revoked.MAC {
				return true
			}
		}
		return false
	}

	rev, err := pki.Revoke(m.CADir(meshlab.GroupCA), []string{revoked.MAC.String()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n1 := m.Node(1)
	addCRL(t, n1.Conf, rev.CRLPath)
	sent := time.Now()
	if err := syscall.Kill(n1.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Poll every member's status in parallel until none links to node 3.
	var wg sync.WaitGroup
	closed := make([]time.Duration, 6)
	errs := make([]error, 6)
	for _, i := range []int{1, 2, 4, 5} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Node(i).WaitStatus(ctx, 10*time.Second, 5*time.Millisecond, func(st *control.Status) bool {
				return !linkedTo3(st) && st.Revocation != nil && st.Revocation.Number == rev.Number
			})
			closed[i] = time.Since(sent)
		}()
	}
	wg.Wait()
	var last time.Duration
	for _, i := range []int{1, 2, 4, 5} {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		last = max(last, closed[i])
	}
	t.Logf("from kill -HUP of node 1 to every member holding list %d with no link to node 3: %v (nodes 1, 2, 4, 5: %v, %v, %v, %v)",
		rev.Number, last.Round(time.Millisecond), closed[1].Round(time.Millisecond), closed[2].Round(time.Millisecond),
		closed[4].Round(time.Millisecond), closed[5].Round(time.Millisecond))

	// Node 3 redials every connect interval (2 s) from its cache: nobody
	// takes it, for three intervals.
	watch := func(limit time.Duration, nodes ...int) {
		t.Helper()
		var wg sync.WaitGroup
		for _, i := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st, err := m.Node(i).Holds(ctx, limit, 50*time.Millisecond, func(st *control.Status) bool { return !linkedTo3(st) }); err != nil {
					t.Errorf("%v: %s", err, m.Describe(st, nil))
				}
			}()
		}
		wg.Wait()
	}
	watch(6*time.Second, 1, 2, 4, 5)
	waitLog(t, m.Node(2), time.Second, "peer certificate revoked") // node 3 was refused, not just silent
	// The rest of the mesh still reaches itself: 4 reached 1 through 3
	// before, now through 5.
	if r, err := netns.PingUntil(ctx, m.Node(4).NS, n1.Addr4(), 50*time.Millisecond, 10*time.Second); err != nil || !r.OK {
		t.Errorf("node 4 cannot reach node 1 after the revocation: %v", err)
	}

	// Node 2 restarts with no list in its configuration: the saved one
	// is in force before its first link.
	n2 := m.Node(2)
	if err := n2.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(n2.Dir, "cache.json.crl")); err != nil {
		t.Errorf("node 2 saved no list: %v", err)
	}
	if err := n2.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.WaitStatus(ctx, 10*time.Second, 0, func(st *control.Status) bool {
		return st.Revocation != nil && st.Revocation.Number == rev.Number && len(st.Links) > 0
	}); err != nil {
		t.Fatal(err)
	}
	watch(6*time.Second, 2)
}

// addCRL puts crl = path into the [ssl] section of the configuration file
// conf.
func addCRL(t *testing.T, conf, path string) {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "[ssl]\n", fmt.Sprintf("[ssl]\ncrl = %s\n", path), 1)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
