package buildindexclient

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// fakeIndex is a minimal stand-in for the build-index's API, enough to check what the
// client sends and how it reads answers; the real pairing is tested in buildindex/.
type fakeIndex struct {
	mu   sync.Mutex
	tags map[string]string // "repo:tag" -> digest
}

func (f *fakeIndex) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.URL.Path
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(ErrorBody{Error: code, Message: msg})
	}
	switch {
	case p == "/repositories" && r.Method == http.MethodGet:
		repos := []string{}
		for k := range f.tags {
			repo, _, _ := strings.Cut(k, ":")
			if !slices.Contains(repos, repo) {
				repos = append(repos, repo)
			}
		}
		slices.Sort(repos)
		_ = json.NewEncoder(w).Encode(RepositoryList{Repositories: repos})
	case strings.HasSuffix(p, "/_list") && r.Method == http.MethodGet:
		repo := strings.TrimSuffix(strings.TrimPrefix(p, "/tags/"), "/_list")
		var tags []string
		for k := range f.tags {
			if rp, tag, _ := strings.Cut(k, ":"); rp == repo {
				tags = append(tags, tag)
			}
		}
		if len(tags) == 0 {
			fail(http.StatusNotFound, CodeNotFound, "repository "+repo+" has no tags")
			return
		}
		slices.Sort(tags)
		_ = json.NewEncoder(w).Encode(TagList{Tags: tags})
	case strings.Contains(p, "/_tag/"):
		repo, tag, _ := strings.Cut(strings.TrimPrefix(p, "/tags/"), "/_tag/")
		switch r.Method {
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			if _, err := digest.Parse(string(b)); err != nil {
				fail(http.StatusBadRequest, CodeBadRequest, "body is not a digest")
				return
			}
			f.tags[repo+":"+tag] = string(b)
			w.WriteHeader(http.StatusCreated)
		case http.MethodGet:
			d, ok := f.tags[repo+":"+tag]
			if !ok {
				fail(http.StatusNotFound, CodeNotFound, "tag "+repo+":"+tag+" unknown")
				return
			}
			_, _ = io.WriteString(w, d)
		}
	case p == "/plain-error":
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	default:
		http.NotFound(w, r)
	}
}

func newClient(t *testing.T) *Client {
	t.Helper()
	srv := httptest.NewServer(&fakeIndex{tags: map[string]string{}})
	t.Cleanup(srv.Close)
	return New(srv.URL+"/", srv.Client())
}

func TestTags(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := t.Context()
	d1, d2 := digest.FromString("one"), digest.FromString("two")
	if err := c.PutTag(ctx, "library/busybox", "latest", d1); err != nil {
		t.Fatalf("PutTag: %v", err)
	}
	if err := c.PutTag(ctx, "library/busybox", "1.36", d2); err != nil {
		t.Fatalf("PutTag: %v", err)
	}
	if err := c.PutTag(ctx, "alpine", "3", d2); err != nil {
		t.Fatalf("PutTag: %v", err)
	}
	if got, err := c.GetTag(ctx, "library/busybox", "latest"); err != nil || got != d1 {
		t.Fatalf("GetTag = %s, %v; want %s", got, err, d1)
	}
	if got, err := c.ListTags(ctx, "library/busybox"); err != nil || !slices.Equal(got, []string{"1.36", "latest"}) {
		t.Fatalf("ListTags = %q, %v", got, err)
	}
	if got, err := c.ListRepositories(ctx); err != nil || !slices.Equal(got, []string{"alpine", "library/busybox"}) {
		t.Fatalf("ListRepositories = %q, %v", got, err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := t.Context()

	_, err := c.GetTag(ctx, "library/busybox", "nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "tag library/busybox:nope unknown") {
		t.Fatalf("GetTag of a missing tag: %v, want ErrNotFound with status and message", err)
	}
	if _, err := c.ListTags(ctx, "empty"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ListTags of a repo without tags: %v, want ErrNotFound", err)
	}

	err = c.PutTag(ctx, "a", "b", digest.Digest("nonsense"))
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "body is not a digest") {
		t.Fatalf("PutTag of a bad digest: %v, want a 400 error with the message", err)
	}

	_, err = c.do(ctx, http.MethodGet, "/plain-error", nil)
	if err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "upstream exploded") {
		t.Fatalf("plain-text error: %v, want status and body", err)
	}
}

func TestEscaping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ repo, tag, want string }{
		{"library/busybox", "1.36", "/tags/library/busybox/_tag/1.36"},
		{"a b/c?", "x#y", "/tags/a%20b/c%3F/_tag/x%23y"},
	} {
		if got := tagPath(tc.repo, tc.tag); got != tc.want {
			t.Errorf("tagPath(%q, %q) = %q, want %q", tc.repo, tc.tag, got, tc.want)
		}
	}
}
