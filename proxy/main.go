// Command shoal-proxy is the push door: the Docker Registry v2 / OCI distribution API,
// read and write, storing blobs on the origins and tags in build-index.
package main

import (
	"context"
	"flag"

	"golang.org/x/sync/errgroup"

	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/config"
	"github.com/shoal-p2p/shoal/lib/daemon"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/regauth"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
)

func main() { daemon.Main("proxy", run) }

func run(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	return daemon.Run("proxy", cfg.Log, func(ctx context.Context, env daemon.Env) error {
		log, reg := env.Log, env.Metrics
		sec, err := tlsconfig.Load(cfg.TLS, log.Named("tls"))
		if err != nil {
			return err
		}
		// No client timeout: layer uploads stream for as long as they take.
		hc := sec.HTTPClient() // no timeout: layer uploads stream for as long as they take
		origins, err := originset.New(cfg.Origins, hc, log.Named("origins"), reg.Scope.SubScope("origins"))
		if err != nil {
			return err
		}
		srv := NewServer(cfg.Limits, origins, buildindexclient.New(cfg.BuildIndex, hc), log, reg.Scope)
		auth, err := regauth.Load(cfg.Auth)
		if err != nil {
			return err
		}
		if auth != nil {
			srv.WithAuth(auth)
		}
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sec.Run(ctx) })
		if cfg.Preheat.Enabled {
			p, err := NewPreheat(ctx, cfg.Preheat, origins, cfg.Limits.StallTimeout, hc, log.Named("preheat"), reg.Scope.SubScope("preheat"))
			if err != nil {
				return err
			}
			defer p.Close() // after the server and the origin set have stopped
			srv.WithPreheat(p)
			g.Go(func() error { return p.Run(ctx) })
		}
		g.Go(func() error {
			return cfg.HTTP.Serve(ctx, cfg.Listen, httpserver.WithDebug(srv.Handler(reg.Handler), cfg.Debug), log, sec.ServerConfig(false))
		})
		g.Go(func() error { return origins.Run(ctx) })
		return g.Wait()
	})
}

func loadConfig(args []string) (Config, error) {
	fs := flag.NewFlagSet("shoal-proxy", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (example: config/proxy.yaml)")
	listen := fs.String("listen", "", "registry listen address; overrides listen")
	cfg := DefaultConfig()
	err := config.FromArgs(fs, args, path, &cfg, func() {
		config.Set(&cfg.Listen, *listen)
	})
	return cfg, err
}
