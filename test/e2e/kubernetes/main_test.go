//go:build e2e

// Package kubernetes installs the Helm chart on a real single-node Kubernetes that
// test/kube/up.sh brings up on this machine (kubelet on a private containerd,
// kube-proxy, CoreDNS on the host), from the images `make images` built, and proves
// the agent DaemonSet serves the node's containerd as its registry mirror:
//
//   - pods whose images name an upstream registry (a distribution registry on the pod
//     bridge, 10.244.0.1:25000, known to images as upstream.shoal.test:25000) and
//     Shoal's own proxy reach Running, their layers served by the node's agent;
//   - scaling the origins' StatefulSet from 3 to 4 changes the membership every
//     component sees (DNS), and a new pull still works;
//   - helm uninstall leaves the node's containerd host files as they were.
//
// Run by `make e2e-kubernetes` (root; the cluster's binaries built by
// test/kube/build.sh into .tools/kube, the images by `make images`). SHOAL_KUBE_KEEP=1
// leaves the cluster up after the test; SHOAL_KUBE_REUSE=1 runs on a cluster already up.
package kubernetes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const (
	// upstreamHost is the upstream registry as image names spell it; upstreamAddr is
	// where it listens (the host's address on the pod bridge, which pods, the host and
	// the node's containerd all reach).
	upstreamHost = "upstream.shoal.test:25000"
	upstreamAddr = "10.244.0.1:25000"
	release      = "shoal"
	namespace    = "default"
	// agentAddr is the node's agent (host network, loopback).
	agentAddr = "127.0.0.1:16000"
)

// repoRoot is the repository root, two folders up.
func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", "..", ".."))
}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: needs root to run a Kubernetes node (run `make e2e-kubernetes` as root)")
		os.Exit(0)
	}
	for _, tool := range []string{"ctr", "containerd"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Printf("SKIP: %s is not on PATH (apt-get install containerd)\n", tool)
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}
