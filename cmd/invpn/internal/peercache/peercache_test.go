package peercache

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/invpn/invpn/wire"
)

var (
	mac1 = wire.MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x01}
	mac2 = wire.MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x02}
	mac3 = wire.MAC{0x02, 0x50, 0x56, 0x00, 0x00, 0x03}
)

func sample() State {
	return State{
		Peers: map[wire.MAC]netip.AddrPort{
			mac2: netip.MustParseAddrPort("[fd00::1]:41744"),
			mac1: netip.MustParseAddrPort("192.0.2.1:41744"),
		},
		IDFloor: 1735689600123,
	}
}

func mustSave(t *testing.T, path string, st State) {
	t.Helper()
	if err := Save(path, st); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func mustLoad(t *testing.T, path string) State {
	t.Helper()
	st, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.json")
	mustSave(t, path, sample())
	if got := mustLoad(t, path); !reflect.DeepEqual(got, sample()) {
		t.Errorf("Load = %+v, want %+v", got, sample())
	}

	// The file is the documented shape, with peers in MAC order.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 1,
  "id_floor": 1735689600123,
  "peers": {
    "02:50:56:00:00:01": "192.0.2.1:41744",
    "02:50:56:00:00:02": "[fd00::1]:41744"
  }
}
`
	if string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}

	// Saving again replaces the content, including an emptied cache.
	mustSave(t, path, State{IDFloor: 7})
	if got := mustLoad(t, path); len(got.Peers) != 0 || got.Peers == nil || got.IDFloor != 7 {
		t.Errorf("after second Save: %+v, want no peers (non-nil map) and floor 7", got)
	}
}

func TestLoadMissing(t *testing.T) {
	st, err := Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatalf("Load(missing) error: %v", err)
	}
	if st.Peers == nil || len(st.Peers) != 0 || st.IDFloor != 0 {
		t.Errorf("Load(missing) = %+v, want empty State with a non-nil map", st)
	}
}

func TestLoadCorrupt(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"garbage", "\x00\x01garbage", "corrupt"},
		{"empty", "", "corrupt"},
		{"truncated", `{"version": 1, "id_floor": 5, "peers": {"02:50:56:00:00:01": "192.0.2.1:4`, "corrupt"},
		{"wrong types", `{"version": 1, "id_floor": "x", "peers": {}}`, "corrupt"},
		{"negative floor", `{"version": 1, "id_floor": -1, "peers": {}}`, "corrupt"},
		{"array", `[1,2,3]`, "corrupt"},
		{"no version", `{"id_floor": 5, "peers": {}}`, "format version 0, want 1"},
		{"future version", `{"version": 2, "id_floor": 5, "peers": {}}`, "format version 2"},
		{"too large", strings.Repeat(" ", MaxFileSize+1), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", st)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s or say %q", err, path, tt.want)
			}
			if st.Peers == nil || len(st.Peers) != 0 || st.IDFloor != 0 {
				t.Errorf("State = %+v, want empty with a non-nil map", st)
			}
			// The caller carries on and its next Save repairs the file.
			mustSave(t, path, sample())
			if got := mustLoad(t, path); !reflect.DeepEqual(got, sample()) {
				t.Errorf("after repair: %+v", got)
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.json")
	if err := os.Mkdir(path, 0o700); err != nil { // a directory cannot be read as a file
		t.Fatal(err)
	}
	st, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "read "+path) {
		t.Errorf("Load(directory) error = %v, want a read error naming %s", err, path)
	}
	if st.Peers == nil || len(st.Peers) != 0 {
		t.Errorf("State = %+v, want empty", st)
	}
}

func TestLoadSkipsBadEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.json")
	data := `{"version": 1, "id_floor": 42, "peers": {
		"02:50:56:00:00:01": "192.0.2.1:41744",
		"not-a-mac": "192.0.2.2:41744",
		"02:50:56:00:00:03": "fd00::1:41744"
	}}`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "skipped 2 bad entries") ||
		!strings.Contains(err.Error(), `"not-a-mac"`) || !strings.Contains(err.Error(), mac3.String()) {
		t.Errorf("error = %v, want both bad entries reported", err)
	}
	want := State{Peers: map[wire.MAC]netip.AddrPort{mac1: netip.MustParseAddrPort("192.0.2.1:41744")}, IDFloor: 42}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("State = %+v, want the good entry and the floor: %+v", st, want)
	}
}

// TestCrashBeforeRename: a crash after the new content is written and synced
// but before the rename leaves the previous file intact
// (docs/protocol.md#defect-10).
func TestCrashBeforeRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.json")
	mustSave(t, path, sample())

	next := State{Peers: map[wire.MAC]netip.AddrPort{mac3: netip.MustParseAddrPort("10.0.0.3:1")}, IDFloor: 99}
	crash := errors.New("simulated crash")
	var tmpSeen string
	beforeRename = func(tmp string) error {
		tmpSeen = tmp
		if filepath.Dir(tmp) != dir {
			t.Errorf("temporary file %s is not in %s", tmp, dir)
		}
		// The new content is complete in the temporary file...
		if got, err := Load(tmp); err != nil || !reflect.DeepEqual(got, next) {
			t.Errorf("temporary file holds %+v, %v; want %+v", got, err, next)
		}
		// ...and the cache file is still the previous one.
		if got := mustLoad(t, path); !reflect.DeepEqual(got, sample()) {
			t.Errorf("cache before rename = %+v, want the previous state", got)
		}
		return crash
	}
	t.Cleanup(func() { beforeRename = nil })

	if err := Save(path, next); !errors.Is(err, crash) {
		t.Fatalf("Save = %v, want the simulated crash", err)
	}
	if got := mustLoad(t, path); !reflect.DeepEqual(got, sample()) {
		t.Errorf("after failed Save: %+v, want the previous state", got)
	}
	if _, err := os.Stat(tmpSeen); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Save left %s behind (stat: %v)", tmpSeen, err)
	}
}

// TestLeftoverTempFile: what a real crash leaves (a partly written
// temporary file) neither replaces nor disturbs the cache.
func TestLeftoverTempFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.json")
	mustSave(t, path, sample())
	leftover := filepath.Join(dir, ".cache.json.tmp-123456")
	if err := os.WriteFile(leftover, []byte(`{"version": 1, "id_floor": 99, "pe`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, path); !reflect.DeepEqual(got, sample()) {
		t.Errorf("Load with a leftover temp file = %+v, want the previous state", got)
	}
	next := State{Peers: map[wire.MAC]netip.AddrPort{}, IDFloor: 100}
	mustSave(t, path, next)
	if got := mustLoad(t, path); !reflect.DeepEqual(got, next) {
		t.Errorf("Save after a crash: %+v, want %+v", got, next)
	}
}

func TestPermissions(t *testing.T) {
	old := syscall.Umask(0) // the file must be private whatever the umask
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "var", "lib", "invpn")
	path := filepath.Join(dir, "cache.json")
	mustSave(t, path, sample()) // creates the directory
	checkMode(t, dir, os.ModeDir|0o700)
	checkMode(t, path, 0o600)

	// A previous file with wider permissions is replaced by a private one.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	mustSave(t, path, sample())
	checkMode(t, path, 0o600)
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("mode of %s = %v, want %v", path, fi.Mode(), want)
	}
}

func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.json")
	mustSave(t, path, sample())

	bad := State{Peers: map[wire.MAC]netip.AddrPort{mac3: {}}}
	if err := Save(path, bad); err == nil || !strings.Contains(err.Error(), mac3.String()) {
		t.Errorf("Save with an invalid address = %v, want an error naming %s", err, mac3)
	}
	if got := mustLoad(t, path); !reflect.DeepEqual(got, sample()) {
		t.Errorf("a rejected Save changed the file: %+v", got)
	}

	// The directory is a file.
	if err := Save(filepath.Join(path, "cache.json"), sample()); err == nil || !strings.Contains(err.Error(), "peercache: save") {
		t.Errorf("Save under a file = %v, want an error", err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after failed Saves, want only the cache", len(entries))
	}
}
