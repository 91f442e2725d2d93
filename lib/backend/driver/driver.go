// Package driver picks and opens a backend driver from config. The kinds table below is
// the one place a new driver (s3, gcs, ...) is added: no init() registration.
package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/filesystem"
	"github.com/shoal-p2p/shoal/lib/backend/gcs"
	"github.com/shoal-p2p/shoal/lib/backend/httpget"
	"github.com/shoal-p2p/shoal/lib/backend/registry"
	"github.com/shoal-p2p/shoal/lib/backend/s3"
)

// Config selects a backend driver and carries each driver's settings; only the one
// Kind names is used. A binary embeds it under the key "backend".
type Config struct {
	// Kind names the driver: fs (a directory), s3 or gcs (a bucket); registry (pull
	// through from an upstream registry) or http (blobs from a URL template), both
	// read-only.
	Kind string `yaml:"kind"`
	// FS configures the fs driver.
	FS filesystem.Config `yaml:"fs"`
	// S3 configures the s3 driver (AWS S3 or an S3-compatible server).
	S3 s3.Config `yaml:"s3"`
	// GCS configures the gcs driver (Google Cloud Storage or an emulator).
	GCS gcs.Config `yaml:"gcs"`
	// Registry configures the registry driver (read-only pull-through).
	Registry registry.Config `yaml:"registry"`
	// HTTP configures the http driver (read-only blobs from an HTTP server).
	HTTP httpget.Config `yaml:"http"`
}

// kinds maps each Kind to its validation and constructor.
var kinds = map[string]struct {
	validate func(Config) error
	open     func(context.Context, Config, *zap.Logger) (backend.Backend, error)
}{
	"fs": {
		validate: func(c Config) error {
			if c.FS.Root == "" {
				return errors.New("backend.fs.root: empty (set backend.fs.root to a directory, e.g. /var/lib/shoal/backend)")
			}
			return nil
		},
		open: func(_ context.Context, c Config, _ *zap.Logger) (backend.Backend, error) {
			return filesystem.New(c.FS)
		},
	},
	"s3": {
		validate: func(c Config) error { return c.S3.Validate() },
		open: func(ctx context.Context, c Config, log *zap.Logger) (backend.Backend, error) {
			return s3.New(ctx, c.S3)
		},
	},
	"gcs": {
		validate: func(c Config) error { return c.GCS.Validate() },
		open: func(ctx context.Context, c Config, log *zap.Logger) (backend.Backend, error) {
			return gcs.New(ctx, c.GCS)
		},
	},
	"registry": {
		validate: func(c Config) error { return c.Registry.Validate() },
		open: func(ctx context.Context, c Config, log *zap.Logger) (backend.Backend, error) {
			return registry.New(ctx, c.Registry, registry.WithLogger(log))
		},
	},
	"http": {
		validate: func(c Config) error { return c.HTTP.Validate() },
		open: func(_ context.Context, c Config, _ *zap.Logger) (backend.Backend, error) {
			return httpget.New(c.HTTP)
		},
	},
}

func kindNames() string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, " | ")
}

// Validate checks the kind and that driver's settings. Messages name the full key
// (backend.…) and the fix.
func (c Config) Validate() error {
	k, ok := kinds[c.Kind]
	switch {
	case c.Kind == "":
		return fmt.Errorf("backend.kind: empty (set backend.kind: %s)", kindNames())
	case !ok:
		return fmt.Errorf("backend.kind: unknown %q (set backend.kind: %s)", c.Kind, kindNames())
	}
	return k.validate(c)
}

// ReadOnly reports whether the kind only reads (a pull-through registry, http).
func (c Config) ReadOnly() bool { return c.Kind == "registry" || c.Kind == "http" }

// Open validates cfg and opens the driver it names; log is for drivers that report
// what they do (a pull-through serving a stale tag).
func Open(ctx context.Context, cfg Config, log *zap.Logger) (backend.Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, err := kinds[cfg.Kind].open(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("open %s backend: %w", cfg.Kind, err)
	}
	return b, nil
}
