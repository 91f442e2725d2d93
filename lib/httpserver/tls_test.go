package httpserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/certgen"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
)

// TestServeTLS: with lib/tlsconfig's server config a listener serves HTTPS; in mtls a
// component with its client certificate reaches every route, a caller without one only
// the probes (401 elsewhere), and plain HTTP gets nothing.
func TestServeTLS(t *testing.T) {
	now := time.Now()
	ca, err := certgen.NewCA("test CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Issue("origin", []string{"127.0.0.1"}, certgen.Server|certgen.Client, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := pair.Write(dir, "origin")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := certgen.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	sec, err := tlsconfig.Load(tlsconfig.Config{Mode: tlsconfig.ModeMTLS, CertFile: certFile, KeyFile: keyFile, CAFile: caFile}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK") })
	mux.HandleFunc("/blobs", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "blob") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- httpserver.DefaultConfig().ServeListener(ctx, ln, sec.RequireClientCert(mux), zap.NewNop(), sec.ServerConfig(false))
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	base := "https://" + ln.Addr().String()
	status := func(c *http.Client, path string) int {
		resp, err := c.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	component := sec.HTTPClient()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, c := range []struct {
		name   string
		client *http.Client
		path   string
		want   int
	}{
		{"component, API", component, "/blobs", http.StatusOK},
		{"component, probe", component, "/health", http.StatusOK},
		{"no client cert, API", anon, "/blobs", http.StatusUnauthorized},
		{"no client cert, probe", anon, "/health", http.StatusOK},
	} {
		if got := status(c.client, c.path); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	plain := &http.Client{Transport: &http.Transport{}}
	if resp, err := plain.Get("http://" + ln.Addr().String() + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP got an answer from the TLS listener")
		}
	}
	plain.CloseIdleConnections()
	component.CloseIdleConnections()
	anon.CloseIdleConnections()
}
