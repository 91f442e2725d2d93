package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/shoal-p2p/shoal/lib/logging"
)

// Config is shoal-proxy's configuration (example: config/proxy.yaml).
type Config struct {
	// Listen is the registry API address clients push to; /health and /metrics too.
	Listen string `yaml:"listen"`
	// Log selects level and format.
	Log logging.Config `yaml:"log"`
	// Origin is the origin's base URL, where blobs and manifests are uploaded.
	Origin string `yaml:"origin"`
	// BuildIndex is the build-index's base URL, where tags are written.
	BuildIndex string `yaml:"build_index"`
}

// DefaultConfig holds the values used for keys the file leaves out.
func DefaultConfig() Config {
	return Config{Listen: "0.0.0.0:15000"}
}

// Validate checks the whole config; each message names the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: empty (set listen: 0.0.0.0:15000 or pass --listen)"))
	}
	for _, u := range []struct{ key, val, example string }{
		{"origin", c.Origin, "http://origin:15200"},
		{"build_index", c.BuildIndex, "http://buildindex:15100"},
	} {
		if p, err := url.Parse(u.val); u.val == "" || err != nil || p.Scheme == "" || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not a base URL (set %s: %s)", u.key, u.val, u.key, u.example))
		}
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
