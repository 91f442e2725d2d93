// Command shoal-proxy is the push door: the Docker Registry v2 / OCI distribution API,
// read and write, storing blobs on the origins and tags in build-index.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/config"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/logging"
	"github.com/shoal-p2p/shoal/lib/metrics"
	"github.com/shoal-p2p/shoal/lib/originset"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "shoal-proxy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log, err := logging.New(cfg.Log, "proxy")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	reg, err := metrics.New("shoal_proxy", time.Second)
	if err != nil {
		return err
	}
	defer reg.Close()

	// No client timeout: layer uploads stream for as long as they take.
	hc := &http.Client{}
	origins, err := originset.New(cfg.Origins, hc, log.Named("origins"), reg.Scope.SubScope("origins"))
	if err != nil {
		return err
	}
	srv := NewServer(origins, buildindexclient.New(cfg.BuildIndex, hc), log, reg.Scope)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserver.Serve(ctx, cfg.Listen, srv.Handler(reg.Handler), log) })
	g.Go(func() error { return origins.Run(ctx) })
	return g.Wait()
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
