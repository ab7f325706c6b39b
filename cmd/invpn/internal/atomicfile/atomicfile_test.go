package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Replace overwrites a stale temporary file, replaces the content, keeps
// the mode and leaves no temporary file.
func TestReplaceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path+".tmp", []byte("stale"), 0o600) // left by a crash
	for _, data := range []string{"one", "two"} {
		if err := Replace(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != data {
			t.Errorf("after replacing with %q the file holds %q", data, got)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// CreateNew never overwrites.
func TestCreateNewRefusesExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := CreateNew(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateNew(path, []byte("two"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second CreateNew = %v, want ErrExist", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "one" {
		t.Errorf("the file holds %q", got)
	}
}
