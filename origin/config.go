package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/shoal-p2p/shoal/lib/backend/driver"
	"github.com/shoal-p2p/shoal/lib/eviction"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/logging"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
)

// Config is shoal-origin's configuration (example: config/origin.yaml).
type Config struct {
	// Listen is the HTTP address of the origin API (uploads, blobs, metainfo).
	Listen string `yaml:"listen"`
	// DataDir holds the content-addressed store.
	DataDir string `yaml:"data_dir"`
	// Log selects level and format.
	Log logging.Config `yaml:"log"`
	// Debug turns on diagnostics served on the listen address (pprof).
	Debug httpserver.Debug `yaml:"debug"`
	// HTTP bounds how long and how much a client may take to send a request.
	HTTP httpserver.Config `yaml:"http"`
	// TLS is the tls block shared by every binary (lib/tlsconfig): this listener's
	// certificate, and the client side of calls to the other components.
	TLS tlsconfig.Config `yaml:"tls"`
	// P2P is the BitTorrent engine the origin seeds every blob it holds through.
	P2P p2p.Config `yaml:"p2p"`
	// Backend is where committed blobs are written back and misses are fetched from.
	Backend driver.Config `yaml:"backend"`
	// Namespaces route repositories matching a regular expression to their own
	// backend (tried in order; the rest use backend). See docs/BACKENDS.md.
	Namespaces []driver.Namespace `yaml:"namespaces"`
	// Eviction bounds the store; blobs awaiting write-back are never evicted, and
	// evicted ones are fetched from the backend again on demand.
	Eviction eviction.Config `yaml:"eviction"`
	// Cluster lists all origins (this one included) when there are several: a blob
	// committed here is replicated to its owners by rendezvous hashing. Leave it out
	// for a single origin.
	Cluster originset.Config `yaml:"cluster"`
	// UploadTTL is how long an upload session may see no write before it is removed
	// as abandoned (default 1h; a client resuming later starts again).
	UploadTTL time.Duration `yaml:"upload_ttl"`
	// Advertise is this origin's base URL as the cluster lists it (e.g.
	// http://10.0.0.5:15200), so it knows which owner it is. Required with cluster.
	Advertise string `yaml:"advertise"`
}

// clustered reports whether the cluster block is in use.
func (c *Config) clustered() bool { return len(c.Cluster.Static) > 0 || c.Cluster.DNS != "" }

// DefaultConfig holds the values used for keys the file leaves out.
func DefaultConfig() Config {
	return Config{
		HTTP:      httpserver.DefaultConfig(),
		Listen:    "0.0.0.0:15200",
		DataDir:   "/var/lib/shoal/origin",
		P2P:       p2p.Config{ListenPort: 15201},
		Cluster:   originset.DefaultConfig(),
		UploadTTL: time.Hour,
	}
}

// Validate checks the whole config; each message names the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: empty (set listen: 0.0.0.0:15200 or pass --listen)"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: empty (set data_dir: /var/lib/shoal/origin or pass --data-dir)"))
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.P2P.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("p2p: %w", err))
	}
	if c.clustered() {
		if err := c.Cluster.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("cluster.%w", err))
		}
		if c.Advertise == "" {
			errs = append(errs, errors.New("advertise: empty (set advertise: this origin's URL as listed under cluster, or pass --advertise)"))
		}
	}
	if c.UploadTTL <= 0 {
		errs = append(errs, fmt.Errorf("upload_ttl: %s is not positive (set e.g. upload_ttl: 1h)", c.UploadTTL))
	}
	if err := c.Eviction.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := driver.ValidateNamespaces(c.Namespaces); err != nil {
		errs = append(errs, err)
	}
	if err := c.Backend.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
