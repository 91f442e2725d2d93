//go:build e2e

// Package backends runs the local cluster of the built binaries (test/cluster: three
// origins, tracker, build-index, proxy, three agents, on the devcluster's fixed ports)
// against real storage servers that the tests start from PATH (.tools/bin via the
// Makefile): versitygw for S3, fake-gcs-server for GCS, and distribution's registry as
// the upstream of the pull-through backend. Each scenario starts its own servers and
// cluster with the configs in testdata/<scenario>/ and stops them at its end; its state
// (cluster, servers' data, logs) lives in a temporary folder kept when it fails.
//
// Run with `make e2e-backends`. It uses the same fixed ports as ./test/e2e, so the two
// packages must never run at the same time (the Makefile runs them one after the other),
// and its tests are not parallel.
package backends

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// The storage servers' fixed loopback addresses, outside Shoal's 15000-18999; the
// configs in testdata/ name the same.
const (
	s3Addr       = "127.0.0.1:19070"
	gcsAddr      = "127.0.0.1:19443"
	upstreamAddr = "127.0.0.1:19500"
)

// tools are the binaries the tests run, all installed by `make tools`.
var tools = []string{"crane", "versitygw", "fake-gcs-server", "distribution-registry"}

func TestMain(m *testing.M) {
	for _, name := range tools {
		if _, err := exec.LookPath(name); err != nil {
			fmt.Fprintf(os.Stderr, "%s is not on PATH: run make tools (installs it into .tools/bin) and "+
				"make e2e-backends, or add .tools/bin to PATH: %v\n", name, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
