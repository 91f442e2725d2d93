package registry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
)

func newServer(t *testing.T, readOnly bool) (*httptest.Server, *Memory) {
	t.Helper()
	mem := NewMemory()
	o := Options{Blobs: mem, Tags: mem, Uploads: mem}
	if readOnly {
		o.Uploads = nil
		o.ReadOnlyHint = "push through the proxy at proxy:15000"
	}
	r := chi.NewRouter()
	New(o).Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, mem
}

func do(t *testing.T, method, url string, body []byte, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func wantCode(t *testing.T, what string, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || !strings.Contains(body, `"`+code+`"`) {
		t.Fatalf("%s: %d %s, want %d %s", what, resp.StatusCode, body, status, code)
	}
}

// A real client (go-containerregistry, crane's library) pushes and pulls an image and
// an index through the API.
func TestClientPushPullImageAndIndex(t *testing.T) {
	srv, _ := newServer(t, false)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/team/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wantD, _ := img.Digest()
	gotD, _ := got.Digest()
	if wantD != gotD {
		t.Fatalf("pulled %s, pushed %s", gotD, wantD)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		ld, _ := l.Digest()
		if digest.FromBytes(b).String() != ld.String() {
			t.Fatalf("layer %s pulled with the wrong bytes", ld)
		}
	}

	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	iref, _ := name.ParseReference(host+"/team/multi:latest", name.Insecure)
	if err := remote.WriteIndex(iref, idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	gotIdx, err := remote.Index(iref)
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	wi, _ := idx.Digest()
	gi, _ := gotIdx.Digest()
	if wi != gi {
		t.Fatalf("index %s, want %s", gi, wi)
	}

	tags, err := remote.List(ref.Context())
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("tags %v %v", tags, err)
	}
	_, body := do(t, "GET", srv.URL+"/v2/_catalog", nil, nil)
	if !strings.Contains(body, `"team/app"`) || !strings.Contains(body, `"team/multi"`) {
		t.Fatalf("catalog %s", body)
	}
}

func TestChunkedUploadAndRanges(t *testing.T) {
	srv, mem := newServer(t, false)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	d := digest.FromBytes(data)
	resp, _ := do(t, "POST", srv.URL+"/v2/a/b/blobs/uploads/", nil, nil)
	if resp.StatusCode != 202 {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	loc := srv.URL + resp.Header.Get("Location")
	resp, _ = do(t, "PATCH", loc, data[:4000], map[string]string{"Content-Range": "0-3999"})
	if resp.StatusCode != 202 || resp.Header.Get("Range") != "0-3999" {
		t.Fatalf("patch 1: %d %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp, body := do(t, "PATCH", loc, data[4000:5000], map[string]string{"Content-Range": "3000-3999"})
	wantCode(t, "overlapping chunk", resp, body, 416, "RANGE_INVALID")
	resp, _ = do(t, "PATCH", loc, data[4000:], nil) // streamed, no Content-Range
	if resp.StatusCode != 202 {
		t.Fatalf("patch 2: %d", resp.StatusCode)
	}
	resp, _ = do(t, "GET", loc, nil, nil)
	if resp.StatusCode != 204 || resp.Header.Get("Range") != fmt.Sprintf("0-%d", len(data)-1) {
		t.Fatalf("status: %d %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp, _ = do(t, "PUT", loc+"?digest="+d.String(), nil, nil)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("commit: %d", resp.StatusCode)
	}
	resp, body = do(t, "GET", srv.URL+"/v2/a/b/blobs/"+d.String(), nil, map[string]string{"Range": "bytes=10-19"})
	if resp.StatusCode != 206 || body != string(data[10:20]) {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	resp, _ = do(t, "HEAD", srv.URL+"/v2/a/b/blobs/"+d.String(), nil, nil)
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
		t.Fatalf("head: %d %d", resp.StatusCode, resp.ContentLength)
	}
	// Cross-repository mount of an existing blob is immediate.
	resp, _ = do(t, "POST", srv.URL+"/v2/other/repo/blobs/uploads/?mount="+d.String()+"&from=a/b", nil, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("mount: %d", resp.StatusCode)
	}
	if mem.BlobCount() != 1 {
		t.Fatalf("%d blobs stored, want 1", mem.BlobCount())
	}
}

func TestBadInputStoresNothing(t *testing.T) {
	srv, mem := newServer(t, false)
	base := srv.URL + "/v2/e2e/bad"
	data := []byte("payload")
	wrong := digest.FromString("other")
	cases := []struct {
		what, method, path string
		body               []byte
		hdr                map[string]string
		status             int
		code               string
	}{
		{"wrong digest", "POST", "/blobs/uploads/?digest=" + wrong.String(), data, nil, 400, "DIGEST_INVALID"},
		{"bad digest", "GET", "/blobs/sha256:zzzz", nil, nil, 400, "DIGEST_INVALID"},
		{"md5 digest", "HEAD", "/blobs/md5:abc", nil, nil, 400, "DIGEST_INVALID"},
		{"unknown blob", "GET", "/blobs/" + wrong.String(), nil, nil, 404, "BLOB_UNKNOWN"},
		{"malformed manifest", "PUT", "/manifests/v1", []byte(`{"schemaVersion":2,`),
			map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, 400, "MANIFEST_INVALID"},
		{"dangling manifest", "PUT", "/manifests/v1", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + wrong.String() + `","size":5},"layers":[]}`),
			nil, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"unknown tag", "GET", "/manifests/v1", nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"unknown upload", "PATCH", "/blobs/uploads/nope", data, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"no tags", "GET", "/tags/list", nil, nil, 404, "NAME_UNKNOWN"},
		{"bad n", "GET", "/tags/list?n=-1", nil, nil, 404, "NAME_UNKNOWN"},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, base+c.path, c.body, c.hdr)
		if c.method == "HEAD" {
			if resp.StatusCode != c.status {
				t.Fatalf("%s: %d", c.what, resp.StatusCode)
			}
			continue
		}
		wantCode(t, c.what, resp, body, c.status, c.code)
	}
	resp, body := do(t, "GET", srv.URL+"/v2/Bad_Name/manifests/v1", nil, nil)
	wantCode(t, "bad name", resp, body, 400, "NAME_INVALID")
	if n := mem.BlobCount(); n != 0 {
		t.Fatalf("%d blobs stored after bad input", n)
	}
	if repos, _ := mem.Repositories(t.Context()); len(repos) != 0 {
		t.Fatalf("tags stored after bad input: %v", repos)
	}
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	srv, _ := newServer(t, true)
	for _, m := range []string{"POST /v2/a/blobs/uploads/", "PUT /v2/a/manifests/v1", "PATCH /v2/a/blobs/uploads/x", "DELETE /v2/a/manifests/v1"} {
		method, path, _ := strings.Cut(m, " ")
		resp, body := do(t, method, srv.URL+path, []byte("{}"), nil)
		wantCode(t, m, resp, body, 405, "UNSUPPORTED")
		if !strings.Contains(body, "proxy:15000") {
			t.Fatalf("%s: refusal does not name the proxy: %s", m, body)
		}
	}
	resp, _ := do(t, "GET", srv.URL+"/v2/", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("base: %d", resp.StatusCode)
	}
}

func TestPagination(t *testing.T) {
	srv, mem := newServer(t, false)
	for _, tag := range []string{"c", "a", "b"} {
		_ = mem.Put(t.Context(), "r", tag, digest.FromString(tag))
	}
	resp, body := do(t, "GET", srv.URL+"/v2/r/tags/list?n=2", nil, nil)
	if !strings.Contains(body, `["a","b"]`) || !strings.Contains(resp.Header.Get("Link"), "last=b") {
		t.Fatalf("page 1: %s %q", body, resp.Header.Get("Link"))
	}
	_, body = do(t, "GET", srv.URL+"/v2/r/tags/list?n=2&last=b", nil, nil)
	if !strings.Contains(body, `["c"]`) {
		t.Fatalf("page 2: %s", body)
	}
}

func TestParseRoute(t *testing.T) {
	for p, want := range map[string]route{
		"_catalog":                     {kind: kindCatalog},
		"a/b/tags/list":                {kind: kindTags, name: "a/b"},
		"a/blobs/uploads/":             {kind: kindUploads, name: "a"},
		"a/blobs/uploads/123":          {kind: kindUpload, name: "a", arg: "123"},
		"x/blobs/y/blobs/sha256:ab":    {kind: kindBlob, name: "x/blobs/y", arg: "sha256:ab"},
		"lib/manifests/x/manifests/v1": {kind: kindManifest, name: "lib/manifests/x", arg: "v1"},
		"nothing":                      {kind: kindUnknown},
		"a/manifests/":                 {kind: kindUnknown},
	} {
		if got := parseRoute(p); got != want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", p, got, want)
		}
	}
}
