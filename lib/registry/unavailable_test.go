package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
)

// downTags is a tag store that does not answer, as the build-index adapter reports it.
type downTags struct{}

var errDown = fmt.Errorf("%w: build-index: connection refused", ErrUnavailable)

func (downTags) Get(context.Context, string, string) (digest.Digest, error) { return "", errDown }
func (downTags) Put(context.Context, string, string, digest.Digest) error   { return errDown }
func (downTags) List(context.Context, string) ([]string, error)             { return nil, errDown }
func (downTags) Repositories(context.Context) ([]string, error)             { return nil, errDown }

// TestTagStoreDown: with the tag store down, every tag route answers 503 naming the
// build-index (clients retry), not an unexplained 500; a manifest pushed by digest
// still works.
func TestTagStoreDown(t *testing.T) {
	mem := NewMemory()
	r := chi.NewRouter()
	New(Options{Blobs: mem, Tags: downTags{}, Uploads: mem}).Routes(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	config := []byte(`{}`)
	cd := put(t, mem, string(config))
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}`, cd, len(config)))
	ct := map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
	md := digest.FromBytes(manifest)

	for _, tc := range []struct{ method, path string }{
		{http.MethodPut, "/v2/a/b/manifests/v1"},
		{http.MethodGet, "/v2/a/b/manifests/v1"},
		{http.MethodHead, "/v2/a/b/manifests/v1"},
		{http.MethodGet, "/v2/a/b/tags/list"},
		{http.MethodGet, "/v2/_catalog"},
	} {
		var body []byte
		if tc.method == http.MethodPut {
			body = manifest
		}
		resp, text := do(t, tc.method, srv.URL+tc.path, body, ct)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s %s: %d %s, want 503", tc.method, tc.path, resp.StatusCode, text)
		}
		if tc.method != http.MethodHead && !strings.Contains(text, "build-index") {
			t.Errorf("%s %s: %s does not name the build-index", tc.method, tc.path, text)
		}
	}
	resp, text := do(t, http.MethodPut, srv.URL+"/v2/a/b/manifests/"+md.String(), manifest, ct)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT by digest with the tag store down: %d %s", resp.StatusCode, text)
	}
}
