package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/logging"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/regauth"
	"github.com/shoal-p2p/shoal/lib/registry"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
)

// Config is shoal-proxy's configuration (example: config/proxy.yaml).
type Config struct {
	// Listen is the registry API address clients push to; /health and /metrics too.
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
	// Limits bound manifests, list pages and the upload sessions a client may hold open.
	Limits registry.Limits `yaml:"limits"`
	// Origins are the origin cluster blobs and manifests are uploaded to (each upload
	// session to one healthy origin) and read from (in each blob's placement order).
	Origins originset.Config `yaml:"origins"`
	// BuildIndex is the build-index's base URL, where tags are written.
	BuildIndex string `yaml:"build_index"`
	// Preheat serves Harbor's P2P preheat providers (kraken and dragonfly) on the
	// listen address. Off by default.
	Preheat PreheatConfig `yaml:"preheat"`
	// Auth makes the registry API (push and pull) require a user of an htpasswd file
	// (lib/regauth). Off by default.
	Auth regauth.Config `yaml:"auth"`
}

// DefaultConfig holds the values used for keys the file leaves out.
func DefaultConfig() Config {
	return Config{
		Listen:  "0.0.0.0:15000",
		HTTP:    httpserver.DefaultConfig(),
		Limits:  registry.DefaultLimits(),
		Origins: originset.DefaultConfig(),
		Preheat: PreheatConfig{Trackers: trackerclient.DefaultSetConfig()},
	}
}

// Validate checks the whole config; each message names the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: empty (set listen: 0.0.0.0:15000 or pass --listen)"))
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("limits: %w", err))
	}
	if err := c.Origins.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("origins: %w", err))
	}
	if p, err := url.Parse(c.BuildIndex); c.BuildIndex == "" || err != nil || p.Scheme == "" || p.Host == "" {
		errs = append(errs, fmt.Errorf("build_index: %q is not a base URL (set build_index: http://buildindex:15100)", c.BuildIndex))
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Preheat.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
