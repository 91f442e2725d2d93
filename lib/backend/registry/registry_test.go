package registry

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Config{URL: "https://registry-1.docker.io"}
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		substr string // "" means valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"full", func(c *Config) {
			*c = Config{URL: "http://127.0.0.1:5000/", Username: "u", Password: "p", Insecure: true, TagTTL: time.Minute, Timeout: time.Second}
		}, ""},
		{"https and insecure", func(c *Config) { c.Insecure = true }, ""},
		{"username alone", func(c *Config) { c.Username = "u" }, ""},
		{"no url", func(c *Config) { c.URL = "" }, "backend.registry.url: empty"},
		{"no scheme", func(c *Config) { c.URL = "registry-1.docker.io" }, "backend.registry.url"},
		{"ftp", func(c *Config) { c.URL = "ftp://x" }, "backend.registry.url"},
		{"path", func(c *Config) { c.URL = "https://r.example.com/v2/" }, "backend.registry.url"},
		{"user in url", func(c *Config) { c.URL = "https://u:p@r.example.com" }, "backend.registry.url"},
		{"http without insecure", func(c *Config) { c.URL = "http://127.0.0.1:5000" }, "backend.registry.insecure"},
		{"password alone", func(c *Config) { c.Password = "p" }, "backend.registry.username"},
		{"password file alone", func(c *Config) { c.PasswordFile = "/p" }, "backend.registry.username"},
		{"password and file", func(c *Config) { c.Username, c.Password, c.PasswordFile = "u", "p", "/p" }, "backend.registry.password_file"},
		{"prefix", func(c *Config) { c.RepositoryPrefix = "docker.io/" }, ""},
		{"prefix without slash", func(c *Config) { c.RepositoryPrefix = "docker.io" }, "backend.registry.repository_prefix"},
		{"prefix with leading slash", func(c *Config) { c.RepositoryPrefix = "/docker.io/" }, "backend.registry.repository_prefix"},
		{"negative ttl", func(c *Config) { c.TagTTL = -time.Second }, "backend.registry.tag_ttl"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "backend.registry.timeout"},
	} {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.substr == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.name, err)
		case tc.substr != "" && (err == nil || !strings.Contains(err.Error(), tc.substr)):
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.substr)
		}
	}
}

// Docker Hub's official images live under library/; Shoal's name stays as asked.
func TestDockerHubLibrary(t *testing.T) {
	t.Parallel()
	b, err := New(t.Context(), Config{URL: "https://registry-1.docker.io"})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{"busybox": "library/busybox", "library/busybox": "library/busybox", "bitnami/redis": "bitnami/redis"} {
		r, err := b.repository(in)
		if err != nil || r.RepositoryStr() != want {
			t.Errorf("repository(%q) = %q, %v; want %q", in, r.RepositoryStr(), err, want)
		}
	}
	if _, err := b.repository("Upper/Case"); err == nil {
		t.Error("repository(Upper/Case): no error, want an invalid name")
	}
}

// clock is an injected time source the tests advance by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeUpstream is ggcr's in-process registry behind a switch that makes it fail.
type fakeUpstream struct {
	srv         *httptest.Server
	host        string
	mode        atomic.Value // "" (up), "down" (503), "hang" (until the client gives up)
	tagHeads    atomic.Int64 // HEAD /v2/<repo>/manifests/<tag>
	wrongBody   atomic.Bool  // manifests by digest come back with other bytes
	slowTagHead atomic.Bool  // tag HEADs take 200ms
}

func newFakeUpstream(t *testing.T, wrap func(http.Handler) http.Handler) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	u.mode.Store("")
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	inner := h
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch u.mode.Load().(string) {
		case "down":
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		case "hang":
			<-r.Context().Done()
			return
		}
		i := strings.LastIndex(r.URL.Path, "/manifests/")
		isManifest, ref := i >= 0, r.URL.Path[i+1:]
		if isManifest {
			ref = r.URL.Path[i+len("/manifests/"):]
		}
		if isManifest && r.Method == http.MethodHead && !strings.Contains(ref, ":") {
			u.tagHeads.Add(1)
			if u.slowTagHead.Load() {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if isManifest && r.Method == http.MethodGet && strings.HasPrefix(ref, "sha256:") && u.wrongBody.Load() {
			w.Header().Set("Docker-Content-Digest", ref)
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			_, _ = io.WriteString(w, `{"not":"the manifest"}`)
			return
		}
		inner.ServeHTTP(w, r)
	})
	if wrap != nil {
		h = wrap(h)
	}
	u.srv = httptest.NewServer(h)
	t.Cleanup(u.srv.Close)
	u.host = strings.TrimPrefix(u.srv.URL, "http://")
	return u
}

// push writes a random image to host as repo:tag and returns it.
func push(t *testing.T, host, repo, tag string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, append(opts, remote.WithContext(t.Context()))...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return img
}

// retag points repo:tag at img, already pushed to the repo under another tag.
func retag(t *testing.T, host, repo, tag string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(ref, img, append(opts, remote.WithContext(t.Context()))...); err != nil {
		t.Fatalf("tag %s: %v", ref, err)
	}
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func newTestBackend(t *testing.T, cfg Config, opts ...Option) *Backend {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	t.Cleanup(tr.CloseIdleConnections)
	b, err := New(t.Context(), cfg, append([]Option{WithTransport(tr)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func download(ctx context.Context, b backend.Backend, objName string) (string, error) {
	var buf bytes.Buffer
	err := b.Download(ctx, objName, &buf)
	if err != nil && buf.Len() > 0 {
		return buf.String(), fmt.Errorf("%w (and %d bytes written)", err, buf.Len())
	}
	return buf.String(), err
}

// wantTag checks that Stat and Download of repo:tag both give digest want.
func wantTag(t *testing.T, b *Backend, repo, tag, want string) {
	t.Helper()
	got, err := download(t.Context(), b, backend.TagName(repo, tag))
	if err != nil || got != want {
		t.Fatalf("Download tag %s:%s = %q, %v; want %q", repo, tag, got, err, want)
	}
	info, err := b.Stat(t.Context(), backend.TagName(repo, tag))
	if err != nil || info.Size != int64(len(want)) {
		t.Fatalf("Stat tag %s:%s = %+v, %v; want size %d", repo, tag, info, err, len(want))
	}
}

func TestTag(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	img := push(t, up.host, "team/app", "v1")
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true})
	wantTag(t, b, "team/app", "v1", digestOf(t, img))

	for _, missing := range []string{backend.TagName("team/app", "nope"), backend.TagName("other", "v1"), backend.TagName("Bad/Name", "v1")} {
		if _, err := b.Stat(t.Context(), missing); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("Stat %s: %v, want ErrNotFound", missing, err)
		}
		if got, err := download(t.Context(), b, missing); !errors.Is(err, backend.ErrNotFound) || got != "" {
			t.Errorf("Download %s = %q, %v; want ErrNotFound and nothing written", missing, got, err)
		}
	}
}

// A multi-platform tag resolves to its index, not to one platform's manifest.
func TestTagIndex(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag(up.host+"/multi:latest", name.Insecure)
	if err := remote.WriteIndex(ref, idx, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true})
	wantTag(t, b, "multi", "latest", d.String())
	// And the index itself is served by digest, as a blob of that repository.
	raw, _ := idx.RawManifest()
	got, err := download(backend.WithNamespace(t.Context(), "multi"), b, backend.BlobName(digest.Digest(d.String())))
	if err != nil || got != string(raw) {
		t.Fatalf("Download index by digest = %d bytes, %v; want its %d raw bytes", len(got), err, len(raw))
	}
}

// Within the TTL a tag is answered from the cache; after it the upstream is asked
// again and a moved tag is followed.
func TestTagTTL(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	img1 := push(t, up.host, "app", "latest")
	img2 := push(t, up.host, "app", "next")
	up.tagHeads.Store(0) // pushing HEADs too
	clk := newClock()
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true, TagTTL: time.Minute}, WithClock(clk.Now))

	wantTag(t, b, "app", "latest", digestOf(t, img1))
	if n := up.tagHeads.Load(); n != 1 {
		t.Fatalf("%d upstream HEADs after the first resolution, want 1", n)
	}
	retag(t, up.host, "app", "latest", img2)
	up.tagHeads.Store(1)
	clk.Advance(59 * time.Second)
	wantTag(t, b, "app", "latest", digestOf(t, img1))
	if n := up.tagHeads.Load(); n != 1 {
		t.Fatalf("%d upstream HEADs within the TTL, want still 1", n)
	}
	clk.Advance(time.Second)
	wantTag(t, b, "app", "latest", digestOf(t, img2))
	if n := up.tagHeads.Load(); n != 2 {
		t.Fatalf("%d upstream HEADs after the TTL, want 2", n)
	}
	// The re-check restarted the TTL.
	clk.Advance(30 * time.Second)
	wantTag(t, b, "app", "latest", digestOf(t, img2))
	if n := up.tagHeads.Load(); n != 2 {
		t.Fatalf("%d upstream HEADs, want 2", n)
	}
}

// Concurrent resolutions of one tag share one upstream request.
func TestTagSingleFlight(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	img := push(t, up.host, "app", "latest")
	up.tagHeads.Store(0) // pushing HEADs too
	up.slowTagHead.Store(true)
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := download(t.Context(), b, backend.TagName("app", "latest")); err != nil || got != digestOf(t, img) {
				t.Errorf("Download = %q, %v", got, err)
			}
		})
	}
	wg.Wait()
	if n := up.tagHeads.Load(); n != 1 {
		t.Fatalf("%d upstream HEADs for 8 concurrent resolutions, want 1", n)
	}
}

// While the upstream fails (5xx, or no answer within the timeout), an expired tag is
// served stale and an unknown one is an error, not a miss. Once it is back, the tag is
// checked again.
func TestTagStale(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"down", "hang"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			up := newFakeUpstream(t, nil)
			img1 := push(t, up.host, "app", "v1")
			img2 := push(t, up.host, "app", "v2")
			clk := newClock()
			b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true, TagTTL: time.Minute, Timeout: 300 * time.Millisecond},
				WithClock(clk.Now))
			wantTag(t, b, "app", "v1", digestOf(t, img1))

			up.mode.Store(mode)
			clk.Advance(time.Hour)
			wantTag(t, b, "app", "v1", digestOf(t, img1))
			for _, n := range []string{backend.TagName("app", "v2"), backend.TagName("new", "v1")} {
				if _, err := b.Stat(t.Context(), n); err == nil || errors.Is(err, backend.ErrNotFound) {
					t.Fatalf("Stat %s with the upstream %s: %v, want an error other than ErrNotFound", n, mode, err)
				}
			}

			up.mode.Store("")
			retag(t, up.host, "app", "v1", img2)
			wantTag(t, b, "app", "v1", digestOf(t, img2))
		})
	}
}

// A tag deleted upstream is a miss once its TTL is over, and its cache entry is gone:
// with the upstream then down, it is an error, not a stale answer.
func TestTagDeleted(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	img := push(t, up.host, "app", "v1")
	clk := newClock()
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true, TagTTL: time.Minute}, WithClock(clk.Now))
	wantTag(t, b, "app", "v1", digestOf(t, img))

	ref, _ := name.NewTag(up.host+"/app:v1", name.Insecure)
	if err := remote.Delete(ref, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	wantTag(t, b, "app", "v1", digestOf(t, img)) // within the TTL
	clk.Advance(time.Minute)
	if _, err := b.Stat(t.Context(), backend.TagName("app", "v1")); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat of a deleted tag after the TTL: %v, want ErrNotFound", err)
	}
	up.mode.Store("down")
	if _, err := b.Stat(t.Context(), backend.TagName("app", "v1")); err == nil || errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat of a dropped tag with the upstream down: %v, want an error other than ErrNotFound", err)
	}
}

func TestBlob(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	img := push(t, up.host, "team/app", "v1")
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true})
	ctx := backend.WithNamespace(t.Context(), "team/app")

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	cfgName, _ := img.ConfigName()
	cfgRaw, _ := img.RawConfigFile()
	blobs := map[string][]byte{cfgName.String(): cfgRaw}
	for _, l := range layers {
		d, _ := l.Digest()
		rc, _ := l.Compressed()
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		blobs[d.String()] = data
	}
	for d, want := range blobs {
		n := backend.BlobName(digest.Digest(d))
		got, err := download(ctx, b, n)
		if err != nil || got != string(want) {
			t.Errorf("Download blob %s = %d bytes, %v; want %d bytes", d, len(got), err, len(want))
		}
		if info, err := b.Stat(ctx, n); err != nil || info.Size != int64(len(want)) {
			t.Errorf("Stat blob %s = %+v, %v; want size %d", d, info, err, len(want))
		}
	}

	// The manifest is a blob to Shoal: served by digest from the manifest endpoint.
	raw, _ := img.RawManifest()
	mName := backend.BlobName(digest.Digest(digestOf(t, img)))
	if got, err := download(ctx, b, mName); err != nil || got != string(raw) {
		t.Errorf("Download manifest by digest = %q, %v; want %q", got, err, raw)
	}
	if info, err := b.Stat(ctx, mName); err != nil || info.Size != int64(len(raw)) {
		t.Errorf("Stat manifest by digest = %+v, %v; want size %d", info, err, len(raw))
	}

	// Without a namespace, in another repository, or absent: misses, nothing written.
	for _, tc := range []struct {
		ctx  context.Context
		name string
		msg  string
	}{
		{t.Context(), mName, "repository unknown"},
		{backend.WithNamespace(t.Context(), "other"), mName, ""},
		{ctx, backend.BlobName(digest.FromString("absent")), ""},
		{ctx, "docker/registry/v2/something/else", ""},
	} {
		if _, err := b.Stat(tc.ctx, tc.name); !errors.Is(err, backend.ErrNotFound) || !strings.Contains(fmt.Sprint(err), tc.msg) {
			t.Errorf("Stat %s: %v, want ErrNotFound %q", tc.name, err, tc.msg)
		}
		if got, err := download(tc.ctx, b, tc.name); !errors.Is(err, backend.ErrNotFound) || got != "" || !strings.Contains(fmt.Sprint(err), tc.msg) {
			t.Errorf("Download %s = %q, %v; want ErrNotFound %q and nothing written", tc.name, got, err, tc.msg)
		}
	}
}

// A manifest whose bytes do not hash to the digest asked for is refused, unwritten.
func TestManifestWrongDigest(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	img := push(t, up.host, "app", "v1")
	up.wrongBody.Store(true)
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true})
	got, err := download(backend.WithNamespace(t.Context(), "app"), b, backend.BlobName(digest.Digest(digestOf(t, img))))
	if err == nil || errors.Is(err, backend.ErrNotFound) || got != "" {
		t.Fatalf("Download of a corrupt manifest = %q, %v; want an error and nothing written", got, err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	for _, rt := range []struct{ repo, tag string }{{"a/app", "v2"}, {"a/app", "v1"}, {"a/app", "latest"}, {"b", "x"}} {
		push(t, up.host, rt.repo, rt.tag)
	}
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true})
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{backend.TagsPrefix("a/app"), []string{backend.TagName("a/app", "latest"), backend.TagName("a/app", "v1"), backend.TagName("a/app", "v2")}},
		{backend.TagsPrefix("a/app") + "v", []string{backend.TagName("a/app", "v1"), backend.TagName("a/app", "v2")}},
		{backend.TagsPrefix("missing"), []string{}},
		{backend.RepositoriesPrefix, []string{backend.TagName("a/app", "latest"), backend.TagName("a/app", "v1"),
			backend.TagName("a/app", "v2"), backend.TagName("b", "x")}},
		{backend.RepositoriesPrefix + "b", []string{backend.TagName("b", "x")}},
		{"", []string{backend.TagName("a/app", "latest"), backend.TagName("a/app", "v1"),
			backend.TagName("a/app", "v2"), backend.TagName("b", "x")}},
		{"docker/registry/v2/blobs/", []string{}},
	} {
		got, err := b.List(t.Context(), tc.prefix)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, %v; want %q", tc.prefix, got, err, tc.want)
		}
	}
	up.mode.Store("down")
	if _, err := b.List(t.Context(), backend.TagsPrefix("a/app")); err == nil {
		t.Error("List with the upstream down: no error")
	}
}

// With a repository prefix (an agent mirroring the upstream for containerd), Shoal's
// names carry it and the upstream's do not: tags, blobs and listings translate, and a
// name without the prefix is a miss.
func TestRepositoryPrefix(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	img := push(t, up.host, "team/app", "v1")
	const prefix = "upstream.test_5000/"
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true, RepositoryPrefix: prefix})
	wantTag(t, b, prefix+"team/app", "v1", digestOf(t, img))
	if _, err := b.Stat(t.Context(), backend.TagName("team/app", "v1")); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("tag without the prefix: %v, want ErrNotFound", err)
	}

	raw, _ := img.RawManifest()
	md := digest.FromBytes(raw)
	got, err := download(backend.WithNamespace(t.Context(), prefix+"team/app"), b, backend.BlobName(md))
	if err != nil || got != string(raw) {
		t.Errorf("manifest by digest under the prefix = %d bytes, %v", len(got), err)
	}
	if _, err := b.Stat(backend.WithNamespace(t.Context(), "team/app"), backend.BlobName(md)); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("blob in a namespace without the prefix: %v, want ErrNotFound", err)
	}

	for _, prefixOf := range []string{backend.TagsPrefix(prefix + "team/app"), backend.RepositoriesPrefix} {
		names, err := b.List(t.Context(), prefixOf)
		if want := []string{backend.TagName(prefix+"team/app", "v1")}; err != nil || !slices.Equal(names, want) {
			t.Errorf("List(%q) = %q, %v; want %q", prefixOf, names, err, want)
		}
	}
}

func TestPasswordFile(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "puller" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	img := push(t, up.host, "team/app", "v1", remote.WithAuth(basic("puller", "s3cret")))
	file := t.TempDir() + "/password"
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true, Username: "puller", PasswordFile: file})
	wantTag(t, b, "team/app", "v1", digestOf(t, img))

	_, err := New(t.Context(), Config{URL: up.srv.URL, Insecure: true, Username: "puller", PasswordFile: file + ".missing"})
	if err == nil || !strings.Contains(err.Error(), "backend.registry.password_file") {
		t.Errorf("missing password file: %v", err)
	}
}

// An upstream without a catalog lists no repositories.
func TestListNoCatalog(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/_catalog" {
				http.Error(w, `{"errors":[{"code":"UNSUPPORTED"}]}`, http.StatusNotFound)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	push(t, up.host, "app", "v1")
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true})
	if got, err := b.List(t.Context(), backend.RepositoriesPrefix); err != nil || len(got) != 0 {
		t.Fatalf("List(RepositoriesPrefix) = %q, %v; want empty", got, err)
	}
}

func TestUpload(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t, Config{URL: "https://registry.example.com"})
	err := b.Upload(t.Context(), backend.TagName("app", "v1"), strings.NewReader("sha256:00"))
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, backend.ErrReadOnly) || !strings.Contains(err.Error(), "read-only backend") {
		t.Fatalf("Upload: %v, want ErrReadOnly", err)
	}
}

// An https URL is never answered over http, even on a loopback address.
func TestHTTPSOnly(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, nil)
	push(t, up.host, "app", "v1")
	b := newTestBackend(t, Config{URL: "https://" + up.host, Timeout: 2 * time.Second})
	if _, err := b.Stat(t.Context(), backend.TagName("app", "v1")); err == nil || errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat over https of a plain http upstream: %v, want an error", err)
	}
}

// Basic auth: the credentials go on every request; without them it is an error, not
// a miss.
func TestBasicAuth(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "secret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	img := push(t, up.host, "app", "v1", remote.WithAuth(basic("alice", "secret")))
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true, Username: "alice", Password: "secret"})
	wantTag(t, b, "app", "v1", digestOf(t, img))
	if got, err := download(backend.WithNamespace(t.Context(), "app"), b, backend.BlobName(digest.Digest(digestOf(t, img)))); err != nil || got == "" {
		t.Fatalf("Download manifest with basic auth = %q, %v", got, err)
	}

	anon := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true})
	if _, err := anon.Stat(t.Context(), backend.TagName("app", "v1")); err == nil || errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat without credentials: %v, want an error other than ErrNotFound", err)
	}
}

// Bearer challenge: ggcr's transport fetches a token from the realm with the
// credentials, scoped to the repository, and sends it upstream.
func TestBearerAuth(t *testing.T) {
	t.Parallel()
	const token = "tok-123"
	var scopes sync.Map
	var realm string
	up := newFakeUpstream(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "secret" {
					http.Error(w, "bad credentials", http.StatusUnauthorized)
					return
				}
				scopes.Store(r.URL.Query().Get("scope"), true)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"token":%q}`, token)
				return
			}
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="test"`, realm))
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	realm = up.srv.URL + "/token"
	img := push(t, up.host, "team/app", "v1", remote.WithAuth(basic("alice", "secret")))
	b := newTestBackend(t, Config{URL: up.srv.URL, Insecure: true, Username: "alice", Password: "secret"})
	wantTag(t, b, "team/app", "v1", digestOf(t, img))
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	if got, err := download(backend.WithNamespace(t.Context(), "team/app"), b, backend.BlobName(digest.Digest(ld.String()))); err != nil || got == "" {
		t.Fatalf("Download layer with a bearer token = %d bytes, %v", len(got), err)
	}
	if _, ok := scopes.Load("repository:team/app:pull"); !ok {
		t.Errorf("no token asked with scope repository:team/app:pull")
	}
	if got, err := b.List(t.Context(), backend.RepositoriesPrefix); err != nil || len(got) != 1 {
		t.Errorf("List catalog with a bearer token = %q, %v", got, err)
	}
}

func basic(user, pass string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
}
