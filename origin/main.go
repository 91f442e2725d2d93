// Command shoal-origin is a dedicated seeder: a content-addressed blob store that takes
// uploads from the proxy, writes them back to a backend, fetches misses from it, and
// seeds every blob it holds over BitTorrent.
package main

import (
	"context"
	"flag"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-p2p/shoal/lib/backend/driver"
	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/config"
	"github.com/shoal-p2p/shoal/lib/daemon"
	"github.com/shoal-p2p/shoal/lib/eviction"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/taskqueue"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
)

func main() { daemon.Main("origin", run) }

func run(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	return daemon.Run("origin", cfg.Log, func(ctx context.Context, env daemon.Env) error {
		log, reg := env.Log, env.Metrics
		sec, err := tlsconfig.Load(cfg.TLS, log.Named("tls"))
		if err != nil {
			return err
		}
		be, err := driver.OpenRouted(ctx, cfg.Backend, cfg.Namespaces, log.Named("backend"))
		if err != nil {
			return err
		}
		store, err := blobstore.New(cfg.DataDir)
		if err != nil {
			return err
		}
		engine, err := p2p.New(cfg.P2P, store, log.Named("p2p"), reg.Scope.SubScope("p2p"))
		if err != nil {
			return err
		}
		defer engine.Close()

		tasks, err := taskqueue.Open(filepath.Join(cfg.DataDir, "tasks.db"))
		if err != nil {
			return err
		}
		defer tasks.Close()

		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sec.Run(ctx) })
		var cluster Cluster
		if cfg.clustered() {
			set, err := originset.New(cfg.Cluster, sec.HTTPClient(), log.Named("cluster"), reg.Scope.SubScope("cluster"))
			if err != nil {
				return err
			}
			cluster = Cluster{Set: set, Self: strings.TrimRight(cfg.Advertise, "/")}
			g.Go(func() error { return set.Run(ctx) })
		}
		srv := NewServer(store, be, engine, tasks, cluster, log, reg.Scope)
		g.Go(func() error { return srv.Run(ctx) })
		evictor := eviction.NewRunner(cfg.Eviction, store, tasks.Pinned, func(d digest.Digest) error {
			return engine.Evict(d, func() error { return store.Remove(d) })
		}, log.Named("eviction"), reg.Scope.SubScope("eviction"))
		g.Go(func() error { return evictor.Run(ctx) })
		g.Go(func() error { return expireUploads(ctx, store, cfg.UploadTTL, log, reg.Scope) })
		g.Go(func() error {
			return cfg.HTTP.Serve(ctx, cfg.Listen, httpserver.WithDebug(sec.RequireClientCert(srv.Handler(reg.Handler)), cfg.Debug), log, sec.ServerConfig(false))
		})
		return g.Wait()
	})
}

func loadConfig(args []string) (Config, error) {
	fs := flag.NewFlagSet("shoal-origin", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (example: config/origin.yaml)")
	listen := fs.String("listen", "", "HTTP listen address; overrides listen")
	dataDir := fs.String("data-dir", "", "blob store directory; overrides data_dir")
	peerIP := fs.String("peer-ip", "", "P2P listen IP; overrides p2p.listen_ip")
	peerPort := fs.Int("peer-port", 0, "P2P listen port; overrides p2p.listen_port")
	advertise := fs.String("advertise", "", "this origin's base URL as the cluster lists it; overrides advertise")
	cfg := DefaultConfig()
	err := config.FromArgs(fs, args, path, &cfg, func() {
		config.Set(&cfg.Listen, *listen)
		config.Set(&cfg.DataDir, *dataDir)
		config.Set(&cfg.P2P.ListenIP, *peerIP)
		config.Set(&cfg.P2P.ListenPort, *peerPort)
		config.Set(&cfg.Advertise, *advertise)
	})
	return cfg, err
}
