// Package peercache persists what a node must remember across restarts: the
// peer cache (each peer's MAC and the address and port it was last announced
// at, dialled again at start) and the id floor (the highest message id this
// node has used, so that its ids keep increasing after a restart even when
// the clock went back; docs/protocol.md#defect-3).
//
// Both live in one JSON file:
//
//	{
//	  "version": 1,
//	  "id_floor": 1735689600000,
//	  "peers": {
//	    "02:50:56:00:00:01": "192.0.2.1:41744",
//	    "02:50:56:00:00:02": "[fd00::1]:41744"
//	  }
//	}
//
// Save replaces the file atomically (docs/protocol.md#defect-10: the original
// rewrote its cache in place and could lose it in a crash). Load never fails
// hard: a damaged cache only costs the node its shortcuts into the mesh.
package peercache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/invpn/invpn/wire"
)

// Version is the format version Save writes and Load accepts.
const Version = 1

// MaxFileSize is the largest cache file Load reads; a larger file is
// reported as corrupt.
const MaxFileSize = 16 << 20

// State is the content of the cache file.
type State struct {
	// Peers maps a peer's MAC to the address and port it was last announced at.
	Peers map[wire.MAC]netip.AddrPort
	// IDFloor is a lower bound for the next message id this node may use.
	IDFloor uint64
}

// fileState is the JSON form of State.
type fileState struct {
	Version int               `json:"version"`
	IDFloor uint64            `json:"id_floor"`
	Peers   map[string]string `json:"peers"` // MAC -> IP:PORT; encoding/json sorts the keys
}

// Load reads the cache file at path. A missing file is an empty State and no
// error. A file that cannot be read or parsed gives an empty State and an
// error describing the problem, for the caller to log before carrying on.
// Entries that cannot be parsed in an otherwise valid file are skipped and
// reported in the error, while the rest of the State is returned.
// The returned Peers map is never nil.
func Load(path string) (State, error) {
	empty := State{Peers: make(map[wire.MAC]netip.AddrPort)}
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return empty, fmt.Errorf("peercache: read %s (starting with an empty cache): %w", path, err)
	}
	var fst fileState
	if err := json.Unmarshal(data, &fst); err != nil {
		return empty, fmt.Errorf("peercache: %s is corrupt (starting with an empty cache): %w", path, err)
	}
	if fst.Version != Version {
		return empty, fmt.Errorf("peercache: %s has format version %d, want %d (starting with an empty cache)", path, fst.Version, Version)
	}
	st := State{Peers: make(map[wire.MAC]netip.AddrPort, len(fst.Peers)), IDFloor: fst.IDFloor}
	var bad []string
	for macStr, addrStr := range fst.Peers {
		mac, err := wire.ParseMAC(macStr)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q: bad MAC", macStr))
			continue
		}
		ap, err := netip.ParseAddrPort(addrStr)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: bad address %q", mac, addrStr))
			continue
		}
		st.Peers[mac] = ap
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return st, fmt.Errorf("peercache: %s: skipped %d bad entries: %s", path, len(bad), strings.Join(bad, "; "))
	}
	return st, nil
}

// readFile reads at most MaxFileSize bytes of path, failing if it is larger.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	return data, nil
}

// beforeRename, when set by a test, runs after the temporary file is written
// and synced and before it is renamed over path; an error aborts Save there,
// as a crash would.
var beforeRename func(tmp string) error

// Save writes st to path atomically: to a temporary file in the same
// directory (created, with mode 0700, if missing), synced, renamed over
// path, and the directory synced. The file has mode 0600. A crash at any
// point leaves either the previous file or the new one, never a mix; it may
// leave a temporary file named .BASE.tmp-* behind, which Load ignores.
// Concurrent Saves to one path must be serialized by the caller.
func Save(path string, st State) error {
	fst := fileState{Version: Version, IDFloor: st.IDFloor, Peers: make(map[string]string, len(st.Peers))}
	for mac, ap := range st.Peers {
		if !ap.IsValid() {
			return fmt.Errorf("peercache: save %s: peer %s has no address", path, mac)
		}
		fst.Peers[mac.String()] = ap.String()
	}
	data, err := json.MarshalIndent(fst, "", "  ")
	if err != nil {
		return fmt.Errorf("peercache: save %s: encode: %w", path, err)
	}
	data = append(data, '\n')

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("peercache: save %s: create directory: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("peercache: save %s: %w", path, err)
	}
	tmpName := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil { // CreateTemp's mode, whatever the umask
		return fmt.Errorf("peercache: save %s: chmod: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("peercache: save %s: write %s: %w", path, tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("peercache: save %s: sync %s: %w", path, tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("peercache: save %s: close %s: %w", path, tmpName, err)
	}
	if beforeRename != nil {
		if err := beforeRename(tmpName); err != nil {
			return fmt.Errorf("peercache: save %s: %w", path, err)
		}
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("peercache: save %s: rename: %w", path, err)
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("peercache: save %s: sync directory (the new file may not survive a power loss): %w", path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
