package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
)

// fakeOrigin speaks the origin's upload and blob API over a Memory store. While broken
// is set it answers every request with 500.
type fakeOrigin struct {
	url    string
	mem    *Memory
	broken atomic.Bool
	starts atomic.Int64
}

func newFakeOrigin(t *testing.T) *fakeOrigin {
	t.Helper()
	o := &fakeOrigin{mem: NewMemory()}
	fail := func(w http.ResponseWriter, err error) {
		status, code := http.StatusInternalServerError, ""
		for _, m := range []struct {
			err    error
			status int
			code   string
		}{
			{ErrNotFound, http.StatusNotFound, originclient.CodeNotFound},
			{ErrUploadUnknown, http.StatusNotFound, originclient.CodeUploadUnknown},
			{ErrOffsetMismatch, http.StatusRequestedRangeNotSatisfiable, originclient.CodeOffsetMismatch},
			{ErrDigestMismatch, http.StatusBadRequest, originclient.CodeDigestMismatch},
		} {
			if errors.Is(err, m.err) {
				status, code = m.status, m.code
			}
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(originclient.ErrorBody{Error: code, Message: err.Error()})
	}
	size := func(w http.ResponseWriter, n int64, status int) {
		w.Header().Set(originclient.HeaderUploadSize, strconv.FormatInt(n, 10))
		w.WriteHeader(status)
	}
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if o.broken.Load() {
				http.Error(w, "disk on fire", http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK\n") })
	r.Post("/uploads", func(w http.ResponseWriter, r *http.Request) {
		o.starts.Add(1)
		id, _ := o.mem.Start(r.Context())
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id})
	})
	r.Patch("/uploads/{id}", func(w http.ResponseWriter, r *http.Request) {
		off, _ := strconv.ParseInt(r.Header.Get(originclient.HeaderUploadOffset), 10, 64)
		n, err := o.mem.Append(r.Context(), chi.URLParam(r, "id"), off, r.Body)
		if err != nil {
			fail(w, err)
			return
		}
		size(w, n, http.StatusAccepted)
	})
	r.Get("/uploads/{id}", func(w http.ResponseWriter, r *http.Request) {
		n, err := o.mem.Size(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			fail(w, err)
			return
		}
		size(w, n, http.StatusNoContent)
	})
	r.Put("/uploads/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := o.mem.Commit(r.Context(), chi.URLParam(r, "id"), digest.Digest(r.URL.Query().Get("digest"))); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	r.Delete("/uploads/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := o.mem.Cancel(r.Context(), chi.URLParam(r, "id")); err != nil {
			fail(w, err)
		}
	})
	blob := func(w http.ResponseWriter, r *http.Request) {
		rc, _, err := o.mem.Open(r.Context(), digest.Digest(chi.URLParam(r, "digest")))
		if err != nil {
			fail(w, err)
			return
		}
		defer rc.Close()
		http.ServeContent(w, r, "", time.Time{}, rc)
	}
	r.Get("/blobs/{digest}", blob)
	r.Head("/blobs/{digest}", blob)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	o.url = srv.URL
	return o
}

func newCluster(t *testing.T, n int) ([]*fakeOrigin, *originset.Set, *ClusterStore) {
	t.Helper()
	cfg := originset.DefaultConfig()
	cfg.Replicas = 2
	var origins []*fakeOrigin
	for range n {
		o := newFakeOrigin(t)
		origins = append(origins, o)
		cfg.Static = append(cfg.Static, o.url)
	}
	set, err := originset.New(cfg, nil, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	return origins, set, NewClusterStore(set, 0)
}

func put(t *testing.T, mem *Memory, data string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	id, _ := mem.Start(ctx)
	if _, err := mem.Append(ctx, id, 0, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString(data)
	if err := mem.Commit(ctx, id, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// A real client pushes and pulls an image through the registry over three origins.
func TestClusterStorePushPull(t *testing.T) {
	t.Parallel()
	origins, _, store := newCluster(t, 3)
	r := chi.NewRouter()
	New(Options{Blobs: store, Tags: NewMemory(), Uploads: store}).Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	img, err := random.Image(32<<10, 4)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/team/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if want, _ := img.Digest(); func() bool { g, _ := got.Digest(); return g != want }() {
		t.Fatal("pulled another image")
	}
	// 4 layers + config + manifest, each stored once on the origin of its session.
	total := 0
	for _, o := range origins {
		total += o.mem.BlobCount()
	}
	if total != 6 {
		t.Fatalf("%d blobs stored over the origins, want 6", total)
	}
}

func TestClusterStoreReadsFallThrough(t *testing.T) {
	t.Parallel()
	origins, set, store := newCluster(t, 3)
	ctx := context.Background()
	// Only the origin last in d's order has it (say it took the upload and has not
	// replicated yet): the owners' misses are passed over.
	d := digest.FromString("fresh layer")
	order := set.Owners(d)
	holder := byURL(origins, order[2].Addr())
	put(t, holder.mem, "fresh layer")
	if n, err := store.Stat(ctx, d); err != nil || n != int64(len("fresh layer")) {
		t.Fatalf("Stat = %d, %v", n, err)
	}
	rc, n, err := store.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "fresh layer" || n != int64(len(b)) {
		t.Fatalf("read %q (%d)", b, n)
	}

	// A broken first owner is passed over and reported; twice makes it unhealthy.
	first := byURL(origins, order[0].Addr())
	first.broken.Store(true)
	for range 2 {
		if _, err := store.Stat(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if set.Healthy(first.url) {
		t.Fatal("failing origin not reported")
	}

	// Nobody has it: a miss, even though one origin failed (the others read the backend).
	if _, err := store.Stat(ctx, digest.FromString("nowhere")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	// Every origin failing is an error, not a miss.
	for _, o := range origins {
		o.broken.Store(true)
	}
	if _, err := store.Stat(ctx, d); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want a failure", err)
	}
}

func TestClusterStoreUploadsStayOnTheirOrigin(t *testing.T) {
	t.Parallel()
	origins, set, store := newCluster(t, 3)
	ctx := context.Background()
	// Sessions start on a random origin: with 60 starts over 3 origins, one left out
	// has a chance of 3*(2/3)^60, about 1e-10 (12 starts gave 2%: a flaky test).
	for range 60 {
		id, err := store.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		enc, _, _ := strings.Cut(id, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(enc)
		o := byURL(origins, string(raw))
		if o == nil {
			t.Fatalf("upload id %q names no origin", id)
		}
		data := "blob of " + id
		if n, err := store.Append(ctx, id, 0, strings.NewReader(data)); err != nil || n != int64(len(data)) {
			t.Fatalf("Append = %d, %v", n, err)
		}
		if _, err := store.Append(ctx, id, 1, strings.NewReader("x")); !errors.Is(err, ErrOffsetMismatch) {
			t.Fatalf("Append at a wrong offset: %v", err)
		}
		if n, err := store.Size(ctx, id); err != nil || n != int64(len(data)) {
			t.Fatalf("Size = %d, %v", n, err)
		}
		if err := store.Commit(ctx, id, digest.FromString(data)); err != nil {
			t.Fatal(err)
		}
		if _, err := o.mem.Stat(ctx, digest.FromString(data)); err != nil {
			t.Fatalf("committed blob not on the session's origin: %v", err)
		}
	}
	for _, o := range origins {
		if o.starts.Load() == 0 {
			t.Errorf("no session started on %s: sessions are not spread", o.url)
		}
	}

	// A session start skips broken origins, reporting them until they are marked
	// unhealthy (then tried last, so no longer first).
	origins[0].broken.Store(true)
	origins[1].broken.Store(true)
	for i := 0; set.Healthy(origins[0].url) || set.Healthy(origins[1].url); i++ {
		if i == 100 {
			t.Fatal("broken origins not reported")
		}
		id, err := store.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	// Ids the proxy did not hand out are unknown uploads, never requests elsewhere.
	stranger := base64.RawURLEncoding.EncodeToString([]byte("http://169.254.169.254")) + ".abc"
	for _, id := range []string{"abc", "!!!.abc", stranger, base64.RawURLEncoding.EncodeToString([]byte(origins[2].url)) + "."} {
		if _, err := store.Size(ctx, id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("Size(%q) = %v, want ErrUploadUnknown", id, err)
		}
	}
}

func byURL(origins []*fakeOrigin, url string) *fakeOrigin {
	for _, o := range origins {
		if o.url == url {
			return o
		}
	}
	return nil
}
