// Command shoal-buildindex maps repository tags to manifest digests. The proxy writes
// a tag after a push; agents resolve tags through it on every pull. Tags live in the
// backend, in docker/distribution's layout, so the process holds no state of its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/shoal-p2p/shoal/lib/backend/driver"
	"github.com/shoal-p2p/shoal/lib/backend/writeback"
	"github.com/shoal-p2p/shoal/lib/config"
	"github.com/shoal-p2p/shoal/lib/daemon"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/taskqueue"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
)

func main() { daemon.Main("buildindex", run) }

func run(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	return daemon.Run("buildindex", cfg.Log, func(ctx context.Context, env daemon.Env) error {
		log, reg := env.Log, env.Metrics
		sec, err := tlsconfig.Load(cfg.TLS, log.Named("tls"))
		if err != nil {
			return err
		}
		be, err := driver.OpenRouted(ctx, cfg.Backend, cfg.Namespaces, log.Named("backend"))
		if err != nil {
			return err
		}

		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sec.Run(ctx) })
		if !cfg.Backend.ReadOnly() {
			// Tags are acknowledged once durable here and reach the backend later, so a
			// push goes through while the object store is away.
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				return fmt.Errorf("data_dir: %w", err)
			}
			tasks, err := taskqueue.Open(filepath.Join(cfg.DataDir, "tasks.db"))
			if err != nil {
				return err
			}
			defer tasks.Close()
			wb, err := writeback.New(be, filepath.Join(cfg.DataDir, "pending"), tasks, log.Named("writeback"), reg.Scope.SubScope("writeback"))
			if err != nil {
				return err
			}
			g.Go(func() error { return wb.Run(ctx) })
			be = wb
		}
		srv := NewServer(be, log, reg.Scope)
		g.Go(func() error {
			return cfg.HTTP.Serve(ctx, cfg.Listen, httpserver.WithDebug(sec.RequireClientCert(srv.Handler(reg.Handler)), cfg.Debug), log, sec.ServerConfig(false))
		})
		return g.Wait()
	})
}

func loadConfig(args []string) (Config, error) {
	fs := flag.NewFlagSet("shoal-buildindex", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (example: config/buildindex.yaml)")
	listen := fs.String("listen", "", "HTTP listen address; overrides listen")
	dataDir := fs.String("data-dir", "", "directory of tags awaiting write-back; overrides data_dir")
	cfg := DefaultConfig()
	err := config.FromArgs(fs, args, path, &cfg, func() {
		config.Set(&cfg.Listen, *listen)
		config.Set(&cfg.DataDir, *dataDir)
	})
	return cfg, err
}
