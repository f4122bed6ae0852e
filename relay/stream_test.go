package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given serial.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "relay test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// streamClient runs a TURN client over an established stream connection to the relay.
func streamClient(t *testing.T, conn net.Conn) *turn.Client {
	t.Helper()
	u, p := RESTCredentials(testSecret, "stream", time.Hour, time.Now())
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: conn.RemoteAddr().String(),
		TURNServerAddr: conn.RemoteAddr().String(),
		Conn:           turn.NewSTUNConn(conn),
		Username:       u,
		Password:       p,
		Realm:          DefaultRealm,
		LoggerFactory:  pionLoggerFactory{slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

// relayOnce relays one datagram from the allocation to a loopback peer and back. The payloads are longer than
// 4 bytes: pion's STUNConn (client side) waits for 9 bytes before it frames anything, so a padded 8-byte
// ChannelData frame would sit in its buffer.
func relayOnce(t *testing.T, r net.PacketConn) {
	t.Helper()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	_ = peer.SetDeadline(time.Now().Add(5 * time.Second))
	_ = r.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.WriteTo([]byte("ping-ping"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping-ping" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	if _, err := peer.WriteTo([]byte("pong-pong"), from); err != nil {
		t.Fatal(err)
	}
	if n, _, err = r.ReadFrom(buf); err != nil || string(buf[:n]) != "pong-pong" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
}

func TestTCPControlConnection(t *testing.T) {
	s := startServer(t, nil)
	conn, err := net.Dial("tcp4", s.TCPAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	r, err := streamClient(t, conn).Allocate()
	if err != nil {
		t.Fatalf("Allocate over TCP: %v", err)
	}
	defer r.Close()
	relayOnce(t, r)
	if got := metric(t, s, "xjingle_relay_tcp_connections_active"); got != 1 {
		t.Errorf("tcp_connections_active = %v, want 1", got)
	}
}

// TestTCPAllocation relays a TCP stream to a loopback peer through an RFC 6062 allocation.
func TestTCPAllocation(t *testing.T) {
	s := startServer(t, nil)
	peer, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerGot := make(chan string, 1)
	go func() {
		c, err := peer.Accept()
		if err != nil {
			peerGot <- err.Error()
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			peerGot <- err.Error()
			return
		}
		_, _ = c.Write([]byte("world"))
		peerGot <- string(buf)
	}()

	ctrl, err := net.Dial("tcp4", s.TCPAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := streamClient(t, ctrl).AllocateTCP()
	if err != nil {
		t.Fatalf("AllocateTCP: %v", err)
	}
	defer alloc.Close()
	data, err := net.Dial("tcp4", s.TCPAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	conn, err := alloc.DialWithConn(data, "tcp4", peer.Addr().String())
	if err != nil {
		t.Fatalf("Connect/ConnectionBind: %v", err)
	}
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := <-peerGot; got != "hello" {
		t.Fatalf("peer got %q", got)
	}
	buf := make([]byte, 5)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "world" {
		t.Fatalf("client got %q, %v", buf, err)
	}
	// RFC 6062 traffic is in the metrics: 5 bytes each way over one dialled peer connection.
	for _, dir := range []string{"client_to_peer", "peer_to_client"} {
		if got := metric(t, s, "xjingle_relay_tcp_relayed_bytes_total", "direction", dir); got != 5 {
			t.Errorf("tcp_relayed_bytes_total{direction=%q} = %v, want 5", dir, got)
		}
	}
	if got := metric(t, s, "xjingle_relay_tcp_peer_connections_total"); got != 1 {
		t.Errorf("tcp_peer_connections_total = %v, want 1", got)
	}

	// A Connect to a denied peer is refused.
	if _, err := alloc.Connect(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 80}); err == nil {
		t.Error("Connect to 10.0.0.1 allowed")
	}
}

func TestTLSAndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, 1)
	s := startServer(t, func(c *Config) {
		c.TLSListen = []Listen{{Addr: "127.0.0.1:0"}}
		c.CertFile, c.KeyFile = certFile, keyFile
	})
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp4", s.TLSAddrs()[0].String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	conn := dial()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 1 {
		t.Errorf("serial %d, want 1", got)
	}
	r, err := streamClient(t, conn).Allocate()
	if err != nil {
		t.Fatalf("Allocate over TLS: %v", err)
	}
	defer r.Close()
	relayOnce(t, r)

	writeCert(t, dir, 2)
	if err := s.ReloadCertificates(); err != nil {
		t.Fatal(err)
	}
	c2 := dial()
	defer c2.Close()
	if got := c2.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 2 {
		t.Errorf("after reload serial %d, want 2", got)
	}
	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadCertificates(); err == nil {
		t.Error("reload of a broken certificate succeeded")
	}
	c3 := dial() // the old pair stays in use
	c3.Close()
}

// TestTCPHandshakeTimeout closes a connection that sends nothing.
func TestTCPHandshakeTimeout(t *testing.T) {
	s := startServer(t, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	conn, err := net.Dial("tcp4", s.TCPAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection read: %v, want EOF (closed by the relay)", err)
	}
}
