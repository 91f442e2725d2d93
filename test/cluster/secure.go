package cluster

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/shoal-p2p/shoal/lib/certgen"
)

// Security is what a secured cluster (Options.Secure) was given: the CA every
// component trusts, the push user, and a client for tests (it trusts the CA and holds a
// client certificate, as a component does).
type Security struct {
	CAFile   string // <state>/certs/ca.pem
	User     string
	Password string
	// Client calls any component: the CA trusted, a client certificate presented.
	Client *http.Client
}

// secureComponents are the kinds of process with their own certificate.
var secureComponents = []string{"proxy", "buildindex", "origin", "tracker", "agent"}

// secure generates <state>/certs (a CA and one server+client certificate per kind of
// component, for 127.0.0.1 and localhost), <state>/htpasswd with a random password for
// user "shoal", and <state>/config: configDir's files with every http://127.0.0.1 base
// URL made https and a tls block in mtls mode added (the proxy also gets auth). It
// returns the folder of those configs.
func (c *Cluster) secure(configDir string) (string, error) {
	certs := filepath.Join(c.State, "certs")
	configs := filepath.Join(c.State, "config")
	for _, d := range []string{certs, configs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	now := time.Now()
	ca, err := certgen.NewCA("Shoal devcluster CA", now, 30*24*time.Hour)
	if err != nil {
		return "", err
	}
	caFile := filepath.Join(certs, "ca.pem")
	if err := certgen.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		return "", err
	}
	paths := map[string][2]string{}
	for _, name := range append(secureComponents, "client") {
		pair, err := ca.Issue("shoal-"+name, []string{"127.0.0.1", "localhost"}, certgen.Server|certgen.Client,
			now.Add(-time.Hour), now.Add(30*24*time.Hour))
		if err != nil {
			return "", err
		}
		cert, key, err := pair.Write(certs, name)
		if err != nil {
			return "", err
		}
		paths[name] = [2]string{cert, key}
	}
	secret := make([]byte, 12)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	password := hex.EncodeToString(secret)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	htpasswd := filepath.Join(c.State, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("shoal:"+string(hash)+"\n"), 0o600); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(configDir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		kind := strings.TrimSuffix(e.Name(), ".yaml")
		if strings.HasPrefix(kind, "agent") { // agent.yaml, agent1.yaml, ...
			kind = "agent"
		}
		p, ok := paths[kind]
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(configDir, e.Name()))
		if err != nil {
			return "", err
		}
		out := strings.ReplaceAll(string(b), "http://127.0.0.1", "https://127.0.0.1")
		out += fmt.Sprintf("\n# added by test/cluster (Secure)\ntls:\n  mode: mtls\n  cert_file: %s\n  key_file: %s\n  ca_file: %s\n", p[0], p[1], caFile)
		if kind == "proxy" {
			out += fmt.Sprintf("auth:\n  htpasswd: %s\n", htpasswd)
		}
		if err := os.WriteFile(filepath.Join(configs, e.Name()), []byte(out), 0o644); err != nil {
			return "", err
		}
	}
	client, err := clientWith(caFile, paths["client"][0], paths["client"][1])
	if err != nil {
		return "", err
	}
	c.Security = &Security{CAFile: caFile, User: "shoal", Password: password, Client: client}
	return configs, nil
}

func clientWith(caFile, certFile, keyFile string) (*http.Client, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	pool, err := certPool(caPEM)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{pair}}
	return &http.Client{Transport: tr}, nil
}

func certPool(caPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in the bundle")
	}
	return pool, nil
}
