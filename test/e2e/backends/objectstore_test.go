//go:build e2e

package backends

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/backend"
)

// TestS3PushPullColdPull: origins and build-index on S3. An image pushed through the
// proxy pulls through two agents; after every origin lost its store, a third agent
// pulls it again, from S3 through the origins.
func TestS3PushPullColdPull(t *testing.T) {
	e := newEnv(t, "s3")
	cfg := scenarioBackend(t, e.scenario, "origin")
	startS3(t, e, cfg)
	e.startCluster(t)
	be := openBackend(t, cfg)

	repo := "e2e/s3"
	raw := pushImage(t, proxyRef(repo+":v1"), 512<<10, 12<<20)
	m := parseManifest(t, raw)
	t.Log("pushed; pulling through agents 1 and 2")
	for _, i := range []int{0, 1} {
		e.checkAgentPull(t, i, repo, "v1", raw)
	}
	// Build-index keeps the tag in the bucket, where a registry would.
	var link bytes.Buffer
	if err := be.Download(t.Context(), "docker/registry/v2/repositories/"+repo+"/_manifests/tags/v1/current/link", &link); err != nil {
		t.Fatalf("tag link in the bucket: %v", err)
	}
	if got := strings.TrimSpace(link.String()); got != digestOf([]byte(raw)) {
		t.Fatalf("tag link in the bucket holds %q, want %s", got, digestOf([]byte(raw)))
	}
	e.coldPull(t, be, repo, "v1", raw, m)
}

// TestS3WriteBackSurvivesOutageAndRestart: origins on S3, build-index on fs. A push
// while S3 is down is accepted; the origins restart with their write-backs pending;
// once S3 is back every blob reaches it with the right bytes.
func TestS3WriteBackSurvivesOutageAndRestart(t *testing.T) {
	e := newEnv(t, "s3durable")
	cfg := scenarioBackend(t, e.scenario, "origin")
	s3 := startS3(t, e, cfg)
	e.startCluster(t)
	be := openBackend(t, cfg)

	s3.Stop()
	// Build-index is on fs here (its tags persist locally), so this is about the
	// origins' blobs alone: each is acknowledged once on origin disks and queued
	// durably for write-back. (Build-index used to write a tag to its backend
	// synchronously before acknowledging it; it now has its own local write-back,
	// tested in lib/backend/writeback.)
	repo := "e2e/durable"
	start := time.Now()
	raw := pushImage(t, proxyRef(repo+":v1"), 512<<10, 8<<20)
	t.Logf("pushed with S3 down in %s", time.Since(start).Round(100*time.Millisecond))
	m := parseManifest(t, raw)
	e.restartOrigins(t, false)
	s3.Start(t)
	t.Log("origins restarted, S3 back; waiting for the write-backs")
	// Failed write-backs are retried with a persisted backoff (1 s doubling, up to 5 min;
	// a restart keeps it): S3 was down for seconds, so the next try is due well within this.
	waitInBackend(t, be, append(m.blobs(), digestOf([]byte(raw))), 3*time.Minute)
	e.checkAgentPull(t, 0, repo, "v1", raw)
}

// TestGCSPushPullColdPull: origins and build-index on GCS, as TestS3PushPullColdPull.
func TestGCSPushPullColdPull(t *testing.T) {
	e := newEnv(t, "gcs")
	cfg := scenarioBackend(t, e.scenario, "origin")
	startGCS(t, e, cfg)
	e.startCluster(t)
	be := openBackend(t, cfg)

	repo := "e2e/gcs"
	raw := pushImage(t, proxyRef(repo+":v1"), 512<<10, 12<<20)
	m := parseManifest(t, raw)
	for _, i := range []int{0, 1} {
		e.checkAgentPull(t, i, repo, "v1", raw)
	}
	e.coldPull(t, be, repo, "v1", raw, m)
}

// coldPull waits until the image is in the backend, stops the agents that pulled it
// (so no peer holds it), stops all origins, wipes their stores and starts them again;
// then the third agent, which never had the image, pulls its manifest and largest layer:
// the origins must fetch them from the backend.
func (e *env) coldPull(t *testing.T, be backend.Backend, repo, tag, raw string, m manifest) {
	t.Helper()
	// Before the wipe: a blob whose write-back is still pending is only on origin disks.
	waitInBackend(t, be, append(m.blobs(), digestOf([]byte(raw))), time.Minute)
	for _, a := range e.c.Agents[:2] {
		if err := e.c.StopProcess(a.Name); err != nil {
			t.Fatal(err)
		}
	}
	e.restartOrigins(t, true)
	if n := e.originMetric(t, "shoal_origin_backend_fetches"); n != 0 {
		t.Fatalf("%v backend fetches right after the restart", n)
	}

	t.Log("cold pull: origins restarted with empty stores, agents 1 and 2 stopped")
	ref := e.agentRef(2, repo+":"+tag)
	if got := tool(t, "crane", "manifest", "--insecure", ref); got != raw {
		t.Fatalf("cold pull: manifest of %s differs:\n%s\nwant:\n%s", ref, got, raw)
	}
	layer := m.Layers[len(m.Layers)-1].Digest
	t.Logf("cold pull: manifest through agent3; pulling layer %s", layer)
	b := tool(t, "crane", "blob", "--insecure", e.agentRef(2, repo+"@"+layer))
	if got := digestOf([]byte(b)); got != layer {
		t.Fatalf("cold pull: layer %s has digest %s (%d bytes)", layer, got, len(b))
	}
	// The manifest and the layer came from the backend (reporters flush every second).
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for {
		n := e.originMetric(t, "shoal_origin_backend_fetches")
		if n >= 2 {
			t.Logf("cold pull: %v backend fetches by the origins", n)
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cold pull: origins fetched %v blobs from the backend, want at least 2 (manifest, layer)", n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
