// Command shoal-tracker introduces the peers of each blob's swarm to one another and to
// the origins seeding it, and serves blob metainfo (fetched from the origins, cached).
// Its peer store lives in memory: peers re-announce every few seconds, so a restarted
// tracker is whole again within one announce interval.
package main

import (
	"context"
	"flag"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"golang.org/x/sync/errgroup"

	"github.com/shoal-p2p/shoal/lib/config"
	"github.com/shoal-p2p/shoal/lib/daemon"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/peerstore"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
)

func main() { daemon.Main("tracker", run) }

func run(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	return daemon.Run("tracker", cfg.Log, func(ctx context.Context, env daemon.Env) error {
		log, reg := env.Log, env.Metrics
		sec, err := tlsconfig.Load(cfg.TLS, log.Named("tls"))
		if err != nil {
			return err
		}
		// The tracker's live heap is small (peers and metainfo) and every announce
		// allocates a little, so the default GOGC=100 collects very often: GC was ~10% of
		// its CPU at 20,000 announces/s (docs/BENCHMARKS.md). GOGC overrides this.
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(400)
		}
		// SHOAL_CPUPROFILE names a file to write a CPU profile of the whole run into
		// (test/perf/tracker uses it; go tool pprof reads it).
		if path := os.Getenv("SHOAL_CPUPROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}

		hc := sec.HTTPClient()
		origins, err := originset.New(cfg.Origins, hc, log.Named("origins"), reg.Scope.SubScope("origins"))
		if err != nil {
			return err
		}
		store := peerstore.New(cfg.PeerTTL, cfg.SeederInterval+cfg.PeerTTL, cfg.MaxPeers)

		srv := NewServer(cfg, origins, store, log, reg.Scope)
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sec.Run(ctx) })
		g.Go(func() error {
			return cfg.HTTP.Serve(ctx, cfg.Listen, httpserver.WithDebug(sec.RequireClientCert(srv.Handler(reg.Handler)), cfg.Debug), log, sec.ServerConfig(false))
		})
		g.Go(func() error { return srv.ExpireLoop(ctx, cfg.PeerTTL) })
		g.Go(func() error { return origins.Run(ctx) })
		return g.Wait()
	})
}

func loadConfig(args []string) (Config, error) {
	fs := flag.NewFlagSet("shoal-tracker", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (example: config/tracker.yaml)")
	listen := fs.String("listen", "", "HTTP listen address; overrides listen")
	cfg := DefaultConfig()
	err := config.FromArgs(fs, args, path, &cfg, func() {
		config.Set(&cfg.Listen, *listen)
	})
	return cfg, err
}
