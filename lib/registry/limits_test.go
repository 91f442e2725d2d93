package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/oci"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// limited is a read-write registry over a Memory with limits l, called in-process so
// each request can come from its own remote address.
type limited struct {
	h     http.Handler
	mem   *Memory
	clock *testClock
}

func newLimited(l Limits) *limited {
	mem := NewMemory()
	c := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := chi.NewRouter()
	New(Options{Blobs: mem, Tags: mem, Uploads: mem, Limits: l, Now: c.Now}).Routes(r)
	return &limited{h: r, mem: mem, clock: c}
}

// call sends a request from remote (ip:port); a body of length -1 is sent chunked.
func (l *limited) call(method, path, remote string, body io.Reader, length int64) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = remote
	req.ContentLength = length
	w := httptest.NewRecorder()
	l.h.ServeHTTP(w, req)
	return w
}

func (l *limited) uploads() int {
	l.mem.mu.Lock()
	defer l.mem.mu.Unlock()
	return len(l.mem.uploads)
}

func wantRec(t *testing.T, what string, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status || (code != "" && !strings.Contains(w.Body.String(), `"`+code+`"`)) {
		t.Fatalf("%s: %d %s, want %d %s", what, w.Code, w.Body.String(), status, code)
	}
}

// manifestOf returns an image manifest of exactly size bytes whose config is cfg.
func manifestOf(t *testing.T, cfg digest.Digest, size int) []byte {
	t.Helper()
	head := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfg.String() + `","size":2},` +
		`"layers":[],"annotations":{"pad":"`
	tail := `"}}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("a manifest is at least %d bytes", len(head)+len(tail))
	}
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// A manifest PUT over max_manifest_bytes answers 413 MANIFEST_INVALID whether its
// length is declared or it is sent chunked, and stores neither the manifest nor its
// tag; one at the limit is stored.
func TestManifestOverLimitIs413AndStoresNothing(t *testing.T) {
	t.Parallel()
	const limit = 1024
	reg := newLimited(Limits{MaxManifestBytes: limit})
	cfg := put(t, reg.mem, "{}")
	ct := "application/vnd.oci.image.manifest.v1+json"
	over := manifestOf(t, cfg, limit+1)
	for _, length := range []int64{int64(len(over)), -1} {
		req := httptest.NewRequest("PUT", "/v2/team/app/manifests/v1", strings.NewReader(string(over)))
		req.Header.Set("Content-Type", ct)
		req.ContentLength = length
		w := httptest.NewRecorder()
		reg.h.ServeHTTP(w, req)
		wantRec(t, fmt.Sprintf("%d bytes, Content-Length %d", len(over), length), w, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID")
	}
	if n := reg.mem.BlobCount(); n != 1 {
		t.Fatalf("%d blobs stored, want only the config", n)
	}
	if repos, _ := reg.mem.Repositories(t.Context()); len(repos) != 0 {
		t.Fatalf("tags stored: %v", repos)
	}
	at := manifestOf(t, cfg, limit)
	req := httptest.NewRequest("PUT", "/v2/team/app/manifests/v1", strings.NewReader(string(at)))
	req.Header.Set("Content-Type", ct)
	w := httptest.NewRecorder()
	reg.h.ServeHTTP(w, req)
	wantRec(t, "manifest at the limit", w, http.StatusCreated, "")

	// The default is distribution's 4 MiB.
	def := newLimited(Limits{})
	w = def.call("PUT", "/v2/team/app/manifests/v1", "10.0.0.1:1", strings.NewReader(""), oci.MaxManifestSize+1)
	wantRec(t, "default limit", w, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID")
}

// list follows tags/list (or _catalog) pages from path by their Link headers.
func (l *limited) list(t *testing.T, path, key string) (pages [][]string) {
	t.Helper()
	for path != "" && len(pages) < 100 {
		w := l.call("GET", path, "10.0.0.1:1", nil, 0)
		wantRec(t, path, w, http.StatusOK, "")
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		var page []string
		for _, v := range body[key].([]any) {
			page = append(page, v.(string))
		}
		pages = append(pages, page)
		path = ""
		if link := w.Header().Get("Link"); link != "" {
			path = strings.TrimPrefix(strings.SplitN(link, ">", 2)[0], "<")
		}
	}
	return pages
}

// A page of tags/list and _catalog holds at most max_list_entries: an n over it, or
// none, is cut to it with a Link to the next page, and following the links lists all.
func TestListPagesCapped(t *testing.T) {
	t.Parallel()
	reg := newLimited(Limits{MaxListEntries: 3})
	var tags, repos []string
	for i := range 7 {
		tags = append(tags, fmt.Sprintf("t%d", i))
		repos = append(repos, fmt.Sprintf("team/r%d", i))
		_ = reg.mem.Put(t.Context(), "team/app", tags[i], digest.FromString("m"))
		_ = reg.mem.Put(t.Context(), repos[i], "v1", digest.FromString("m"))
	}
	repos = append(repos[:0:0], repos...)
	repos = append(repos, "team/app")
	slices.Sort(repos)
	for _, q := range []string{"", "?n=1000", "?n=3"} {
		pages := reg.list(t, "/v2/team/app/tags/list"+q, "tags")
		if len(pages) != 3 || len(pages[0]) != 3 || !slices.Equal(slices.Concat(pages...), tags) {
			t.Fatalf("tags/list%s: pages %v, want all 7 tags in pages of 3", q, pages)
		}
		pages = reg.list(t, "/v2/_catalog"+q, "repositories")
		if len(pages[0]) != 3 || !slices.Equal(slices.Concat(pages...), repos) {
			t.Fatalf("_catalog%s: pages %v, want %v in pages of 3", q, pages, repos)
		}
	}
	if pages := reg.list(t, "/v2/team/app/tags/list?n=2", "tags"); len(pages) != 4 || len(pages[0]) != 2 {
		t.Fatalf("n=2: pages %v", pages)
	}
	w := reg.call("GET", "/v2/team/app/tags/list?n=0", "10.0.0.1:1", nil, 0)
	if w.Header().Get("Link") != "" || !strings.Contains(w.Body.String(), `"tags":[]`) {
		t.Fatalf("n=0: %s, Link %q", w.Body.String(), w.Header().Get("Link"))
	}
}

// Open upload sessions are capped per client (remote IP) and in total: the next start
// answers 429 TOOMANYREQUESTS with Retry-After and opens nothing. A session stops
// counting when committed, cancelled, unknown to the seam, or idle for upload_ttl.
func TestUploadSessionsCapped(t *testing.T) {
	t.Parallel()
	reg := newLimited(Limits{MaxUploadsPerClient: 2, MaxUploads: 3, UploadTTL: time.Hour})
	start := func(remote string) *httptest.ResponseRecorder {
		return reg.call("POST", "/v2/team/app/blobs/uploads/", remote, nil, 0)
	}
	refused := func(what string, w *httptest.ResponseRecorder, opened int) {
		t.Helper()
		wantRec(t, what, w, http.StatusTooManyRequests, "TOOMANYREQUESTS")
		if w.Header().Get("Retry-After") == "" {
			t.Fatalf("%s: no Retry-After", what)
		}
		if n := reg.uploads(); n != opened {
			t.Fatalf("%s: %d sessions open, want %d", what, n, opened)
		}
	}
	a1, a2 := start("10.0.0.1:1000"), start("10.0.0.1:2000") // two connections, one client
	wantRec(t, "a1", a1, http.StatusAccepted, "")
	wantRec(t, "a2", a2, http.StatusAccepted, "")
	refused("a3 over the per-client limit", start("10.0.0.1:3000"), 2)
	data := "layer"
	w := reg.call("POST", "/v2/team/app/blobs/uploads/?digest="+digest.FromString(data).String(), "10.0.0.1:1",
		strings.NewReader(data), int64(len(data)))
	refused("monolithic upload over the per-client limit", w, 2)

	b1 := start("10.0.0.2:1000")
	wantRec(t, "b1", b1, http.StatusAccepted, "")
	refused("b2 over the total", start("10.0.0.2:1001"), 3)

	// A cancel frees a slot.
	wantRec(t, "cancel a1", reg.call("DELETE", a1.Header().Get("Location"), "10.0.0.1:1", nil, 0), http.StatusNoContent, "")
	a3 := start("10.0.0.1:4000")
	wantRec(t, "a3 after a cancel", a3, http.StatusAccepted, "")

	// A commit frees one.
	w = reg.call("PATCH", a2.Header().Get("Location"), "10.0.0.1:1", strings.NewReader(data), int64(len(data)))
	wantRec(t, "patch a2", w, http.StatusAccepted, "")
	w = reg.call("PUT", a2.Header().Get("Location")+"?digest="+digest.FromString(data).String(), "10.0.0.1:1", nil, 0)
	wantRec(t, "commit a2", w, http.StatusCreated, "")
	a4 := start("10.0.0.1:5000")
	wantRec(t, "a4 after a commit", a4, http.StatusAccepted, "")
	refused("a5", start("10.0.0.1:6000"), 3)

	// A session the origin no longer knows (it expired there) stops counting at the
	// first request that finds out.
	if err := reg.mem.Cancel(t.Context(), a3.Header().Get("Docker-Upload-UUID")); err != nil {
		t.Fatal(err)
	}
	w = reg.call("PATCH", a3.Header().Get("Location"), "10.0.0.1:1", strings.NewReader(data), int64(len(data)))
	wantRec(t, "patch a3", w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	a5 := start("10.0.0.1:7000")
	wantRec(t, "a5 after a3 went unknown", a5, http.StatusAccepted, "")

	// Idle sessions stop counting after upload_ttl; a request keeps one counting.
	reg.clock.Advance(50 * time.Minute)
	wantRec(t, "status a4", reg.call("GET", a4.Header().Get("Location"), "10.0.0.1:1", nil, 0), http.StatusNoContent, "")
	reg.clock.Advance(20 * time.Minute) // a5 idle 70m, a4 20m
	wantRec(t, "a6 after a5 expired", start("10.0.0.1:8000"), http.StatusAccepted, "")
	refused("a7 while a4 is in use", start("10.0.0.1:9000"), 4) // the registry no longer counts a5; the seam still holds it
}

// countingUploads counts the Size calls made of a Memory.
type countingUploads struct {
	*Memory
	mu    sync.Mutex
	sizes int
}

func (c *countingUploads) Size(ctx context.Context, id string) (int64, error) {
	c.mu.Lock()
	c.sizes++
	c.mu.Unlock()
	return c.Memory.Size(ctx, id)
}

func (c *countingUploads) asked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sizes
}

// A session committed through another proxy (or expired on the origin) is never seen
// ending here: a client at its limit makes the registry ask about its sessions idle for
// recheckAfter, each at most once per recheckAfter, and those gone stop counting.
func TestUploadSessionsEndedElsewhereStopCounting(t *testing.T) {
	t.Parallel()
	reg := newLimited(Limits{MaxUploadsPerClient: 2})
	up := &countingUploads{Memory: reg.mem}
	r := chi.NewRouter()
	New(Options{Blobs: reg.mem, Tags: reg.mem, Uploads: up, Limits: Limits{MaxUploadsPerClient: 2}, Now: reg.clock.Now}).Routes(r)
	reg.h = r
	start := func() *httptest.ResponseRecorder {
		return reg.call("POST", "/v2/team/app/blobs/uploads/", "10.0.0.1:1", nil, 0)
	}
	s1 := start()
	wantRec(t, "s1", s1, http.StatusAccepted, "")
	wantRec(t, "s2", start(), http.StatusAccepted, "")
	id := s1.Header().Get("Docker-Upload-UUID")
	if _, err := reg.mem.Append(t.Context(), id, 0, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := reg.mem.Commit(t.Context(), id, digest.FromString("x")); err != nil { // through another proxy
		t.Fatal(err)
	}
	reg.clock.Advance(10 * time.Second)
	wantRec(t, "s3 while s1, s2 are recent", start(), http.StatusTooManyRequests, "TOOMANYREQUESTS")
	if n := up.asked(); n != 0 {
		t.Fatalf("asked about %d sessions in use, want none", n)
	}
	reg.clock.Advance(recheckAfter)
	wantRec(t, "s3 once s1 is found gone", start(), http.StatusAccepted, "")
	if n := up.asked(); n != 2 {
		t.Fatalf("asked about %d sessions, want s1 and s2", n)
	}
	for range 5 {
		wantRec(t, "s4", start(), http.StatusTooManyRequests, "TOOMANYREQUESTS")
	}
	if n := up.asked(); n != 2 {
		t.Fatalf("asked about %d sessions, want s2 not asked about again within recheckAfter", n)
	}
}
