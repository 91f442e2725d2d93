//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/test/cluster"
)

type manifest struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
	Manifests []struct {
		Digest   string `json:"digest"`
		Platform struct {
			Architecture string `json:"architecture"`
		} `json:"platform"`
	} `json:"manifests"`
}

func parseManifest(t *testing.T, raw string) manifest {
	t.Helper()
	var m manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("manifest %q: %v", raw, err)
	}
	return m
}

// checkPulledThroughAgents compares the manifest and every blob of ref as served by the
// proxy and by agents 0 and 1, byte for byte, and against their digests.
func checkPulledThroughAgents(t *testing.T, repoTag string) manifest {
	t.Helper()
	want := tool(t, "crane", "manifest", "--insecure", proxyRef(repoTag))
	m := parseManifest(t, want)
	repo, _, _ := strings.Cut(repoTag, ":")
	for _, i := range []int{0, 1} {
		got := tool(t, "crane", "manifest", "--insecure", agentRef(i, repoTag))
		if got != want {
			t.Fatalf("agent %d manifest differs:\n%s\nvs proxy:\n%s", i, got, want)
		}
		blobs := []string{m.Config.Digest}
		for _, l := range m.Layers {
			blobs = append(blobs, l.Digest)
		}
		for _, d := range blobs {
			b := tool(t, "crane", "blob", "--insecure", dev.Agents[i].Registry+"/"+repo+"@"+d)
			if "sha256:"+sha256Hex([]byte(b)) != d {
				t.Fatalf("agent %d served blob %s with wrong content (%d bytes)", i, d, len(b))
			}
		}
	}
	return m
}

func TestCranePushDockerImagePullThroughTwoAgents(t *testing.T) {
	ref := proxyRef("e2e/crane:v1")
	tool(t, "crane", "append", "--insecure", "-f", randomLayerTar(t, 3<<20), "-t", ref)
	tool(t, "crane", "append", "--insecure", "-b", ref, "-f", randomLayerTar(t, 9<<20), "-t", ref)
	m := checkPulledThroughAgents(t, "e2e/crane:v1")
	if m.MediaType != "application/vnd.docker.distribution.manifest.v2+json" || len(m.Layers) != 2 {
		t.Fatalf("unexpected manifest %+v", m)
	}
	// crane's own pull through an agent verifies every digest end to end.
	tool(t, "crane", "pull", "--insecure", agentRef(1, "e2e/crane:v1"), filepath.Join(t.TempDir(), "img.tar"))
}

func TestSkopeoPushOCIImagePullThroughTwoAgents(t *testing.T) {
	// Build an OCI layout with crane, push it with skopeo, pull it back with skopeo.
	src := proxyRef("e2e/skopeo-src:v1")
	tool(t, "crane", "append", "--insecure", "--oci-empty-base", "-f", randomLayerTar(t, 5<<20), "-t", src)
	layout := filepath.Join(t.TempDir(), "layout")
	tool(t, "skopeo", "copy", "--src-tls-verify=false", "docker://"+src, "oci:"+layout+":v1")
	tool(t, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+layout+":v1", "docker://"+proxyRef("e2e/skopeo:v1"))
	m := checkPulledThroughAgents(t, "e2e/skopeo:v1")
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("expected an OCI manifest, got %q", m.MediaType)
	}
	for _, i := range []int{0, 1} {
		out := filepath.Join(t.TempDir(), "pulled")
		tool(t, "skopeo", "copy", "--src-tls-verify=false", "docker://"+agentRef(i, "e2e/skopeo:v1"), "dir:"+out)
		if _, err := os.Stat(filepath.Join(out, "manifest.json")); err != nil {
			t.Fatal(err)
		}
	}
	want := tool(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+proxyRef("e2e/skopeo:v1"))
	got := tool(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+agentRef(1, "e2e/skopeo:v1"))
	if got != want {
		t.Fatal("skopeo sees different manifests through the proxy and the agent")
	}
}

func TestOCIIndexWithTwoPlatforms(t *testing.T) {
	amd := proxyRef("e2e/multi:amd64")
	arm := proxyRef("e2e/multi:arm64")
	tool(t, "crane", "append", "--insecure", "--oci-empty-base", "-f", randomLayerTar(t, 1<<20), "-t", amd)
	tool(t, "crane", "mutate", "--insecure", "--set-platform", "linux/amd64", amd, "-t", amd)
	tool(t, "crane", "append", "--insecure", "--oci-empty-base", "-f", randomLayerTar(t, 1<<20), "-t", arm)
	tool(t, "crane", "mutate", "--insecure", "--set-platform", "linux/arm64", arm, "-t", arm)
	idx := proxyRef("e2e/multi:v1")
	tool(t, "crane", "index", "append", "--insecure", "-m", amd, "-m", arm, "-t", idx)

	want := tool(t, "crane", "manifest", "--insecure", idx)
	m := parseManifest(t, want)
	if m.MediaType != "application/vnd.oci.image.index.v1+json" || len(m.Manifests) != 2 {
		t.Fatalf("unexpected index %s", want)
	}
	for _, i := range []int{0, 1} {
		if got := tool(t, "crane", "manifest", "--insecure", agentRef(i, "e2e/multi:v1")); got != want {
			t.Fatalf("agent %d index differs", i)
		}
		for _, plat := range []string{"linux/amd64", "linux/arm64"} {
			d := strings.TrimSpace(tool(t, "crane", "digest", "--insecure", "--platform", plat, agentRef(i, "e2e/multi:v1")))
			wantD := strings.TrimSpace(tool(t, "crane", "digest", "--insecure", "--platform", plat, idx))
			if d != wantD {
				t.Fatalf("agent %d %s: digest %s, proxy %s", i, plat, d, wantD)
			}
			tool(t, "crane", "pull", "--insecure", "--platform", plat, agentRef(i, "e2e/multi:v1"), filepath.Join(t.TempDir(), "p.tar"))
		}
	}
}

func TestAgentRefusesPushNamingTheProxy(t *testing.T) {
	status, _, body := httpDo(t, "POST", "http://"+dev.Agents[0].Registry+"/v2/e2e/push/blobs/uploads/", nil, nil)
	if status != 405 || !strings.Contains(string(body), "UNSUPPORTED") || !strings.Contains(string(body), cluster.ProxyAddr) {
		t.Fatalf("push to agent: %d %s", status, body)
	}
	_, err := toolErr("crane", "append", "--insecure", "-f", randomLayerTar(t, 1024), "-t", agentRef(0, "e2e/push:v1"))
	if err == nil {
		t.Fatal("crane push to an agent succeeded")
	}
}
