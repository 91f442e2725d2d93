//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDockerPullAndRunThroughAgent pushes a tiny image (Debian's static busybox) through
// the proxy, pulls it with the Docker engine through an agent and runs it.
func TestDockerPullAndRunThroughAgent(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("no Docker daemon answers `docker info`: skipping the Docker engine test")
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("static busybox missing (make tools installs busybox-static): %v", err)
	}
	layer := writeTar(t, map[string][]byte{"bin/busybox": busybox})
	ref := proxyRef("e2e/busybox:v1")
	tool(t, "crane", "append", "--insecure", "--platform", "linux/amd64", "-f", layer, "-t", ref)
	tool(t, "crane", "mutate", "--insecure", "--set-platform", "linux/amd64", "--entrypoint", "/bin/busybox", ref, "-t", ref)

	image := agentRef(0, "e2e/busybox:v1")
	defer exec.Command("docker", "rmi", "-f", image).Run()
	tool(t, "docker", "pull", image)
	out := tool(t, "docker", "run", "--rm", image, "echo", "hello from shoal")
	if strings.TrimSpace(out) != "hello from shoal" {
		t.Fatalf("docker run printed %q", out)
	}
	want := strings.TrimSpace(tool(t, "crane", "digest", "--insecure", ref))
	repoDigests := tool(t, "docker", "image", "inspect", "--format", "{{join .RepoDigests \",\"}}", image)
	if !strings.Contains(repoDigests, want) {
		t.Fatalf("docker pulled %s, pushed %s", repoDigests, want)
	}
}
