//go:build e2e

package backends

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/test/cluster"
	"github.com/shoal-p2p/shoal/test/e2eutil"
)

// env is one scenario's state folder: the cluster's state under cluster/, the servers'
// data and logs beside it. Removed at the end unless the test failed (or
// SHOAL_E2E_KEEP is set).
type env struct {
	dir      string
	scenario string
	c        *cluster.Cluster
}

func newEnv(t *testing.T, scenario string) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "shoal-e2e-"+scenario+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the cluster and servers stopped.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SHOAL_E2E_KEEP") != "" {
			t.Logf("state and logs of scenario %s kept in %s", scenario, dir)
			return
		}
		os.RemoveAll(dir)
	})
	return &env{dir: dir, scenario: scenario}
}

// startCluster starts the devcluster topology with testdata/<scenario>/'s configs.
func (e *env) startCluster(t *testing.T) {
	t.Helper()
	root, err := cluster.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Root:      root,
		State:     filepath.Join(e.dir, "cluster"),
		ConfigDir: filepath.Join("testdata", e.scenario),
	})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	e.c = c
	t.Cleanup(c.Stop)
}

// restartOrigins stops all three origins, wiping their stores when wipe is set, and
// starts them again.
func (e *env) restartOrigins(t *testing.T, wipe bool) {
	t.Helper()
	for _, o := range e.c.Origins {
		if err := e.c.StopProcess(o.Name); err != nil {
			t.Fatal(err)
		}
	}
	if wipe {
		for _, o := range e.c.Origins {
			if err := os.RemoveAll(filepath.Join(e.c.State, o.Name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, o := range e.c.Origins {
		if err := e.c.StartProcess(ctx, o.Name); err != nil {
			t.Fatal(err)
		}
	}
}

// originMetric sums a metric over the three origins.
func (e *env) originMetric(t *testing.T, name string) float64 {
	t.Helper()
	var total float64
	for _, o := range e.c.Origins {
		m, err := cluster.Scrape(t.Context(), o.Addr)
		if err != nil {
			t.Fatal(err)
		}
		total += cluster.Sum(m, name)
	}
	return total
}

func (e *env) agentRef(i int, ref string) string { return e.c.Agents[i].Registry + "/" + ref }

func proxyRef(ref string) string { return cluster.ProxyAddr + "/" + ref }

// pushImage pushes a new image of random layers of the given sizes to ref (through the
// proxy or straight to an upstream) and returns its raw manifest as the registry holds it.
func pushImage(t *testing.T, ref string, sizes ...int) string {
	t.Helper()
	args := []string{"append", "--insecure"}
	for _, size := range sizes {
		args = append(args, "-f", randomLayerTar(t, size))
	}
	tool(t, "crane", append(args, "-t", ref)...)
	return tool(t, "crane", "manifest", "--insecure", ref)
}

type manifest struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
}

func parseManifest(t *testing.T, raw string) manifest {
	t.Helper()
	var m manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("manifest %q: %v", raw, err)
	}
	if m.Config.Digest == "" || len(m.Layers) == 0 {
		t.Fatalf("manifest without config or layers: %s", raw)
	}
	return m
}

// blobs are the image's config and layers.
func (m manifest) blobs() []string {
	out := []string{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// checkAgentPull pulls repo:tag through agent i: its manifest must be wantRaw byte for
// byte and every blob must hash to its digest; crane pull (which verifies every digest
// itself) must then complete. It returns the parsed manifest.
func (e *env) checkAgentPull(t *testing.T, i int, repo, tag, wantRaw string) manifest {
	t.Helper()
	ref := e.agentRef(i, repo+":"+tag)
	got := tool(t, "crane", "manifest", "--insecure", ref)
	if got != wantRaw {
		t.Fatalf("agent%d: manifest of %s differs:\n%s\nwant:\n%s", i+1, ref, got, wantRaw)
	}
	if d := strings.TrimSpace(tool(t, "crane", "digest", "--insecure", ref)); d != digestOf([]byte(wantRaw)) {
		t.Fatalf("agent%d: digest of %s is %s, want %s", i+1, ref, d, digestOf([]byte(wantRaw)))
	}
	m := parseManifest(t, got)
	for _, d := range m.blobs() {
		b := tool(t, "crane", "blob", "--insecure", e.agentRef(i, repo+"@"+d))
		if got := digestOf([]byte(b)); got != d {
			t.Fatalf("agent%d: blob %s has digest %s (%d bytes)", i+1, d, got, len(b))
		}
	}
	tool(t, "crane", "pull", "--insecure", ref, filepath.Join(t.TempDir(), "image.tar"))
	return m
}

// blobKey is where a docker/distribution registry keeps a blob in its storage, the
// layout every Shoal backend shares (asserted here rather than taken from the code).
func blobKey(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	return "docker/registry/v2/blobs/sha256/" + h[:2] + "/" + h + "/data"
}

// waitInBackend polls until every digest is an object at blobKey in be holding bytes
// of that digest, or fails after timeout. A wrong content fails at once.
func waitInBackend(t *testing.T, be backend.Backend, digests []string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	pending := map[string]error{}
	for _, d := range digests {
		pending[d] = errors.New("not checked yet")
	}
	for {
		for d := range pending {
			h := sha256.New()
			err := be.Download(t.Context(), blobKey(d), h)
			if err == nil {
				if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d {
					t.Fatalf("backend object %s holds %s", blobKey(d), got)
				}
				delete(pending, d)
				continue
			}
			pending[d] = err
		}
		if len(pending) == 0 {
			t.Logf("all %d blobs in the backend after %s", len(digests), time.Since(start).Round(time.Second))
			return
		}
		if time.Since(start) > timeout {
			for d, err := range pending {
				t.Errorf("%s not in the backend: %v", blobKey(d), err)
			}
			t.Fatalf("%d of %d blobs not in the backend after %s", len(pending), len(digests), timeout)
		}
		time.Sleep(time.Second)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The suites' shared helpers (test/e2eutil).
var (
	tool           = e2eutil.Tool
	toolErr        = e2eutil.ToolErr
	randomLayerTar = e2eutil.RandomLayerTar
)
