package daemon

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/invpn/invpn/cmd/invpn/internal/pki"
	"github.com/invpn/invpn/transport/tlstransport"
	"github.com/invpn/invpn/wire"
)

// Helpers of the tests on real TLS links (interop_test.go and the
// benchmarks). `invpn run`'s own TLS set-up, from the configuration file,
// is tested in cmd/invpn (runconfig_test.go).

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) uint16 {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// issueIdentity issues a certificate for mac with the CA in caDir into dir
// and reads it back as `invpn run` does: the MAC is the certificate's
// Common Name.
func issueIdentity(tb testing.TB, caDir, dir string, mac wire.MAC) tlstransport.Config {
	tb.Helper()
	if err := pki.IssueNode(caDir, mac, dir); err != nil {
		tb.Fatal(err)
	}
	cert, err := pki.LoadKeyPair(filepath.Join(dir, pki.NodeCertFile), filepath.Join(dir, pki.NodeKeyFile))
	if err != nil {
		tb.Fatal(err)
	}
	if got, err := tlstransport.MACFromCert(cert.Leaf); err != nil || got != mac {
		tb.Fatalf("identity %s: %v, want %s", got, err, mac)
	}
	pool, err := pki.LoadCertPool(filepath.Join(dir, pki.CACertFile))
	if err != nil {
		tb.Fatal(err)
	}
	return tlstransport.Config{Cert: cert, CAs: pool}
}
