//go:build e2e

// Package containerd runs a real containerd against a local Shoal cluster (test/cluster,
// the built binaries, two agents) whose agents are containerd's registry mirror: each
// agent writes <hosts_dir>/<registry>/hosts.toml for the registries it serves, and
// containerd sends it every request with ?ns=<registry host of the image>.
//
// The test starts everything itself, each with its own state under one temp folder:
//
//	<tmp>/
//	  config/              testdata/*.yaml rendered (@TMP@ replaced by <tmp>)
//	  cluster/             the cluster's state and logs (agent1.log, origin1.log, ...)
//	  upstream/            a distribution registry on 127.0.0.1:15500 (image host
//	                       upstream.test:5000), its storage and access log
//	  node1/ node2/        one containerd each (root, state, socket, config, log);
//	    certs.d/           agent N's hosts_dir, node N's CRI registry config_path
//	  fallback-certs.d/    the test's own hosts.toml for a registry no agent serves
//
// node1 + agent1 and node2 + agent2 are two nodes of a cluster. Never the Docker
// engine's or the system's containerd. Run with `make e2e-containerd`; it needs root
// and containerd/ctr on PATH (else it skips), crane and distribution-registry from
// .tools/bin (make tools). It uses the devcluster's fixed ports (15000-18xxx) and
// 127.0.0.1:15500, so it never runs at the same time as the other e2e packages.
package containerd

import "time"

const (
	// upstreamAddr is where the test's distribution registry listens; the configs in
	// testdata/ name the same.
	upstreamAddr = "127.0.0.1:15500"
	// upstreamHost is the registry host image names use for it (containerd's ns). It
	// resolves nowhere: containerd reaches it only through hosts.toml (the agent, then
	// server = http://127.0.0.1:15500).
	upstreamHost = "upstream.test:5000"
	// otherHost is a registry host no agent serves (scenario 3), also only reachable
	// through a hosts.toml.
	otherHost = "other.test:5000"

	// bigLayer is above the agents' direct_below (1 MiB): it goes through the swarm.
	bigLayer   = 6 << 20
	smallLayer = 512 << 10

	// pullTimeout bounds one ctr or CRI pull.
	pullTimeout = 2 * time.Minute
)
