// Package daemon is the start-up every Shoal binary shares: the work of main runs
// under a context that SIGINT or SIGTERM cancels, with the zap logger and the tally
// registry built once here, and a failure becomes one line on stderr and exit code 1.
package daemon

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/logging"
	"github.com/shoal-p2p/shoal/lib/metrics"
)

// Env is what a binary's body gets.
type Env struct {
	Log     *zap.Logger
	Metrics *metrics.Registry
}

// Main runs run on the command line's arguments; an error is printed as
// "shoal-<component>: <error>" and the process exits 1.
func Main(component string, run func(args []string) error) {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "shoal-%s: %v\n", component, err)
		os.Exit(1)
	}
}

// Run builds the logger (named component) and the metrics registry (prefix
// shoal_<component>), runs body until it returns or a signal cancels its context,
// then flushes both.
func Run(component string, logCfg logging.Config, body func(ctx context.Context, env Env) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log, err := logging.New(logCfg, component)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	reg, err := metrics.New("shoal_"+component, time.Second)
	if err != nil {
		return err
	}
	defer reg.Close()
	return body(ctx, Env{Log: log, Metrics: reg})
}
