package preheat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeContent serves one registry's content from memory. hook, when set, runs at the
// start of every Blob call (it may block, fail, or count); its error is returned.
type fakeContent struct {
	mu        sync.Mutex
	manifests map[digest.Digest][]byte
	blobs     map[digest.Digest][]byte
	tags      map[string]digest.Digest // "repo:tag"
	blobCalls int
	inflight  int
	peak      int // most Blob calls at once
	hook      func(ctx context.Context, repo string, d digest.Digest) error
	// body, when set, replaces the reader Blob returns for a digest.
	body func(d digest.Digest, b []byte) io.Reader
}

var _ Content = (*fakeContent)(nil)

// contentOf turns what a fakeFetcher built into a fakeContent: manifests as stored,
// every other named digest a blob whose bytes are its name.
func contentOf(f *fakeFetcher) *fakeContent {
	c := &fakeContent{manifests: map[digest.Digest][]byte{}, blobs: map[digest.Digest][]byte{}, tags: map[string]digest.Digest{}}
	for d, b := range f.bodies {
		c.manifests[d] = b
	}
	for d, name := range f.names {
		if _, ok := f.bodies[d]; !ok {
			c.blobs[d] = []byte(name)
		}
	}
	return c
}

func (c *fakeContent) tag(repo, tag string, d digest.Digest) { c.tags[repo+":"+tag] = d }

func (c *fakeContent) Resolve(_ context.Context, repo, ref string) (digest.Digest, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.tags[repo+":"+ref]
	if !ok {
		return "", fmt.Errorf("tag %s:%s: %w", repo, ref, ErrNotFound)
	}
	return d, nil
}

func (c *fakeContent) Manifest(_ context.Context, repo string, d digest.Digest) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.manifests[d]
	if !ok {
		return nil, fmt.Errorf("manifest %s@%s: %w", repo, d, ErrNotFound)
	}
	return b, nil
}

func (c *fakeContent) Blob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	c.mu.Lock()
	c.blobCalls++
	c.inflight++
	c.peak = max(c.peak, c.inflight)
	hook := c.hook
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight--
		c.mu.Unlock()
	}()
	if hook != nil {
		if err := hook(ctx, repo, d); err != nil {
			return nil, 0, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[d]
	if !ok {
		b, ok = c.manifests[d]
	}
	if !ok {
		return nil, 0, fmt.Errorf("blob %s@%s: %w", repo, d, ErrNotFound)
	}
	var r io.Reader = bytes.NewReader(b)
	if c.body != nil {
		r = c.body(d, b)
	}
	return io.NopCloser(r), int64(len(b)), nil
}

func (c *fakeContent) stats() (calls, peak int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobCalls, c.peak
}

// fakeCluster is the origins and agents: a Sink and an AgentWarmer over shared state.
// A Put stores on every origin at once, as ClusterStore's commit does. It trusts its
// reader, so what it keeps is exactly what the runner let through.
type fakeCluster struct {
	mu     sync.Mutex
	blobs  map[digest.Digest][]byte
	agents map[Pair]bool
	puts   int
	warms  int
}

var (
	_ Sink        = (*fakeCluster)(nil)
	_ AgentWarmer = (*fakeCluster)(nil)
)

func newCluster() *fakeCluster {
	return &fakeCluster{blobs: map[digest.Digest][]byte{}, agents: map[Pair]bool{}}
}

func (c *fakeCluster) Has(_ context.Context, h Host, d digest.Digest) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.Kind == HostAgent {
		return c.agents[Pair{h, d}], nil
	}
	_, ok := c.blobs[d]
	return ok, nil
}

func (c *fakeCluster) Put(_ context.Context, d digest.Digest, size int64, r io.Reader) error {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("fake put %s: %w", d, err) // keep nothing
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blobs[d] = b
	return nil
}

func (c *fakeCluster) Warm(_ context.Context, agent Host, d digest.Digest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.blobs[d]; !ok {
		return fmt.Errorf("agent %s: fetch %s from the origins: %w", agent.Addr, d, ErrNotFound)
	}
	c.agents[Pair{agent, d}] = true
	c.warms++
	return nil
}

func (c *fakeCluster) stored() map[digest.Digest][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[digest.Digest][]byte{}
	for d, b := range c.blobs {
		out[d] = b
	}
	return out
}

// contentContract checks what the runner relies on from a Content: repo holds tag
// pointing at manifest m, and blob b with bytes body; nothing else.
func contentContract(t *testing.T, c Content, repo, tag string, m digest.Digest, b digest.Digest, body []byte) {
	t.Helper()
	ctx := context.Background()
	if d, err := c.Resolve(ctx, repo, tag); err != nil || d != m {
		t.Errorf("Resolve(%s) = %s, %v; want %s", tag, d, err, m)
	}
	if _, err := c.Resolve(ctx, repo, "no-such-tag"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve of a missing tag: %v, want ErrNotFound", err)
	}
	if mb, err := c.Manifest(ctx, repo, m); err != nil || digest.FromBytes(mb) != m {
		t.Errorf("Manifest(%s): %v", m, err)
	}
	absent := digest.FromString("absent")
	if _, err := c.Manifest(ctx, repo, absent); !errors.Is(err, ErrNotFound) {
		t.Errorf("Manifest of a missing digest: %v, want ErrNotFound", err)
	}
	rc, size, err := c.Blob(ctx, repo, b)
	if err != nil {
		t.Fatalf("Blob(%s): %v", b, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) || (size >= 0 && size != int64(len(body))) {
		t.Errorf("Blob(%s) = %q (size %d), %v; want %q", b, got, size, err, body)
	}
	if _, _, err := c.Blob(ctx, repo, absent); !errors.Is(err, ErrNotFound) {
		t.Errorf("Blob of a missing digest: %v, want ErrNotFound", err)
	}
}

// sinkContract checks a Sink: a verified Put is held by origin, a Put whose reader
// fails keeps nothing, and concurrent Puts are safe.
func sinkContract(t *testing.T, s Sink, origin Host) {
	t.Helper()
	ctx := context.Background()
	good, bad := []byte("good bytes"), []byte("evil bytes")
	dg := digest.FromBytes(good)
	if ok, err := s.Has(ctx, origin, dg); ok || err != nil {
		t.Errorf("Has before Put = %v, %v", ok, err)
	}
	v, _ := newVerifier(bytes.NewReader(good), dg, int64(len(good)), nil)
	if err := s.Put(ctx, dg, int64(len(good)), v); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if ok, err := s.Has(ctx, origin, dg); !ok || err != nil {
		t.Errorf("Has after Put = %v, %v", ok, err)
	}
	db := digest.FromString("what bad should have been")
	v, _ = newVerifier(bytes.NewReader(bad), db, int64(len(bad)), nil)
	if err := s.Put(ctx, db, int64(len(bad)), v); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Put of corrupt bytes = %v, want ErrCorrupt", err)
	}
	if ok, _ := s.Has(ctx, origin, db); ok {
		t.Errorf("a failed Put left %s held", db)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			b := []byte(strings.Repeat("x", i+1))
			d := digest.FromBytes(b)
			v, _ := newVerifier(bytes.NewReader(b), d, int64(len(b)), nil)
			if err := s.Put(ctx, d, int64(len(b)), v); err != nil {
				t.Errorf("concurrent Put: %v", err)
			}
		})
	}
	wg.Wait()
}

// warmerContract checks an AgentWarmer over the cluster s fills: warming a blob the
// origins lack fails, one they hold succeeds, and again cheaply.
func warmerContract(t *testing.T, w AgentWarmer, s Sink, origin, agent Host) {
	t.Helper()
	ctx := context.Background()
	b := []byte("layer for agents")
	d := digest.FromBytes(b)
	if err := w.Warm(ctx, agent, d); err == nil {
		t.Errorf("Warm of a blob no origin holds succeeded")
	}
	v, _ := newVerifier(bytes.NewReader(b), d, int64(len(b)), nil)
	if err := s.Put(ctx, d, int64(len(b)), v); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Warm(ctx, agent, d); err != nil {
			t.Errorf("Warm: %v", err)
		}
	}
	if ok, err := s.Has(ctx, agent, d); !ok || err != nil {
		t.Errorf("Has(agent) after Warm = %v, %v", ok, err)
	}
}

func TestFakeContentContract(t *testing.T) {
	t.Parallel()
	f := newFake()
	m := f.image("img", v1.MediaTypeImageManifest, "layer-1")
	c := contentOf(f)
	c.tag("library/x", "latest", m.Digest)
	contentContract(t, c, "library/x", "latest", m.Digest, digest.FromString("layer-1"), []byte("layer-1"))
}

func TestFakeSinkContract(t *testing.T) {
	t.Parallel()
	sinkContract(t, newCluster(), o1)
}

func TestFakeWarmerContract(t *testing.T) {
	t.Parallel()
	c := newCluster()
	warmerContract(t, c, c, o1, n1)
}
