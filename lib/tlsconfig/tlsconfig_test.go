package tlsconfig

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/certgen"
)

var now = time.Now()

func newCA(t *testing.T) *certgen.CA {
	t.Helper()
	ca, err := certgen.NewCA("test CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *certgen.CA, name string, usage certgen.Usage, from, to time.Time) certgen.Pair {
	t.Helper()
	p, err := ca.Issue(name, []string{"127.0.0.1", "localhost"}, usage, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckPair(t *testing.T) {
	ca := newCA(t)
	good := issue(t, ca, "good", certgen.Server|certgen.Client, now.Add(-time.Hour), now.Add(time.Hour))
	other := issue(t, ca, "other", certgen.Server, now.Add(-time.Hour), now.Add(time.Hour))
	expired := issue(t, ca, "old", certgen.Server, now.Add(-2*time.Hour), now.Add(-time.Hour))
	future := issue(t, ca, "new", certgen.Server, now.Add(time.Hour), now.Add(2*time.Hour))
	clientOnly := issue(t, ca, "client", certgen.Client, now.Add(-time.Hour), now.Add(time.Hour))
	for _, c := range []struct {
		name      string
		cert, key []byte
		usage     Usage
		want      string // "" is success
	}{
		{"good server", good.CertPEM, good.KeyPEM, UsageServer, ""},
		{"good client", good.CertPEM, good.KeyPEM, UsageClient, ""},
		{"key of another cert", good.CertPEM, other.KeyPEM, UsageServer, "tls.cert_file, tls.key_file: "},
		{"expired", expired.CertPEM, expired.KeyPEM, UsageServer, `tls.cert_file: certificate "old" expired at`},
		{"not yet valid", future.CertPEM, future.KeyPEM, UsageServer, "not valid before"},
		{"client cert as server", clientOnly.CertPEM, clientOnly.KeyPEM, UsageServer, "is not for server authentication"},
		{"key in the cert file", good.KeyPEM, good.KeyPEM, UsageServer, "tls.cert_file: no PEM CERTIFICATE"},
		{"cert in the key file", good.CertPEM, good.CertPEM, UsageServer, "tls.key_file: no PEM private key"},
		{"empty", nil, nil, UsageServer, "tls.cert_file: no PEM"},
	} {
		_, err := CheckPair(c.cert, c.key, now, c.usage, "tls.cert_file", "tls.key_file")
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "(") {
			t.Errorf("%s: %v names no fix", c.name, err)
		}
	}
}

func TestCheckCA(t *testing.T) {
	ca := newCA(t)
	leaf := issue(t, ca, "leaf", certgen.Server, now.Add(-time.Hour), now.Add(time.Hour))
	oldCA, err := certgen.NewCA("old CA", now.Add(-48*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		bundle []byte
		want   string
	}{
		"a CA":            {ca.PEM, ""},
		"CA and leaf":     {append(append([]byte{}, leaf.CertPEM...), ca.PEM...), ""},
		"a leaf only":     {leaf.CertPEM, "none of its 1 certificates is a CA"},
		"expired CA":      {oldCA.PEM, `CA "old CA" expired`},
		"not PEM":         {[]byte("hello"), "no PEM CERTIFICATE"},
		"a key, not a CA": {leaf.KeyPEM, "no PEM CERTIFICATE"},
	} {
		_, err := CheckCA(c.bundle, now, "tls.ca_file")
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Mode: "off"}, ""},
		{Config{Mode: "ssl"}, "tls.mode"},
		{Config{Mode: ModeTLS}, "tls.cert_file, tls.key_file"},
		{Config{Mode: ModeTLS, CertFile: "c", KeyFile: "k"}, ""},
		{Config{Mode: ModeMTLS, CertFile: "c", KeyFile: "k"}, "tls.ca_file"},
		{Config{Mode: ModeMTLS, CertFile: "c", KeyFile: "k", CAFile: "ca", ClientCertFile: "cc"}, "tls.client_cert_file, tls.client_key_file"},
		{Config{Mode: ModeTLS, CertFile: "c", KeyFile: "k", ReloadInterval: -1}, "tls.reload_interval"},
	} {
		err := c.cfg.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// files writes a CA bundle and a server+client pair into a folder and returns an mtls
// config naming them.
func files(t *testing.T, ca *certgen.CA, p certgen.Pair) Config {
	t.Helper()
	dir := t.TempDir()
	cert, key, err := p.Write(dir, "node")
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(dir, "ca.pem")
	if err := certgen.WriteFile(caPath, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return Config{Mode: ModeMTLS, CertFile: cert, KeyFile: key, CAFile: caPath}
}

func TestLoadNamesTheBadFile(t *testing.T) {
	ca := newCA(t)
	cfg := files(t, ca, issue(t, ca, "node", certgen.Server|certgen.Client, now.Add(-time.Hour), now.Add(time.Hour)))
	missing := cfg
	missing.KeyFile = filepath.Join(t.TempDir(), "nope.pem")
	if _, err := Load(missing, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Errorf("missing key: %v", err)
	}
	badCA := cfg
	badCA.CAFile = cfg.CertFile
	if _, err := Load(badCA, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("a leaf as CA: %v", err)
	}
	serverOnly := issue(t, ca, "server", certgen.Server, now.Add(-time.Hour), now.Add(time.Hour))
	if _, err := Load(files(t, ca, serverOnly), zap.NewNop()); err == nil || !strings.Contains(err.Error(), "client authentication") {
		t.Errorf("a server-only certificate as the client one: %v", err)
	}
	off, err := Load(Config{}, zap.NewNop())
	if err != nil || off.ServerConfig(true) != nil || off.ClientConfig() != nil || off.Scheme() != "http" {
		t.Errorf("off: %v", err)
	}
}

// serve starts an HTTPS server with t's config and returns its address.
func serve(t *testing.T, tt *TLS, requireClient bool) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tt.ServerConfig(requireClient))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			name = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		_, _ = io.WriteString(w, name)
	}), ErrorLog: log.New(io.Discard, "", 0)} // refused handshakes are the point
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func get(c *http.Client, addr string) (string, string, error) {
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.TLS.PeerCertificates[0].Subject.CommonName, err
}

// TestMTLSAndRotation: a client with the CA and a certificate gets through; one
// without a certificate does not where one is required, and does where it is only
// verified if given; new files are served from the next handshake on while an open
// connection keeps working; bad new files are refused and the last good pair stays.
func TestMTLSAndRotation(t *testing.T) {
	ca := newCA(t)
	cfg := files(t, ca, issue(t, ca, "node-1", certgen.Server|certgen.Client, now.Add(-time.Hour), now.Add(time.Hour)))
	tt, err := Load(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if tt.ServerConfig(true).MinVersion != tls.VersionTLS12 {
		t.Error("minimum TLS version is not 1.2")
	}
	strict, lax := serve(t, tt, true), serve(t, tt, false)
	tr := &http.Transport{TLSClientConfig: tt.ClientConfig()}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if body, server, err := get(client, strict); err != nil || body != "node-1" || server != "node-1" {
		t.Fatalf("mtls call: %q %q %v", body, server, err)
	}
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tt.pool}}, Timeout: 10 * time.Second}
	if _, _, err := get(anon, strict); err == nil {
		t.Error("a client without a certificate got through where one is required")
	}
	if body, _, err := get(anon, lax); err != nil || body != "-" {
		t.Errorf("a client without a certificate, none required: %q %v", body, err)
	}
	noCA := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	if _, _, err := get(noCA, lax); err == nil {
		t.Error("a client that does not trust the CA accepted the server")
	}

	// Rotate: the open (keep-alive) connection keeps its certificate, a new one gets
	// the new certificate.
	rotated := issue(t, ca, "node-1-rotated", certgen.Server|certgen.Client, now.Add(-time.Hour), now.Add(time.Hour))
	if _, _, err := rotated.Write(filepath.Dir(cfg.CertFile), "node"); err != nil {
		t.Fatal(err)
	}
	tt.Reload()
	if _, server, err := get(client, strict); err != nil || server != "node-1" {
		t.Errorf("open connection after rotation: %q %v", server, err)
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: tt.ClientConfig()}, Timeout: 10 * time.Second}
	if body, server, err := get(fresh, strict); err != nil || server != "node-1-rotated" || body != "node-1-rotated" {
		t.Errorf("new connection after rotation: %q %q %v", body, server, err)
	}

	// An expired pair, or half a rotation (a new cert with the old key), is refused:
	// the rotated pair stays in use.
	expired := issue(t, ca, "node-1-expired", certgen.Server|certgen.Client, now.Add(-2*time.Hour), now.Add(-time.Hour))
	if _, _, err := expired.Write(filepath.Dir(cfg.CertFile), "node"); err != nil {
		t.Fatal(err)
	}
	tt.Reload()
	if err := os.WriteFile(cfg.KeyFile, rotated.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tt.Reload()
	if tt.Failures() != 4 { // twice each: the files are the server's and the client's pair
		t.Errorf("%d reloads refused, want 4", tt.Failures())
	}
	other := &http.Client{Transport: &http.Transport{TLSClientConfig: tt.ClientConfig()}, Timeout: 10 * time.Second}
	if _, server, err := get(other, strict); err != nil || server != "node-1-rotated" {
		t.Errorf("after refused reloads: %q %v", server, err)
	}
}
