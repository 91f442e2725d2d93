package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/registry"
)

// Through the whole proxy (origin cluster, build-index): a client over its open upload
// sessions gets 429 TOOMANYREQUESTS with Retry-After and no session is opened on the
// origin; committing one lets it start the next.
func TestProxyCapsUploadSessions(t *testing.T) {
	t.Parallel()
	limits := registry.DefaultLimits()
	limits.MaxUploadsPerClient = 2
	p := newLimitedProxy(t, limits)
	post := func() *http.Response {
		resp, err := http.Post(p.url+"/v2/team/app/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	first, second := post(), post()
	if first.StatusCode != http.StatusAccepted || second.StatusCode != http.StatusAccepted {
		t.Fatalf("starts: %d %d, want 202", first.StatusCode, second.StatusCode)
	}
	before := snapshot(t, p.dirs...)
	resp, err := http.Post(p.url+"/v2/team/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || ociCode(body) != "TOOMANYREQUESTS" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third start: %d %s Retry-After %q, want 429 TOOMANYREQUESTS with Retry-After",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if left := leftBehind(before, snapshot(t, p.dirs...)); len(left) != 0 {
		t.Fatalf("refused start left %v", left)
	}

	data := []byte("layer")
	req, _ := http.NewRequest("PUT", p.url+first.Header.Get("Location")+"?digest="+digest.FromBytes(data).String(), bytes.NewReader(data))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("commit: %d", resp.StatusCode)
	}
	if resp := post(); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start after a commit: %d, want 202", resp.StatusCode)
	}
}

// A manifest over limits.max_manifest_bytes is 413 MANIFEST_INVALID through the proxy
// and leaves nothing in the origin's store or the build-index.
func TestProxyRefusesManifestOverLimit(t *testing.T) {
	t.Parallel()
	limits := registry.DefaultLimits()
	limits.MaxManifestBytes = 512
	p := newLimitedProxy(t, limits)
	before := snapshot(t, p.dirs...)
	body := `{"schemaVersion":2,"mediaType":"` + ociManifest + `","x":"` + strings.Repeat("x", 512) + `"}`
	req, _ := http.NewRequest("PUT", p.url+"/v2/team/app/manifests/v1", strings.NewReader(body))
	req.Header.Set("Content-Type", ociManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || ociCode(got) != "MANIFEST_INVALID" {
		t.Fatalf("%d %s, want 413 MANIFEST_INVALID", resp.StatusCode, got)
	}
	if left := leftBehind(before, snapshot(t, p.dirs...)); len(left) != 0 {
		t.Fatalf("refused manifest left %v", left)
	}
}
