//go:build e2e

package containerd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// node is one containerd of the test's own, under <tmp>/<name>: root, state, socket,
// config and log there, its CRI registry config_path <tmp>/<name>/certs.d (the hosts_dir
// of the agent on the same node).
type node struct {
	name     string
	dir      string
	hostsDir string
	sock     string
	p        *proc
}

// newNode lays out the node's folder (hosts dir included, so the test can place files
// in it before the agent starts); start runs its containerd.
func (e *env) newNode(t *testing.T, name string) *node {
	t.Helper()
	dir := filepath.Join(e.dir, name)
	n := &node{name: name, dir: dir, hostsDir: filepath.Join(dir, "certs.d"), sock: filepath.Join(dir, "containerd.sock")}
	for _, d := range []string{n.hostsDir, filepath.Join(dir, "cni")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// config is containerd 1.6's (version 2) for this node: CRI enabled (no CNI config, so
// pods can't start but images pull), overlayfs, the registry hosts folder, and
// restrict_oom_score_adj (root here lacks CAP_SYS_RESOURCE). No debug or metrics
// listener: nothing but the node's socket.
func (n *node) config() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %[3]q
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    netns_mounts_under_state_dir = true
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %[4]q
      conf_dir = %[4]q
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = %[5]q
  [plugins."io.containerd.internal.v1.opt"]
    path = %[6]q
`, filepath.Join(n.dir, "root"), filepath.Join(n.dir, "state"), n.sock,
		filepath.Join(n.dir, "cni"), n.hostsDir, filepath.Join(n.dir, "opt"))
}

func (n *node) start(t *testing.T) {
	t.Helper()
	cfg := filepath.Join(n.dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(n.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	n.p = &proc{name: n.name + " containerd", args: []string{"containerd", "--config", cfg},
		dir: n.dir, log: filepath.Join(n.dir, "containerd.log")}
	n.p.start(t, func(ctx context.Context) error {
		return exec.CommandContext(ctx, "ctr", "--address", n.sock, "version").Run()
	})
}

// ctr runs ctr against this node in namespace ns.
func (n *node) ctr(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return tool(t, "ctr", append([]string{"--address", n.sock, "-n", ns}, args...)...)
}

// pull runs `ctr images pull --hosts-dir hostsDir ref` in namespace ns and returns
// how long it took.
func (n *node) pull(t *testing.T, ns, hostsDir, ref string) time.Duration {
	t.Helper()
	start := time.Now()
	out, err := toolErr("ctr", "--address", n.sock, "-n", ns, "images", "pull", "--hosts-dir", hostsDir, ref)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s: ctr images pull %s (hosts %s) after %s: %v", n.name, ref, hostsDir, took.Round(time.Millisecond), err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	t.Logf("%s: ctr images pull %s: %s in %s", n.name, ref, lines[len(lines)-1], took.Round(time.Millisecond))
	return took
}

// checkImage checks what containerd holds for ref in namespace ns against what was
// pushed: the image's target is the manifest digest, the manifest's bytes are the
// pushed ones, and the config and every layer hash to their digests.
func (n *node) checkImage(t *testing.T, ns, ref string, want image) {
	t.Helper()
	var target string
	for _, l := range strings.Split(n.ctr(t, ns, "images", "ls"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == ref {
			target = f[2]
		}
	}
	if target != want.digest {
		t.Fatalf("%s: image %s has target %q, want the pushed manifest %s", n.name, ref, target, want.digest)
	}
	if got := n.ctr(t, ns, "content", "get", want.digest); got != want.raw {
		t.Fatalf("%s: manifest %s differs from the pushed one:\n%s\nwant:\n%s", n.name, want.digest, got, want.raw)
	}
	for _, d := range want.blobs() {
		b := n.ctr(t, ns, "content", "get", d)
		if got := digestOf([]byte(b)); got != d {
			t.Fatalf("%s: content %s hashes to %s (%d bytes)", n.name, d, got, len(b))
		}
	}
	t.Logf("%s: %s is manifest %s; config and %d layers verified", n.name, ref, want.digest, len(want.layers))
}

// cri dials the node's CRI image service, as the kubelet does.
func (n *node) cri(t *testing.T) runtimeapi.ImageServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+n.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewImageServiceClient(conn)
}
