package pki

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Revocation: List shows every recorded certificate and its state, and
// the serials the CRL alone knows.
func TestList(t *testing.T) {
	caDir := initCA(t)
	b, a1 := issue(t, caDir, macB), issue(t, caDir, macA)
	a2 := issue(t, caDir, macA)
	revokedAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := Revoke(caDir, []string{SerialString(serialOf(t, a1)), "abcd"}, revokedAt); err != nil {
		t.Fatal(err)
	}
	certs, err := List(caDir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range certs {
		got = append(got, c.MAC+" "+SerialString(c.Serial))
	}
	want := []string{
		macA.String() + " " + SerialString(serialOf(t, a1)),
		macA.String() + " " + SerialString(serialOf(t, a2)),
		macB.String() + " " + SerialString(serialOf(t, b)),
		" abcd",
	}
	// A's two certificates were issued within the same second or so;
	// NotBefore orders them unless it ties, when the serial does.
	if certs[0].NotBefore.Equal(certs[1].NotBefore) && serialOf(t, a1).Cmp(serialOf(t, a2)) > 0 {
		want[0], want[1] = want[1], want[0]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q (by MAC, then NotBefore; CRL-only last)", got, want)
	}
	for i, c := range certs {
		if c.InRecords != (i < 3) {
			t.Errorf("%s: InRecords %v", got[i], c.InRecords)
		}
	}

	now := time.Now()
	for i, c := range certs {
		status := c.Status(now)
		switch revoked := SerialString(c.Serial) == "abcd" || c.Serial.Cmp(serialOf(t, a1)) == 0; {
		case revoked && status != "revoked 2026-03-01":
			t.Errorf("%s: status %q, want revoked 2026-03-01", got[i], status)
		case !revoked && status != "valid":
			t.Errorf("%s: status %q, want valid", got[i], status)
		}
	}
}

func TestIssuedStatus(t *testing.T) {
	end := time.Date(2030, 6, 30, 0, 0, 0, 0, time.UTC)
	c := Issued{NotAfter: end}
	for _, tc := range []struct {
		now  time.Time
		want string
	}{
		{end.Add(-365 * 24 * time.Hour), "valid"},
		{end.Add(-31 * 24 * time.Hour), "valid"},
		{end.Add(-30 * 24 * time.Hour), "expires in 30 days"},
		{end.Add(-10*24*time.Hour - time.Hour), "expires in 11 days"},
		{end.Add(-time.Hour), "expires in 1 day"},
		{end, "expired"},
		{end.Add(24 * time.Hour), "expired"},
	} {
		if got := c.Status(tc.now); got != tc.want {
			t.Errorf("Status %v before the end = %q, want %q", end.Sub(tc.now), got, tc.want)
		}
	}
	c.Revoked, c.RevokedAt = true, time.Date(2029, 1, 2, 23, 0, 0, 0, time.FixedZone("", -2*3600))
	if got := c.Status(end.Add(-time.Hour)); got != "revoked 2029-01-03" {
		t.Errorf("revoked status %q, want revoked 2029-01-03 (in UTC)", got)
	}
}

func TestListEmptyAndBroken(t *testing.T) {
	caDir := initCA(t)
	if certs, err := List(caDir); err != nil || len(certs) != 0 {
		t.Errorf("List of a new CA = %v, %v; want nothing", certs, err)
	}
	// A record that another CA signed is an error naming the file.
	other := initCA(t)
	foreign, _ := os.ReadFile(filepath.Join(issue(t, other, macA), NodeCertFile))
	os.MkdirAll(filepath.Join(caDir, IssuedDir), 0o700)
	os.WriteFile(filepath.Join(caDir, IssuedDir, "1a.crt"), foreign, 0o644)
	if _, err := List(caDir); err == nil || !strings.Contains(err.Error(), "1a.crt") {
		t.Errorf("List with a foreign record = %v, want an error naming 1a.crt", err)
	}
	if _, err := List(t.TempDir()); err == nil {
		t.Error("List without a CA succeeded")
	}
}
