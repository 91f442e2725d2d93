package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/filesystem"
	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/registry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hostileProxy is the whole proxy in-process: its Handler over an origin set of one
// stand-in origin (the origin's upload and blob API over a real lib/blobstore on disk)
// and a stand-in build-index (tags in a filesystem backend). The components can't
// import each other, so the stand-ins speak their APIs over the same lib/ pieces.
type hostileProxy struct {
	url       string
	originURL string
	dirs      []string // every directory the cluster keeps state in
}

func newHostileProxy(t *testing.T) *hostileProxy {
	t.Helper()
	return newLimitedProxy(t, registry.DefaultLimits())
}

// newLimitedProxy is newHostileProxy under limits.
func newLimitedProxy(t *testing.T, limits registry.Limits) *hostileProxy {
	t.Helper()
	storeDir, tagsDir := t.TempDir(), t.TempDir()
	store, err := blobstore.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := filesystem.New(filesystem.Config{Root: tagsDir})
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(standInOrigin(store))
	t.Cleanup(origin.Close)
	bi := httptest.NewServer(standInBuildIndex(tags))
	t.Cleanup(bi.Close)

	cfg := originset.DefaultConfig()
	cfg.Static = []string{origin.URL}
	cfg.Replicas = 1
	set, err := originset.New(cfg, origin.Client(), zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(limits, set, buildindexclient.New(bi.URL, bi.Client()), zap.NewNop(), tally.NoopScope)
	ps := httptest.NewServer(srv.Handler(http.NotFoundHandler()))
	t.Cleanup(ps.Close)
	return &hostileProxy{url: ps.URL, originURL: origin.URL, dirs: []string{storeDir, tagsDir}}
}

// standInOrigin serves the origin's upload and blob API (docs/ARCHITECTURE.md) over store.
func standInOrigin(store *blobstore.Store) http.Handler {
	fail := func(w http.ResponseWriter, err error) {
		status, code := http.StatusInternalServerError, "internal"
		switch {
		case errors.Is(err, blobstore.ErrNotFound):
			status, code = http.StatusNotFound, originclient.CodeNotFound
		case errors.Is(err, blobstore.ErrUploadUnknown):
			status, code = http.StatusNotFound, originclient.CodeUploadUnknown
		case errors.Is(err, blobstore.ErrDigestMismatch):
			status, code = http.StatusBadRequest, originclient.CodeDigestMismatch
		case errors.Is(err, blobstore.ErrOffsetMismatch):
			status, code = http.StatusRequestedRangeNotSatisfiable, originclient.CodeOffsetMismatch
		case errors.Is(err, blobstore.ErrInvalidDigest):
			status, code = http.StatusBadRequest, "bad_request"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(originclient.ErrorBody{Error: code, Message: err.Error()})
	}
	size := func(w http.ResponseWriter, n int64, status int) {
		w.Header().Set(originclient.HeaderUploadSize, strconv.FormatInt(n, 10))
		w.WriteHeader(status)
	}
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK\n") })
	r.Post("/uploads", func(w http.ResponseWriter, _ *http.Request) {
		id, err := store.StartUpload()
		if err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id})
	})
	r.Patch("/uploads/{id}", func(w http.ResponseWriter, r *http.Request) {
		off, err := strconv.ParseInt(r.Header.Get(originclient.HeaderUploadOffset), 10, 64)
		if err != nil || off < 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n, err := store.AppendUpload(chi.URLParam(r, "id"), off, r.Body)
		if err != nil {
			fail(w, err)
			return
		}
		size(w, n, http.StatusAccepted)
	})
	r.Get("/uploads/{id}", func(w http.ResponseWriter, r *http.Request) {
		n, err := store.UploadSize(chi.URLParam(r, "id"))
		if err != nil {
			fail(w, err)
			return
		}
		size(w, n, http.StatusNoContent)
	})
	r.Put("/uploads/{id}", func(w http.ResponseWriter, r *http.Request) {
		if _, err := store.CommitUpload(chi.URLParam(r, "id"), digest.Digest(r.URL.Query().Get("digest"))); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	r.Delete("/uploads/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := store.CancelUpload(chi.URLParam(r, "id")); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	blob := func(w http.ResponseWriter, r *http.Request) {
		f, err := store.Open(digest.Digest(chi.URLParam(r, "digest")))
		if err != nil {
			fail(w, err)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f)
	}
	r.Get("/blobs/{digest}", blob)
	r.Head("/blobs/{digest}", blob)
	return r
}

// standInBuildIndex serves the build-index's tag API over a backend.
func standInBuildIndex(be backend.Backend) http.Handler {
	notFound := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(buildindexclient.ErrorBody{Error: buildindexclient.CodeNotFound})
	}
	r := chi.NewRouter()
	r.Put("/tags/*", func(w http.ResponseWriter, r *http.Request) {
		repo, tag, _ := strings.Cut(chi.URLParam(r, "*"), "/_tag/")
		if err := be.Upload(r.Context(), backend.TagName(repo, tag), r.Body); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	r.Get("/tags/*", func(w http.ResponseWriter, r *http.Request) {
		p := chi.URLParam(r, "*")
		if repo, ok := strings.CutSuffix(p, "/_list"); ok {
			names, _ := be.List(r.Context(), backend.TagsPrefix(repo))
			var l buildindexclient.TagList
			for _, n := range names {
				if _, tag, ok := backend.ParseTagName(n); ok {
					l.Tags = append(l.Tags, tag)
				}
			}
			if len(l.Tags) == 0 {
				notFound(w)
				return
			}
			slices.Sort(l.Tags)
			_ = json.NewEncoder(w).Encode(l)
			return
		}
		repo, tag, _ := strings.Cut(p, "/_tag/")
		if err := be.Download(r.Context(), backend.TagName(repo, tag), w); err != nil {
			notFound(w)
		}
	})
	r.Get("/repositories", func(w http.ResponseWriter, r *http.Request) {
		names, _ := be.List(r.Context(), backend.RepositoriesPrefix)
		l := buildindexclient.RepositoryList{Repositories: []string{}}
		for _, n := range names {
			if repo, _, ok := backend.ParseTagName(n); ok && !slices.Contains(l.Repositories, repo) {
				l.Repositories = append(l.Repositories, repo)
			}
		}
		_ = json.NewEncoder(w).Encode(l)
	})
	return r
}

// snapshot maps every file under dirs to its size.
func snapshot(t *testing.T, dirs ...string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files[path] = fi.Size()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// leftBehind lists the files of after that before did not hold at that size: what a
// request created or wrote to. Files it removed (a discarded upload) are not listed.
func leftBehind(before, after map[string]int64) []string {
	var out []string
	for p, n := range after {
		if m, ok := before[p]; !ok || m != n {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// rawRequest sends req as written, for what http.Client refuses to send (a negative
// or overflowing Content-Length), and returns the answer's status.
func rawRequest(t *testing.T, baseURL, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw request %.60q: %v", req, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ociCode is the first error code of an OCI error envelope, "" if body is none.
func ociCode(body []byte) string {
	var env oci.Envelope
	if json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociIndex    = "application/vnd.oci.image.index.v1+json"
)

// TestHostileInput sends the registry API malformed names, digests, upload ids, ranges,
// bodies and headers. Each answer must be the spec's status and OCI error code, and
// nothing may be left in the origin's store or the build-index's backend.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	p := newHostileProxy(t)
	hc := &http.Client{Timeout: 30 * time.Second}
	send := func(t *testing.T, method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, p.url+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	// What the cases build on: a blob, a tagged manifest and an open upload session.
	layer := []byte("a layer of ten bytes..")
	layerD := digest.FromBytes(layer)
	if resp, b := send(t, "POST", "/v2/team/app/blobs/uploads/?digest="+layerD.String(), layer, nil); resp.StatusCode != 201 {
		t.Fatalf("push layer: %d %s", resp.StatusCode, b)
	}
	manifest := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ociManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": layerD, "size": len(layer)},
		"layers": []any{}})
	if resp, b := send(t, "PUT", "/v2/team/app/manifests/v1", manifest, map[string]string{"Content-Type": ociManifest}); resp.StatusCode != 201 {
		t.Fatalf("push manifest: %d %s", resp.StatusCode, b)
	}
	resp, b := send(t, "POST", "/v2/team/app/blobs/uploads/", nil, nil)
	if resp.StatusCode != 202 {
		t.Fatalf("start upload: %d %s", resp.StatusCode, b)
	}
	session := resp.Header.Get("Location") // /v2/team/app/blobs/uploads/<id>
	id := session[strings.LastIndex(session, "/")+1:]
	enc, _, _ := strings.Cut(id, ".")
	if resp, b := send(t, "PATCH", session, []byte("0123456789"), map[string]string{"Content-Range": "0-9"}); resp.StatusCode != 202 {
		t.Fatalf("first chunk: %d %s", resp.StatusCode, b)
	}

	// An origin that is not a member: an upload id naming it must never reach it.
	var outsiderHits atomic.Int64
	outsider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		outsiderHits.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(outsider.Close)
	outsiderID := base64.RawURLEncoding.EncodeToString([]byte(outsider.URL)) + "." + strings.Repeat("a", 32)

	wrong := digest.FromString("not the content")
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	imageWith := func(cfg string) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":` +
			cfg + `,"size":2},"layers":[]}`)
	}
	chunk := []byte("abcdefghij")
	up := "/v2/team/app/blobs/uploads/"
	blob := "/v2/team/app/blobs/"
	man := "/v2/team/app/manifests/"
	ct := func(v string) map[string]string { return map[string]string{"Content-Type": v} }
	cr := func(v string) map[string]string { return map[string]string{"Content-Range": v} }
	rng := func(v string) map[string]string { return map[string]string{"Range": v} }

	cases := []struct {
		name         string
		method, path string
		body         []byte
		hdr          map[string]string
		status       int
		code         string // "" for HEAD and answers Go's server gives before any handler
	}{
		// Repository names.
		{"uppercase name", "GET", "/v2/Team/App/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"dot-dot component", "GET", "/v2/team/../app/manifests/v1", nil, nil, 400, "NAME_INVALID"},
		{"escaped dot-dot component", "POST", "/v2/team/%2e%2e/app/blobs/uploads/", nil, nil, 400, "NAME_INVALID"},
		{"escaped dot-dot as the name", "POST", "/v2/%2E%2E/blobs/uploads/", chunk, nil, 400, "NAME_INVALID"},
		{"dot name", "GET", "/v2/./manifests/v1", nil, nil, 400, "NAME_INVALID"},
		{"empty component", "PUT", "/v2/team//app/manifests/v1", manifest, ct(ociManifest), 400, "NAME_INVALID"},
		{"leading separator", "GET", "/v2/-team/app/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"trailing separator", "GET", "/v2/team/app_/manifests/v1", nil, nil, 400, "NAME_INVALID"},
		{"name of 256 bytes", "POST", "/v2/" + strings.Repeat("a", 256) + "/blobs/uploads/", nil, nil, 400, "NAME_INVALID"},
		{"non-ASCII name", "GET", "/v2/t%C3%ABam/app/manifests/v1", nil, nil, 400, "NAME_INVALID"},
		{"NUL in name", "GET", "/v2/team%00/app/manifests/v1", nil, nil, 400, "NAME_INVALID"},
		{"backslash in name", "POST", "/v2/team%5C..%5Capp/blobs/uploads/", nil, nil, 400, "NAME_INVALID"},
		{"empty name", "GET", "/v2//manifests/v1", nil, nil, 404, "NAME_UNKNOWN"},
		{"no API route", "GET", "/v2/team/app/secrets/v1", nil, nil, 404, "NAME_UNKNOWN"},

		// Digests.
		{"short digest", "GET", blob + "sha256:abc", nil, nil, 400, "DIGEST_INVALID"},
		{"uppercase hex", "GET", blob + "sha256:" + strings.ToUpper(layerD.Encoded()), nil, nil, 400, "DIGEST_INVALID"},
		{"sha512 blob", "GET", blob + sha512, nil, nil, 400, "DIGEST_INVALID"},
		{"md5 blob HEAD", "HEAD", blob + "md5:d41d8cd98f00b204e9800998ecf8427e", nil, nil, 400, ""},
		{"dot-dot digest", "GET", blob + "%2e%2e", nil, nil, 400, "DIGEST_INVALID"},
		{"traversal in digest", "GET", blob + "sha256:..%2F..%2Fetc%2Fpasswd", nil, nil, 404, "NAME_UNKNOWN"},
		{"digest with NUL", "GET", blob + "sha256:" + layerD.Encoded() + "%00", nil, nil, 400, "DIGEST_INVALID"},
		{"bad manifest digest", "GET", man + "sha256:xyz", nil, nil, 400, "DIGEST_INVALID"},
		{"invalid tag", "PUT", man + ".hidden", manifest, ct(ociManifest), 400, "DIGEST_INVALID"},
		{"tag of 129 bytes", "PUT", man + strings.Repeat("t", 129), manifest, ct(ociManifest), 400, "DIGEST_INVALID"},
		{"monolithic bad digest", "POST", up + "?digest=sha256:zz", chunk, nil, 400, "DIGEST_INVALID"},
		{"monolithic wrong digest", "POST", up + "?digest=" + wrong.String(), chunk, nil, 400, "DIGEST_INVALID"},
		{"monolithic sha512", "POST", up + "?digest=" + sha512, chunk, nil, 400, "DIGEST_INVALID"},
		{"commit without digest", "PUT", session, nil, nil, 400, "DIGEST_INVALID"},
		{"commit bad digest", "PUT", session + "?digest=sha256:..%2f..", chunk, nil, 400, "DIGEST_INVALID"},
		{"manifest digest mismatch", "PUT", man + wrong.String(), manifest, ct(ociManifest), 400, "DIGEST_INVALID"},

		// Upload ids.
		{"dot-dot upload id", "PATCH", up + "%2e%2e", chunk, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"traversal upload id", "PATCH", up + "..%2F..%2Fblobs", chunk, nil, 404, "NAME_UNKNOWN"},
		{"member origin, dot-dot id", "PATCH", up + enc + ".%2e%2e", chunk, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"member origin, dot id", "PUT", up + enc + "..?digest=" + layerD.String(), nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"member origin, short id", "GET", up + enc + ".abc", nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"member origin, escaped id", "DELETE", up + enc + "." + "%2e%2e%5cuploads", nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"not base64", "PATCH", up + "!!!." + strings.Repeat("a", 32), chunk, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"no origin part", "GET", up + strings.Repeat("a", 32), nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"outsider origin PATCH", "PATCH", up + outsiderID, chunk, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"outsider origin PUT", "PUT", up + outsiderID + "?digest=" + layerD.String(), layer, nil, 404, "BLOB_UPLOAD_UNKNOWN"},

		// Upload offsets (Content-Range of a chunk; the session holds 10 bytes).
		{"chunk past the end", "PATCH", session, chunk, cr("20-29"), 416, "RANGE_INVALID"},
		{"chunk rewriting the start", "PATCH", session, chunk, cr("0-9"), 416, "RANGE_INVALID"},
		{"negative start", "PATCH", session, chunk, cr("-1-8"), 416, "RANGE_INVALID"},
		{"end before start", "PATCH", session, chunk, cr("19-10"), 416, "RANGE_INVALID"},
		{"overflowing end", "PATCH", session, chunk, cr("10-99999999999999999999"), 416, "RANGE_INVALID"},
		{"end at MaxInt64", "PATCH", session, chunk, cr("10-9223372036854775807"), 416, "RANGE_INVALID"},
		{"length disagrees", "PATCH", session, chunk, cr("10-14"), 416, "RANGE_INVALID"},
		{"not a range", "PATCH", session, chunk, cr("bytes=10-19"), 416, "RANGE_INVALID"},
		{"garbage range", "PATCH", session, chunk, cr("ten to nineteen"), 416, "RANGE_INVALID"},
		{"final chunk past the end", "PUT", session + "?digest=" + layerD.String(), chunk, cr("11-20"), 416, "RANGE_INVALID"},

		// Ranges of a blob read (the blob is 22 bytes).
		{"range past the end", "GET", blob + layerD.String(), nil, rng("bytes=100-200"), 416, "RANGE_INVALID"},
		{"range end before start", "GET", blob + layerD.String(), nil, rng("bytes=9-3"), 416, "RANGE_INVALID"},
		{"empty range", "GET", blob + layerD.String(), nil, rng("bytes=-"), 416, "RANGE_INVALID"},
		{"overflowing range", "GET", blob + layerD.String(), nil, rng("bytes=99999999999999999999-"), 416, "RANGE_INVALID"},
		{"negative range", "GET", blob + layerD.String(), nil, rng("bytes=-5-10"), 416, "RANGE_INVALID"},
		{"unknown range unit", "GET", blob + layerD.String(), nil, rng("pages=0-1"), 416, "RANGE_INVALID"},
		{"zero-length suffix range", "GET", blob + layerD.String(), nil, rng("bytes=-0"), 416, "RANGE_INVALID"},

		// Manifest bodies and content types.
		{"truncated JSON", "PUT", man + "v2", []byte(`{"schemaVersion":2,`), ct(ociManifest), 400, "MANIFEST_INVALID"},
		{"not JSON", "PUT", man + "v2", []byte("\x00\xff<html>"), ct(ociManifest), 400, "MANIFEST_INVALID"},
		{"JSON array", "PUT", man + "v2", []byte(`[1,2,3]`), ct(ociManifest), 400, "MANIFEST_INVALID"},
		{"schema 1", "PUT", man + "v2", []byte(`{"schemaVersion":1,"name":"team/app"}`), nil, 400, "MANIFEST_INVALID"},
		{"schemaVersion as a string", "PUT", man + "v2", []byte(`{"schemaVersion":"2"}`), nil, 400, "MANIFEST_INVALID"},
		{"null config", "PUT", man + "v2", imageWith("null"), ct(ociManifest), 400, "MANIFEST_INVALID"},
		{"config digest traversal", "PUT", man + "v2", imageWith(`"sha256:../../../etc/passwd"`), ct(ociManifest), 400, "MANIFEST_INVALID"},
		{"deeply nested JSON", "PUT", man + "v2", []byte(`{"schemaVersion":2,"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`), nil, 400, "MANIFEST_INVALID"},
		{"over 4 MiB", "PUT", man + "v2", append(append([]byte(`{"schemaVersion":2,"x":"`), bytes.Repeat([]byte("x"), oci.MaxManifestSize)...), `"}`...), ct(ociManifest), 413, "MANIFEST_INVALID"},
		{"HTML content type", "PUT", man + "v2", manifest, ct("text/html"), 400, "MANIFEST_INVALID"},
		{"index content type on an image", "PUT", man + "v2", manifest, ct(ociIndex), 400, "MANIFEST_INVALID"},
		{"malformed content type", "PUT", man + "v2", manifest, ct("application/vnd.oci.image.manifest.v1+json; ;=="), 400, "MANIFEST_INVALID"},
		{"dangling config", "PUT", man + "v2", imageWith(`"` + wrong.String() + `"`), ct(ociManifest), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"manifest of an ordinary blob", "GET", man + layerD.String(), nil, nil, 404, "MANIFEST_UNKNOWN"},

		// Pagination.
		{"n not a number", "GET", "/v2/team/app/tags/list?n=ten", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},
		{"negative n", "GET", "/v2/team/app/tags/list?n=-1", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},
		{"overflowing n", "GET", "/v2/_catalog?n=99999999999999999999", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},

		// Methods.
		{"DELETE a manifest", "DELETE", man + "v1", nil, nil, 405, "UNSUPPORTED"},
		{"DELETE a blob", "DELETE", blob + layerD.String(), nil, nil, 405, "UNSUPPORTED"},
		{"POST a catalog", "POST", "/v2/_catalog", []byte("{}"), ct("application/json"), 405, "UNSUPPORTED"},

		// Headers Go's server refuses before any handler runs.
		{"huge header", "GET", man + "v1", nil, map[string]string{"X-Pad": strings.Repeat("x", 2<<20)}, 431, ""},
	}
	before := snapshot(t, p.dirs...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := send(t, c.method, c.path, c.body, c.hdr)
			if resp.StatusCode != c.status {
				t.Fatalf("%s %.100s: %d %s, want %d %s", c.method, c.path, resp.StatusCode, body, c.status, c.code)
			}
			if got := ociCode(body); c.code != "" && got != c.code {
				t.Fatalf("%s %.100s: %d %s, want code %s", c.method, c.path, resp.StatusCode, body, c.code)
			}
		})
	}
	// Bodies Go's server must refuse: a negative or overflowing Content-Length.
	for name, cl := range map[string]string{"negative length": "-10", "overflowing length": "99999999999999999999"} {
		st := rawRequest(t, p.url, "PATCH "+session+" HTTP/1.1\r\nHost: x\r\nContent-Length: "+cl+"\r\n\r\n0123456789")
		if st != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, st)
		}
	}
	if left := leftBehind(before, snapshot(t, p.dirs...)); len(left) > 0 {
		t.Fatalf("bad input left files behind: %q", left)
	}
	if n := outsiderHits.Load(); n != 0 {
		t.Fatalf("an upload id made the proxy call a non-member %d times", n)
	}
	// The session survived every bad chunk untouched and still completes.
	rest := layer[10:]
	want := digest.FromBytes(append([]byte("0123456789"), rest...))
	if resp, b := send(t, "PUT", session+"?digest="+want.String(), rest, nil); resp.StatusCode != 201 {
		t.Fatalf("complete the session: %d %s", resp.StatusCode, b)
	}
	if resp, b := send(t, "GET", "/v2/team/app/tags/list", nil, nil); !bytes.Contains(b, []byte(`"tags":["v1"]`)) {
		t.Fatalf("tags after bad input: %d %s", resp.StatusCode, b)
	}
}
