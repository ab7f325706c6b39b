package tlstransport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/invpn/invpn/wire"
)

// This file imitates an original v0.4 node on the wire
// (docs/protocol.md#interoperating-with-an-original-node): no ALPN, TLS 1.2 or
// 1.3, a client certificate requested without naming a CA, no SNI, and the
// peer's Common Name compared with the MAC expected.

// originalTLS is an original node's TLS configuration.
func originalTLS(cert tls.Certificate, pool *x509.CertPool, maxVersion uint16) *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         maxVersion,
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true, // checked below
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, _, err := verifyChain(cs, pool, x509.ExtKeyUsageAny)
			return err
		},
	}
}

// originalHello records what an original server saw of a client.
type originalHello struct {
	serverName string
	alpn       []string
	version    uint16
	peer       wire.MAC
}

// startOriginalServer accepts one connection on 127.0.0.1 as an original
// node would and echoes every message back until end of stream. If
// refuseSilently is set it instead completes the handshake and closes the
// TCP connection without a TLS alert, as an original node refusing a
// foreign client does. The result arrives on the returned channel when the
// connection ends.
func startOriginalServer(t *testing.T, cfg *tls.Config, refuseSilently bool) (addr string, done <-chan originalHello) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan originalHello, 1)
	var hello originalHello
	cfg = cfg.Clone()
	cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		hello.serverName = chi.ServerName
		hello.alpn = chi.SupportedProtos
		return nil, nil
	}
	go func() {
		defer close(ch)
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("original server: accept: %v", err)
			return
		}
		defer c.Close()
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			t.Errorf("original server: handshake: %v", err)
			return
		}
		cs := tc.ConnectionState()
		hello.version = cs.Version
		hello.peer, _ = MACFromCert(cs.PeerCertificates[0])
		if refuseSilently {
			ch <- hello
			return // the deferred c.Close closes TCP under TLS: no alert
		}
		echo(t, tc)
		ch <- hello
	}()
	t.Cleanup(func() { ln.Close(); <-ch })
	return ln.Addr().String(), ch
}

// echo writes every message read from c back to it until end of stream.
func echo(t *testing.T, c *tls.Conn) {
	r, w := wire.NewReader(c), wire.NewWriter(c)
	for {
		m, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				t.Logf("original node: read: %v", err)
			}
			return
		}
		if err := w.WriteMessage(m); err != nil {
			t.Errorf("original node: write: %v", err)
			return
		}
	}
}

// dialAsOriginal connects to addr as an original node expecting the MAC
// want, and reports the CAs the server named in its certificate request.
func dialAsOriginal(t *testing.T, addr string, cfg *tls.Config, want wire.MAC) (*tls.Conn, [][]byte) {
	t.Helper()
	cfg = cfg.Clone()
	var acceptable [][]byte
	cert := cfg.Certificates[0]
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		acceptable = cri.AcceptableCAs
		return &cert, nil
	}
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			return err
		}
		if got, err := MACFromCert(cs.PeerCertificates[0]); err != nil || got != want {
			return errors.New("original node: common name is not the MAC expected")
		}
		return nil
	}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("original node: dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, acceptable
}
