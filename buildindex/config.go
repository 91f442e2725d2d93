package main

import (
	"errors"
	"fmt"

	"github.com/shoal-p2p/shoal/lib/backend/driver"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/logging"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
)

// Config is shoal-buildindex's configuration (example: config/buildindex.yaml).
type Config struct {
	// Listen is the HTTP address of the build-index API (tags).
	Listen string `yaml:"listen"`
	// Log selects level and format.
	Log logging.Config `yaml:"log"`
	// Debug turns on diagnostics served on the listen address (pprof).
	Debug httpserver.Debug `yaml:"debug"`
	// HTTP bounds how long and how much a client may take to send a request.
	HTTP httpserver.Config `yaml:"http"`
	// TLS is the tls block shared by every binary (lib/tlsconfig): this listener's
	// certificate, and the client side of calls to the other components.
	TLS tlsconfig.Config `yaml:"tls"`
	// Backend holds the tags; it is the only state, so any build-index over the same
	// backend answers the same.
	Backend driver.Config `yaml:"backend"`
	// Namespaces route repositories matching a regular expression to their own
	// backend (tried in order; the rest use backend). See docs/BACKENDS.md.
	Namespaces []driver.Namespace `yaml:"namespaces"`
	// DataDir holds tags acknowledged but not yet in the backend (and their queue),
	// so a restart loses none. Unused with a read-only backend.
	DataDir string `yaml:"data_dir"`
}

// DefaultConfig holds the values used for keys the file leaves out.
func DefaultConfig() Config {
	return Config{Listen: "0.0.0.0:15100", HTTP: httpserver.DefaultConfig(), DataDir: "/var/lib/shoal/buildindex"}
}

// Validate checks the whole config; each message names the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: empty (set listen: 0.0.0.0:15100 or pass --listen)"))
	}
	if c.DataDir == "" && !c.Backend.ReadOnly() {
		errs = append(errs, errors.New("data_dir: empty (set data_dir: /var/lib/shoal/buildindex or pass --data-dir)"))
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
	if err := driver.ValidateNamespaces(c.Namespaces); err != nil {
		errs = append(errs, err)
	}
	if err := c.Backend.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
