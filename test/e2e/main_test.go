//go:build e2e

// Package e2e drives a local cluster of the built binaries with real clients: crane,
// skopeo and the Docker engine. Run with `make e2e` (builds binaries, installs tools).
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/test/cluster"
)

// dev is the cluster every test in this package shares; tests use distinct repositories.
var dev *cluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, err := cluster.FindRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	state, err := os.MkdirTemp("", "shoal-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dev, err = cluster.Start(ctx, cluster.Options{Root: root, State: state})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start cluster:", err)
		return 1
	}
	code := m.Run()
	dev.Stop()
	if code == 0 {
		os.RemoveAll(state)
	} else {
		fmt.Fprintln(os.Stderr, "cluster logs kept in", state)
	}
	return code
}
