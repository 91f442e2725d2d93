package main

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/mirror"
	"github.com/shoal-p2p/shoal/lib/oci"
)

// counter reads a counter of the agent's test scope by name and tags.
func (a *agent) counter(name string, tags map[string]string) int64 {
	for _, c := range a.scope.Snapshot().Counters() {
		if c.Name() != name || len(c.Tags()) != len(tags) {
			continue
		}
		match := true
		for k, v := range tags {
			if c.Tags()[k] != v {
				match = false
			}
		}
		if match {
			return c.Value()
		}
	}
	return 0
}

// TestMirrorNamespaces: containerd's ?ns= picks whose image a request names. The same
// repository and tag of docker.io and of Shoal's own proxy are different images; a
// registry the agent does not mirror gets a fast 404 on HEAD and GET alike, asking
// nobody.
func TestMirrorNamespaces(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgentWith(t, c, "127.0.0.79", func(cfg *Config) {
		cfg.Mirror.Upstreams = []mirror.Upstream{{Host: "docker.io", URL: "https://registry-1.docker.io"}}
	})
	upstream, own := testManifest("docker.io"), testManifest("proxy")
	du, do := c.add(upstream), c.add(own)
	c.tag("docker.io/library/nginx", "1.27", du)
	c.tag("library/nginx", "1.27", do)

	for _, tc := range []struct {
		query string
		want  []byte
		d     digest.Digest
	}{
		{"?ns=docker.io", upstream, du},
		{"", own, do},
		{"?ns=" + testProxy, own, do},
	} {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			r := a.do(t, method, "/v2/library/nginx/manifests/1.27"+tc.query)
			if r.status != http.StatusOK || r.header.Get("Docker-Content-Digest") != tc.d.String() {
				t.Errorf("%s manifest%s: %d %s, digest %q; want %s", method, tc.query, r.status, r.body, r.header.Get("Docker-Content-Digest"), tc.d)
			}
			if method == http.MethodGet && !bytes.Equal(r.body, tc.want) {
				t.Errorf("GET manifest%s = %q, want %q", tc.query, r.body, tc.want)
			}
		}
	}
	// Blobs of the mirrored image are asked for under its repository, so the origins'
	// pull-through backend knows where upstream to fetch them.
	layer := randomBlob(10_000, 7)
	dl := c.add(layer)
	asked := c.count("tracker metainfo repository=docker.io/library/nginx")
	if r := a.do(t, http.MethodGet, "/v2/library/nginx/blobs/"+dl.String()+"?ns=docker.io"); r.status != http.StatusOK || !bytes.Equal(r.body, layer) {
		t.Fatalf("GET blob ?ns=docker.io: %d", r.status)
	}
	if n := c.count("tracker metainfo repository=docker.io/library/nginx") - asked; n != 1 {
		t.Errorf("metainfo asked under repository docker.io/library/nginx %d times, want 1", n)
	}

	before := c.count("buildindex tag") + c.count("tracker metainfo") + c.count("origin GET blob")
	for _, tc := range []struct{ path, code string }{
		{"/v2/library/nginx/manifests/1.27?ns=ghcr.io", oci.CodeManifestUnknown.Name},
		{"/v2/library/nginx/manifests/" + du.String() + "?ns=ghcr.io", oci.CodeManifestUnknown.Name},
		{"/v2/library/nginx/blobs/" + dl.String() + "?ns=ghcr.io", oci.CodeBlobUnknown.Name},
		{"/v2/library/nginx/tags/list?ns=quay.io", oci.CodeNameUnknown.Name},
	} {
		if r := a.do(t, http.MethodHead, tc.path); r.status != http.StatusNotFound {
			t.Errorf("HEAD %s: %d, want 404", tc.path, r.status)
		}
		r := a.do(t, http.MethodGet, tc.path)
		if r.status != http.StatusNotFound || ociError(t, r).Code != tc.code {
			t.Errorf("GET %s: %d %s, want 404 %s", tc.path, r.status, r.body, tc.code)
		}
	}
	if after := c.count("buildindex tag") + c.count("tracker metainfo") + c.count("origin GET blob"); after != before {
		t.Errorf("requests for an unmirrored registry reached the cluster (%d calls)", after-before)
	}

	if n := a.counter("mirror_requests", map[string]string{"upstream": "docker.io", "result": "served"}); n != 3 {
		t.Errorf("mirror_requests served for docker.io = %d, want 3", n)
	}
	if n := a.counter("mirror_requests", map[string]string{"upstream": "_other", "result": "unknown"}); n != 8 {
		t.Errorf("mirror_requests unknown = %d, want 8", n)
	}
}

// TestReadiness: ready once origins are known and build-index answers; the tracker is
// not needed (pulls come from the origins without it).
func TestReadiness(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgent(t, c, "127.0.0.78")
	if r := a.do(t, http.MethodGet, "/readiness"); r.status != http.StatusOK {
		t.Fatalf("readiness with everything up: %d %s", r.status, r.body)
	}
	c.tracker.Close()
	if r := a.do(t, http.MethodGet, "/readiness"); r.status != http.StatusOK {
		t.Errorf("readiness with the tracker down: %d %s", r.status, r.body)
	}
	c.buildIndex.Close()
	if r := a.do(t, http.MethodGet, "/readiness"); r.status != http.StatusServiceUnavailable {
		t.Errorf("readiness with build-index down: %d %s", r.status, r.body)
	}
}
