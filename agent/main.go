// Command shoal-agent runs on every node: it serves the read side of the registry API
// to dockerd and containerd, fetches blobs piece by piece from peers and origins, and
// seeds them onward.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/config"
	"github.com/shoal-p2p/shoal/lib/containerdhosts"
	"github.com/shoal-p2p/shoal/lib/daemon"
	"github.com/shoal-p2p/shoal/lib/eviction"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/mirror"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
	"github.com/shoal-p2p/shoal/lib/warmfeed"
)

func main() { daemon.Main("agent", run) }

func run(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	return daemon.Run("agent", cfg.Log, func(ctx context.Context, env daemon.Env) error {
		log, reg := env.Log, env.Metrics
		sec, err := tlsconfig.Load(cfg.TLS, log.Named("tls"))
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

		hc := sec.HTTPClient()
		origins, err := originset.New(cfg.Origins, hc, log.Named("origins"), reg.Scope.SubScope("origins"))
		if err != nil {
			return err
		}
		trackers, err := trackerclient.NewTrackers(cfg.TrackerSet(), hc, log.Named("trackers"), reg.Scope.SubScope("trackers"))
		if err != nil {
			return err
		}
		srv := NewServer(ServerDeps{
			Store:      store,
			Engine:     engine,
			Trackers:   trackers,
			Origins:    origins,
			BuildIndex: buildindexclient.New(cfg.BuildIndex, hc),
			Transport:  hc.Transport,
		}, cfg, log, reg.Scope)
		if dir := cfg.Mirror.Containerd.HostsDir; dir != "" {
			hosts := mirror.HostFiles(cfg.Mirror.Upstreams, cfg.Proxy, cfg.Mirror.Containerd.Default)
			written, err := containerdhosts.Install(dir, hosts, cfg.MirrorURL(), cfg.Mirror.Containerd.DialTimeout)
			// Whatever was written is put back on the way out, a failed install included.
			defer func() {
				if err := containerdhosts.Restore(dir, written); err != nil {
					log.Error("restore containerd host files", zap.Error(err))
				} else {
					log.Info("restored containerd host files", zap.String("hosts_dir", dir), zap.Strings("registries", written))
				}
			}()
			if err != nil {
				return err
			}
			log.Info("containerd host files point at this agent", zap.String("hosts_dir", dir),
				zap.Strings("registries", written), zap.String("mirror", cfg.MirrorURL()))
		}
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sec.Run(ctx) })
		g.Go(func() error {
			return cfg.HTTP.Serve(ctx, cfg.Listen, httpserver.WithDebug(srv.Handler(reg.Handler), cfg.Debug), log, sec.ServerConfig(false))
		})
		g.Go(func() error { return origins.Run(ctx) })
		g.Go(func() error { return trackers.Run(ctx) })
		hostname, err := os.Hostname()
		if err != nil {
			hostname = "agent"
		}
		_, p2pPort := engine.Addr()
		feed := warmfeed.NewFollower(cfg.Warm, cfg.WarmAgent(hostname, p2pPort), func() []warmfeed.Tracker {
			var ts []warmfeed.Tracker
			for _, c := range trackers.Members() {
				ts = append(ts, warmfeed.NewClient(c.Addr(), hc))
			}
			return ts
		}, srv.Warm, log.Named("warmfeed"), reg.Scope)
		g.Go(func() error { return feed.Run(ctx) })
		evictor := eviction.NewRunner(cfg.Eviction, store, nil, func(d digest.Digest) error {
			return engine.Evict(d, func() error { return store.Remove(d) })
		}, log.Named("eviction"), reg.Scope.SubScope("eviction"))
		g.Go(func() error { return evictor.Run(ctx) })
		return g.Wait()
	})
}

func loadConfig(args []string) (Config, error) {
	fs := flag.NewFlagSet("shoal-agent", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (example: config/agent.yaml)")
	listen := fs.String("listen", "", "registry listen address; overrides listen")
	dataDir := fs.String("data-dir", "", "blob cache directory; overrides data_dir")
	peerIP := fs.String("peer-ip", "", "P2P listen IP; overrides p2p.listen_ip")
	peerPort := fs.Int("peer-port", 0, "P2P listen port; overrides p2p.listen_port")
	cfg := DefaultConfig()
	err := config.FromArgs(fs, args, path, &cfg, func() {
		config.Set(&cfg.Listen, *listen)
		config.Set(&cfg.DataDir, *dataDir)
		config.Set(&cfg.P2P.ListenIP, *peerIP)
		config.Set(&cfg.P2P.ListenPort, *peerPort)
	})
	return cfg, err
}
