package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/filesystem"
	"github.com/shoal-p2p/shoal/lib/buildindexclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type harness struct {
	url    string
	hc     *http.Client
	client *buildindexclient.Client
	scope  tally.TestScope
}

// start runs the whole build-index API in-process over a filesystem backend at root.
func start(t *testing.T, root string) *harness {
	t.Helper()
	be, err := filesystem.New(filesystem.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	scope := tally.NewTestScope("", nil)
	srv := httptest.NewServer(NewServer(be, zap.NewNop(), scope).Handler(http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	return &harness{url: srv.URL, hc: srv.Client(), client: buildindexclient.New(srv.URL, srv.Client()), scope: scope}
}

func (h *harness) request(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestTagRoundTrip(t *testing.T) {
	t.Parallel()
	h := start(t, t.TempDir())
	d := digest.FromString("manifest")

	if st, body := h.request(t, http.MethodPut, "/tags/library/busybox/_tag/latest", d.String()+"\n"); st != http.StatusCreated {
		t.Fatalf("PUT tag: %d %s", st, body)
	}
	if st, body := h.request(t, http.MethodGet, "/tags/library/busybox/_tag/latest", ""); st != http.StatusOK || body != d.String() {
		t.Fatalf("GET tag: %d %q, want 200 %q", st, body, d)
	}
	if st, body := h.request(t, http.MethodHead, "/tags/library/busybox/_tag/latest", ""); st != http.StatusOK || body != "" {
		t.Fatalf("HEAD tag: %d %q, want 200 and no body", st, body)
	}
	if st, _ := h.request(t, http.MethodHead, "/tags/library/busybox/_tag/nope", ""); st != http.StatusNotFound {
		t.Fatalf("HEAD missing tag: %d, want 404", st)
	}
	st, body := h.request(t, http.MethodGet, "/tags/library/busybox/_tag/nope", "")
	var eb buildindexclient.ErrorBody
	if st != http.StatusNotFound || json.Unmarshal([]byte(body), &eb) != nil || eb.Error != buildindexclient.CodeNotFound {
		t.Fatalf("GET missing tag: %d %s, want 404 not_found", st, body)
	}
	if got := h.scope.Snapshot().Counters()["tags_put+"]; got == nil || got.Value() != 1 {
		t.Fatalf("tags_put counter: %v", got)
	}
}

// Tags are mutable: a second PUT moves the tag.
func TestTagOverwrite(t *testing.T) {
	t.Parallel()
	h := start(t, t.TempDir())
	ctx := t.Context()
	d1, d2 := digest.FromString("v1"), digest.FromString("v2")
	for _, d := range []digest.Digest{d1, d2} {
		if err := h.client.PutTag(ctx, "app", "latest", d); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := h.client.GetTag(ctx, "app", "latest"); err != nil || got != d2 {
		t.Fatalf("GetTag = %s, %v; want %s", got, err, d2)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	h := start(t, t.TempDir())
	good := digest.FromString("x").String()
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"not a digest", http.MethodPut, "/tags/app/_tag/v1", "latest", http.StatusBadRequest},
		{"bad hex", http.MethodPut, "/tags/app/_tag/v1", "sha256:abc", http.StatusBadRequest},
		{"sha512", http.MethodPut, "/tags/app/_tag/v1", digest.SHA512.FromString("x").String(), http.StatusBadRequest},
		{"huge body", http.MethodPut, "/tags/app/_tag/v1", strings.Repeat("a", 2000), http.StatusBadRequest},
		{"uppercase repo", http.MethodPut, "/tags/Library/app/_tag/v1", good, http.StatusBadRequest},
		{"empty component", http.MethodPut, "/tags/library//app/_tag/v1", good, http.StatusBadRequest},
		{"trailing separator", http.MethodPut, "/tags/app-/_tag/v1", good, http.StatusBadRequest},
		{"tag starting with dot", http.MethodPut, "/tags/app/_tag/.v1", good, http.StatusBadRequest},
		{"tag with slash", http.MethodPut, "/tags/app/_tag/v1/x", good, http.StatusBadRequest},
		{"tag too long", http.MethodPut, "/tags/app/_tag/" + strings.Repeat("v", 129), good, http.StatusBadRequest},
		{"empty tag", http.MethodGet, "/tags/app/_tag/", "", http.StatusBadRequest},
		{"bad repo in list", http.MethodGet, "/tags/APP/_list", "", http.StatusBadRequest},
		{"escaped slash", http.MethodGet, "/tags/a%2Fb/_tag/v1", "", http.StatusBadRequest},
		{"no separator", http.MethodGet, "/tags/app", "", http.StatusNotFound},
		{"put on list", http.MethodPut, "/tags/app/_list", good, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := h.request(t, tc.method, tc.path, tc.body)
			var eb buildindexclient.ErrorBody
			if st != tc.status || json.Unmarshal([]byte(body), &eb) != nil || eb.Error == "" || eb.Message == "" {
				t.Fatalf("%s %s: %d %s, want %d with a JSON error", tc.method, tc.path, st, body, tc.status)
			}
		})
	}
	if repos, err := h.client.ListRepositories(t.Context()); err != nil || len(repos) != 0 {
		t.Fatalf("a rejected PUT stored something: %q, %v", repos, err)
	}
}

func TestListTags(t *testing.T) {
	t.Parallel()
	h := start(t, t.TempDir())
	ctx := t.Context()
	d := digest.FromString("m")
	put := map[string][]string{
		"library/busybox":     {"latest", "1.36", "_list", "_tag", "1.36.1"},
		"library/busybox/sub": {"x"},
		"library/busybox2":    {"y"},
	}
	for repo, tags := range put {
		for _, tag := range tags {
			if err := h.client.PutTag(ctx, repo, tag, d); err != nil {
				t.Fatalf("PutTag %s:%s: %v", repo, tag, err)
			}
		}
	}
	got, err := h.client.ListTags(ctx, "library/busybox")
	if want := []string{"1.36", "1.36.1", "_list", "_tag", "latest"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListTags = %q, %v; want %q", got, err, want)
	}
	for _, tag := range []string{"_list", "_tag"} {
		if got, err := h.client.GetTag(ctx, "library/busybox", tag); err != nil || got != d {
			t.Fatalf("GetTag of tag %q = %s, %v", tag, got, err)
		}
	}
	if _, err := h.client.ListTags(ctx, "library"); !errors.Is(err, buildindexclient.ErrNotFound) {
		t.Fatalf("ListTags of a repo without tags: %v, want ErrNotFound", err)
	}
	repos, err := h.client.ListRepositories(ctx)
	if want := []string{"library/busybox", "library/busybox/sub", "library/busybox2"}; err != nil || !slices.Equal(repos, want) {
		t.Fatalf("ListRepositories = %q, %v; want %q", repos, err, want)
	}
}

func TestRepositoriesEmpty(t *testing.T) {
	t.Parallel()
	h := start(t, t.TempDir())
	if st, body := h.request(t, http.MethodGet, "/repositories", ""); st != http.StatusOK || strings.TrimSpace(body) != `{"repositories":[]}` {
		t.Fatalf("GET /repositories on an empty backend: %d %s", st, body)
	}
}

// The tags sit where docker/distribution keeps them, and what a registry sharing the
// backend keeps beside them is not mistaken for tags.
func TestBackendLayout(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	h := start(t, root)
	ctx := t.Context()
	d := digest.FromString("m")
	if err := h.client.PutTag(ctx, "library/busybox", "latest", d); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "docker/registry/v2/repositories/library/busybox/_manifests/tags/latest/current/link")
	if b, err := os.ReadFile(link); err != nil || string(b) != d.String() {
		t.Fatalf("link file: %q, %v; want %q", b, err, d)
	}

	// What distribution writes besides the current link, and a tag written by it.
	repos := filepath.Join(root, "docker/registry/v2/repositories")
	for name, content := range map[string]string{
		"library/busybox/_manifests/tags/latest/index/sha256/" + d.Encoded() + "/link": d.String(),
		"library/busybox/_layers/sha256/" + d.Encoded() + "/link":                      d.String(),
		"library/busybox/_manifests/revisions/sha256/" + d.Encoded() + "/link":         d.String(),
		"other/_uploads/abc/startedat":                                                 "2024",
		"alpine/_manifests/tags/3.20/current/link":                                     d.String(),
	} {
		p := filepath.Join(repos, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := h.client.ListRepositories(ctx); err != nil || !slices.Equal(got, []string{"alpine", "library/busybox"}) {
		t.Fatalf("ListRepositories = %q, %v", got, err)
	}
	if got, err := h.client.ListTags(ctx, "library/busybox"); err != nil || !slices.Equal(got, []string{"latest"}) {
		t.Fatalf("ListTags = %q, %v", got, err)
	}
	if got, err := h.client.GetTag(ctx, "alpine", "3.20"); err != nil || got != d {
		t.Fatalf("GetTag of a registry-written tag = %s, %v", got, err)
	}
}

// The backend is the only state: a new server over the same root answers the same.
func TestRestartKeepsTags(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := digest.FromString("m")
	if err := start(t, root).client.PutTag(t.Context(), "app", "v1", d); err != nil {
		t.Fatal(err)
	}
	if got, err := start(t, root).client.GetTag(t.Context(), "app", "v1"); err != nil || got != d {
		t.Fatalf("GetTag after restart = %s, %v; want %s", got, err, d)
	}
}

func TestCorruptLink(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	h := start(t, root)
	p := filepath.Join(root, filepath.FromSlash(backend.TagName("app", "v1")))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, body := h.request(t, http.MethodGet, "/tags/app/_tag/v1", ""); st != http.StatusInternalServerError || !strings.Contains(body, "not a digest") {
		t.Fatalf("GET of a corrupt link: %d %s, want 500 naming the problem", st, body)
	}
}

func TestOps(t *testing.T) {
	t.Parallel()
	h := start(t, t.TempDir())
	if st, body := h.request(t, http.MethodGet, "/health", ""); st != http.StatusOK || body != "OK\n" {
		t.Fatalf("GET /health: %d %q", st, body)
	}
}

func TestParseTagsPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path      string
		repo, tag string
		list      bool
		err       error
	}{
		{"library/busybox/_tag/latest", "library/busybox", "latest", false, nil},
		{"a.b_c__d--e/f/_tag/V_1.0-rc", "a.b_c__d--e/f", "V_1.0-rc", false, nil},
		{"library/busybox/_list", "library/busybox", "", true, nil},
		{"app/_tag/_list", "app", "_list", false, nil},
		{"app/_tag/_tag", "app", "_tag", false, nil},
		{"app/_tag/a/_list", "", "", false, errBadRequest},
		{"_list", "", "", false, errNotFound},
		{"/_list", "", "", false, errBadRequest},
		{"a..b/_list", "", "", false, errBadRequest},
		{"a___b/_list", "", "", false, errBadRequest},
		{strings.Repeat("a", 256) + "/_list", "", "", false, errBadRequest},
		{"app/_tag/-x", "", "", false, errBadRequest},
	} {
		repo, tag, list, err := parseTagsPath(tc.path)
		if repo != tc.repo || tag != tc.tag || list != tc.list || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("parseTagsPath(%q) = %q, %q, %v, %v; want %q, %q, %v, %v", tc.path, repo, tag, list, err, tc.repo, tc.tag, tc.list, tc.err)
		}
	}
}
