package tlsconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Mode is how a component uses TLS.
type Mode string

const (
	// ModeOff serves and calls plain HTTP (the default).
	ModeOff Mode = "off"
	// ModeTLS serves HTTPS and verifies the servers it calls (against ca_file, or the
	// system's roots without one).
	ModeTLS Mode = "tls"
	// ModeMTLS is ModeTLS, and every call to another component carries this
	// component's client certificate, and a listener that asks for one refuses
	// clients without a certificate from ca_file.
	ModeMTLS Mode = "mtls"
)

// Config is the tls block shared by every binary.
type Config struct {
	// Mode is off (default), tls or mtls.
	Mode Mode `yaml:"mode"`
	// CertFile and KeyFile are the listener's certificate (PEM, chain after the leaf)
	// and key. Required unless mode is off.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile is the CA bundle servers' certificates are verified against, and in mtls
	// clients' too. Required for mtls.
	CAFile string `yaml:"ca_file"`
	// ClientCertFile and ClientKeyFile are this component's client certificate for its
	// calls to the others (mtls); default cert_file and key_file (a certificate issued
	// for both server and client auth).
	ClientCertFile string `yaml:"client_cert_file"`
	ClientKeyFile  string `yaml:"client_key_file"`
	// ReloadInterval is how often the files are checked for a change; default 10s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// DefaultReloadInterval is how often certificate files are checked when the config
// names no interval.
const DefaultReloadInterval = 10 * time.Second

func (c Config) mode() Mode {
	if c.Mode == "" {
		return ModeOff
	}
	return c.Mode
}

// On reports whether TLS is on.
func (c Config) On() bool { return c.mode() != ModeOff }

// Scheme is the URL scheme of this config's listeners: https when on.
func (c Config) Scheme() string {
	if c.On() {
		return "https"
	}
	return "http"
}

func (c Config) clientFiles() (cert, key string) {
	if c.ClientCertFile != "" {
		return c.ClientCertFile, c.ClientKeyFile
	}
	return c.CertFile, c.KeyFile
}

// Validate checks the keys without reading the files (Load checks those); messages
// name the key (tls.…) and the fix.
func (c Config) Validate() error {
	var errs []error
	switch c.mode() {
	case ModeOff:
		return nil
	case ModeTLS, ModeMTLS:
	default:
		return fmt.Errorf("tls.mode: %q is not a mode (set off, tls or mtls)", c.Mode)
	}
	if c.CertFile == "" || c.KeyFile == "" {
		errs = append(errs, fmt.Errorf("tls.cert_file, tls.key_file: both needed with mode %s (set them to the PEM certificate and key)", c.mode()))
	}
	if c.mode() == ModeMTLS && c.CAFile == "" {
		errs = append(errs, errors.New("tls.ca_file: needed with mode mtls (set it to the CA bundle that issued every component's certificate)"))
	}
	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		errs = append(errs, errors.New("tls.client_cert_file, tls.client_key_file: set both or neither (neither uses cert_file and key_file)"))
	}
	if c.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("tls.reload_interval: %s is negative (use e.g. 10s)", c.ReloadInterval))
	}
	return errors.Join(errs...)
}

// TLS is a loaded config: the current certificates, swapped in place when their files
// change (Run). Safe for concurrent use.
type TLS struct {
	cfg  Config
	log  *zap.Logger
	now  func() time.Time
	pool *x509.CertPool // nil: the system's roots

	server, client keyPair
	failures       atomic.Int64
}

// keyPair is one certificate/key file pair and what was last loaded from it.
type keyPair struct {
	certKey, keyKey string // config keys, for messages
	certFile        string
	keyFile         string
	usage           Usage

	mu      sync.Mutex
	certPEM []byte
	keyPEM  []byte
	current atomic.Pointer[tls.Certificate]
}

// Load reads and checks every file cfg names. Off, it returns a TLS whose configs are
// nil (plain HTTP).
func Load(cfg Config, log *zap.Logger) (*TLS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	t := &TLS{cfg: cfg, log: log, now: time.Now}
	if !cfg.On() {
		return t, nil
	}
	now := t.now()
	if cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w (set it to a readable CA bundle)", err)
		}
		if t.pool, err = CheckCA(b, now, "tls.ca_file"); err != nil {
			return nil, err
		}
	}
	t.server = keyPair{certKey: "tls.cert_file", keyKey: "tls.key_file", certFile: cfg.CertFile, keyFile: cfg.KeyFile, usage: UsageServer}
	if _, err := t.server.reload(now); err != nil {
		return nil, err
	}
	if cfg.mode() == ModeMTLS {
		cert, key := cfg.clientFiles()
		t.client = keyPair{certKey: "tls.client_cert_file", keyKey: "tls.client_key_file", certFile: cert, keyFile: key, usage: UsageClient}
		if cfg.ClientCertFile == "" {
			t.client.certKey, t.client.keyKey = "tls.cert_file (as the client certificate)", "tls.key_file"
		}
		if _, err := t.client.reload(now); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// reload reads the pair's files and, when they differ from what is loaded and pass
// CheckPair, makes them current. It reports whether they changed.
func (p *keyPair) reload(now time.Time) (bool, error) {
	certPEM, err := os.ReadFile(p.certFile)
	if err != nil {
		return false, fmt.Errorf("%s: %w (set it to a readable PEM certificate)", p.certKey, err)
	}
	keyPEM, err := os.ReadFile(p.keyFile)
	if err != nil {
		return false, fmt.Errorf("%s: %w (set it to a readable PEM key)", p.keyKey, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytes.Equal(certPEM, p.certPEM) && bytes.Equal(keyPEM, p.keyPEM) {
		return false, nil
	}
	pair, err := CheckPair(certPEM, keyPEM, now, p.usage, p.certKey, p.keyKey)
	if err != nil {
		return false, err
	}
	p.certPEM, p.keyPEM = certPEM, keyPEM
	p.current.Store(&pair)
	return true, nil
}

// Run checks the files every reload_interval until ctx ends. A changed pair that
// passes the checks is used from the next handshake on (connections already open keep
// theirs); one that fails is logged and the last good one stays.
func (t *TLS) Run(ctx context.Context) error {
	if !t.cfg.On() {
		return nil
	}
	tick := time.NewTicker(t.cfg.ReloadInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		t.Reload()
	}
}

// Reload checks the files once (Run does it every reload_interval).
func (t *TLS) Reload() {
	if !t.cfg.On() {
		return
	}
	for _, p := range []*keyPair{&t.server, &t.client} {
		if p.certFile == "" {
			continue
		}
		changed, err := p.reload(t.now())
		switch {
		case err != nil:
			t.failures.Add(1)
			t.log.Error("tls: new certificate files refused; the last good ones stay in use", zap.Error(err))
		case changed:
			leaf := p.current.Load().Leaf
			t.log.Info("tls: certificate reloaded", zap.String("file", p.certFile),
				zap.String("subject", leaf.Subject.CommonName), zap.Time("not_after", leaf.NotAfter))
		}
	}
}

// Failures counts reloads refused since Load.
func (t *TLS) Failures() int64 { return t.failures.Load() }

// On reports whether TLS is on.
func (t *TLS) On() bool { return t.cfg.On() }

// Scheme is https when TLS is on, else http.
func (t *TLS) Scheme() string { return t.cfg.Scheme() }

// ServerConfig is the listener's TLS config (nil when off): TLS 1.2 at least, the
// current certificate on every handshake. In mtls, requireClient makes it refuse a
// client without a certificate from ca_file; without requireClient (the proxy's
// registry port, an agent's registry: docker and containerd have no certificates) a
// client certificate is verified when one is sent.
func (t *TLS) ServerConfig(requireClient bool) *tls.Config {
	if !t.cfg.On() {
		return nil
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.server.current.Load(), nil
		},
	}
	if t.cfg.mode() == ModeMTLS {
		c.ClientCAs = t.pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if requireClient {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c
}

// ClientConfig is the TLS config of this component's calls to the others (nil when
// off): servers verified against ca_file (or the system's roots), and in mtls this
// component's current client certificate.
func (t *TLS) ClientConfig() *tls.Config {
	if !t.cfg.On() {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: t.pool}
	if t.cfg.mode() == ModeMTLS {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.client.current.Load(), nil
		}
	}
	return c
}

// HTTPClient is an HTTP client for calls to other components: plain when TLS is off,
// else verifying servers (and, in mtls, presenting this component's certificate). It
// has no timeout: every call is bounded by its context.
func (t *TLS) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = t.ClientConfig()
	return &http.Client{Transport: tr}
}

// RequireClientCert wraps h, on a listener serving ServerConfig(false), so that in
// mtls every request but the probes (/health, /readiness, /metrics: kubelet and
// Prometheus have no client certificate) must come with a verified client certificate;
// others get 401 naming the reason. Off or in tls mode it returns h.
func (t *TLS) RequireClientCert(h http.Handler) http.Handler {
	if t.cfg.mode() != ModeMTLS {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health", "/readiness", "/metrics":
			h.ServeHTTP(w, r)
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized","message":"this component takes calls only from Shoal components with a client certificate from its CA (tls.mode mtls)"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
