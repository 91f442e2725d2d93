package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/hashring"
	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
)

// The p2p engine and the HTTP servers and clients start goroutines; all must stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testProxy = "registry.example.com:15000"

// testTimeout bounds each request to the agent.
const testTimeout = 20 * time.Second

// cluster fakes the agent's upstreams: a tracker serving metainfo computed from the
// blobs it is given and handing out seeders, a build-index of tags, and an origin
// serving the blobs over HTTP. It counts the requests each receives.
type cluster struct {
	mu      sync.Mutex
	blobs   map[digest.Digest][]byte
	tags    map[string]digest.Digest // "repo:tag"
	seeders []p2p.Peer
	hits    map[string]int
	// originDown makes the origin's HTTP blob GETs fail with 503 (its P2P seeder is
	// another matter).
	originDown bool
	// originHang, when not nil, makes the origin's HTTP blob GETs send nothing until
	// it is closed (or the request ends).
	originHang chan struct{}

	tracker, buildIndex, origin *httptest.Server
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{blobs: map[digest.Digest][]byte{}, tags: map[string]digest.Digest{}, hits: map[string]int{}}

	tr := http.NewServeMux()
	tr.HandleFunc("GET /metainfo/{digest}", func(w http.ResponseWriter, r *http.Request) {
		c.hit("tracker metainfo")
		c.hit("tracker metainfo repository=" + r.URL.Query().Get("repository"))
		c.serveMetainfo(w, r, trackerclient.CodeNotFound)
	})
	tr.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {})
	tr.HandleFunc("POST /announce", func(w http.ResponseWriter, r *http.Request) {
		c.hit("tracker announce")
		var a p2p.Announce
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || len(a.InfoHash) != 40 || a.Digest == "" {
			http.Error(w, fmt.Sprintf("bad announce %+v: %v", a, err), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		peers := append([]p2p.Peer{}, c.seeders...)
		c.mu.Unlock()
		_ = json.NewEncoder(w).Encode(p2p.AnnounceReply{IntervalSeconds: 1, Peers: peers})
	})
	c.tracker = httptest.NewServer(tr)
	t.Cleanup(c.tracker.Close)

	c.buildIndex = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/tags/")
		repo, tag, found := strings.Cut(rest, "/_tag/")
		if r.Method != http.MethodGet || !ok || !found {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		c.hit("buildindex tag")
		c.mu.Lock()
		d, ok := c.tags[repo+":"+tag]
		c.mu.Unlock()
		if !ok {
			notFound(w, buildindexclient.CodeNotFound)
			return
		}
		_, _ = io.WriteString(w, d.String())
	}))
	t.Cleanup(c.buildIndex.Close)

	or := http.NewServeMux()
	or.HandleFunc("GET /blobs/{digest}", func(w http.ResponseWriter, r *http.Request) {
		c.hit("origin " + r.Method + " blob")
		if rg := r.Header.Get("Range"); rg != "" {
			c.hit("origin " + r.Method + " blob " + rg)
		}
		c.mu.Lock()
		down, hang := c.originDown, c.originHang
		c.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
				return
			}
		}
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		b, ok := c.blob(digest.Digest(r.PathValue("digest")))
		if !ok {
			notFound(w, originclient.CodeNotFound)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})
	or.HandleFunc("GET /blobs/{digest}/metainfo", func(w http.ResponseWriter, r *http.Request) {
		c.hit("origin metainfo")
		c.serveMetainfo(w, r, originclient.CodeNotFound)
	})
	c.origin = httptest.NewServer(or)
	t.Cleanup(c.origin.Close)
	return c
}

// serveMetainfo answers the metainfo of the blob the path names, or a 404 with code.
func (c *cluster) serveMetainfo(w http.ResponseWriter, r *http.Request, code string) {
	b, ok := c.blob(digest.Digest(r.PathValue("digest")))
	if !ok {
		notFound(w, code)
		return
	}
	res, err := metainfo.Generate(bytes.NewReader(b), metainfo.PieceLength(int64(len(b))))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	_, _ = w.Write(res.InfoBytes)
}

func notFound(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (c *cluster) hit(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hits[what]++
}

// count returns how many requests of a kind the fakes have answered.
func (c *cluster) count(what string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[what]
}

func (c *cluster) blob(d digest.Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[d]
	return b, ok
}

// add makes the origin (and so the tracker) hold b.
func (c *cluster) add(b []byte) digest.Digest {
	d := digest.FromBytes(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blobs[d] = b
	return d
}

func (c *cluster) tag(repo, tag string, d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tags[repo+":"+tag] = d
}

// agent is the real agent server over a temp-dir store and a real p2p engine,
// pointed at a cluster's fakes.
type agent struct {
	url    string
	hc     *http.Client
	store  *blobstore.Store
	cfg    Config
	engine *p2p.Engine
	scope  tally.TestScope
}

func newEngine(t *testing.T, ip string) (*p2p.Engine, *blobstore.Store) {
	t.Helper()
	store, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := p2p.New(p2p.Config{ListenIP: ip}, store, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close engine %s: %v", ip, err)
		}
	})
	return e, store
}

// newAgent starts an agent whose engine listens on ip (one per test: peers are banned
// by IP). Its origins are the cluster's and any others given.
func newAgent(t *testing.T, c *cluster, ip string, otherOrigins ...string) *agent {
	t.Helper()
	return newAgentWith(t, c, ip, func(cfg *Config) { cfg.Origins.Static = append(cfg.Origins.Static, otherOrigins...) })
}

// newAgentWith is newAgent with edit applied to its config.
func newAgentWith(t *testing.T, c *cluster, ip string, edit func(*Config)) *agent {
	t.Helper()
	engine, store := newEngine(t, ip)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.P2P = p2p.Config{ListenIP: ip}
	cfg.Tracker, cfg.BuildIndex = c.tracker.URL, c.buildIndex.URL
	cfg.Origins.Static = []string{c.origin.URL}
	cfg.Proxy = testProxy
	edit(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	upstream := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(upstream.CloseIdleConnections)
	origins, err := originset.New(cfg.Origins, upstream, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	trackers, err := trackerclient.NewTrackers(cfg.TrackerSet(), upstream, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	scope := tally.NewTestScope("", nil)
	srv := NewServer(ServerDeps{
		Store:      store,
		Engine:     engine,
		Trackers:   trackers,
		Origins:    origins,
		BuildIndex: buildindexclient.New(cfg.BuildIndex, upstream),
	}, cfg, zap.NewNop(), scope)
	hs := httptest.NewServer(srv.Handler(nil))
	t.Cleanup(hs.Close) // before the engine closes: requests may be reading from it
	// The timeout is a hang guard (a fetch with no peers waits for them), not an
	// assertion on speed.
	hc := &http.Client{Transport: &http.Transport{}, Timeout: testTimeout}
	t.Cleanup(hc.CloseIdleConnections)
	return &agent{url: hs.URL, hc: hc, store: store, cfg: cfg, engine: engine, scope: scope}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (a *agent) do(t *testing.T, method, path string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

// ociError decodes an error envelope and returns its first entry.
func ociError(t *testing.T, r response) oci.EnvelopeError {
	t.Helper()
	var env oci.Envelope
	if err := json.Unmarshal(r.body, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("not an error envelope (%d): %q", r.status, r.body)
	}
	return env.Errors[0]
}

// testManifest is a Docker image manifest whose one layer is named by layer.
func testManifest(layer string) []byte {
	return []byte(`{"schemaVersion":2,"mediaType":"` + oci.MediaTypeDockerManifest + `",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"` + digest.FromString("{}").String() + `"},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":5,"digest":"` + digest.FromString(layer).String() + `"}]}`)
}

func randomBlob(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 11))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestSmallBlobFromOrigin: a blob under direct_below comes over HTTP from the origin,
// is served whole, and is then answered from the cache without any upstream.
func TestSmallBlobFromOrigin(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgent(t, c, "127.0.0.70")
	data := randomBlob(10_000, 1)
	d := c.add(data)
	path := "/v2/library/busybox/blobs/" + d.String()

	r := a.do(t, http.MethodGet, path)
	if r.status != http.StatusOK || !bytes.Equal(r.body, data) {
		t.Fatalf("GET: %d, %d bytes", r.status, len(r.body))
	}
	if r.header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("Docker-Content-Digest %q", r.header.Get("Docker-Content-Digest"))
	}
	if n := c.count("origin GET blob"); n != 1 {
		t.Fatalf("origin served %d GETs, want 1", n)
	}
	if size, err := a.store.Stat(d); err != nil || size != int64(len(data)) {
		t.Fatalf("not cached: %d, %v", size, err)
	}

	r = a.do(t, http.MethodGet, path)
	if r.status != http.StatusOK || !bytes.Equal(r.body, data) {
		t.Fatalf("second GET: %d, %d bytes", r.status, len(r.body))
	}
	r = a.do(t, http.MethodHead, path)
	if r.status != http.StatusOK || r.header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD: %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
	if o, m := c.count("origin GET blob"), c.count("tracker metainfo"); o != 1 || m != 1 {
		t.Errorf("after cached reads: origin GETs %d, tracker metainfo %d; want 1 and 1", o, m)
	}
	if n := c.count("tracker announce"); n != 0 {
		t.Errorf("%d announces for a blob fetched directly", n)
	}
}

// TestCachedBlobRange: a blob already in the store is served, Range included, with no
// upstream asked.
func TestCachedBlobRange(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgent(t, c, "127.0.0.71")
	data := randomBlob(100_000, 2)
	d := digest.FromBytes(data)
	if _, err := a.store.Ingest(d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	path := "/v2/library/busybox/blobs/" + d.String()

	r := a.do(t, http.MethodGet, path, "Range", "bytes=65530-65549")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, data[65530:65550]) {
		t.Fatalf("ranged GET: %d %q", r.status, r.body)
	}
	if cr := r.header.Get("Content-Range"); cr != fmt.Sprintf("bytes 65530-65549/%d", len(data)) {
		t.Errorf("Content-Range %q", cr)
	}
	r = a.do(t, http.MethodGet, path, "Range", "bytes=-5")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, data[len(data)-5:]) {
		t.Errorf("suffix range: %d %q", r.status, r.body)
	}
	r = a.do(t, http.MethodGet, path, "Range", fmt.Sprintf("bytes=%d-", len(data)))
	if r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %d", r.status)
	}
	r = a.do(t, http.MethodGet, path)
	if r.status != http.StatusOK || !bytes.Equal(r.body, data) || r.header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("GET: %d, %d bytes, Accept-Ranges %q", r.status, len(r.body), r.header.Get("Accept-Ranges"))
	}
	for _, what := range []string{"tracker metainfo", "tracker announce", "origin GET blob", "origin HEAD blob"} {
		if n := c.count(what); n != 0 {
			t.Errorf("%s: %d requests for a cached blob", what, n)
		}
	}
}

// TestManifestByTag: a tag resolves through build-index, on every request, and the
// manifest comes from the origin with its media type and digest.
func TestManifestByTag(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgent(t, c, "127.0.0.72")
	m1, m2 := testManifest("one"), testManifest("two")
	d1, d2 := c.add(m1), c.add(m2)
	c.tag("library/busybox", "latest", d1)

	check := func(method string, want []byte, d digest.Digest) {
		t.Helper()
		r := a.do(t, method, "/v2/library/busybox/manifests/latest")
		if r.status != http.StatusOK {
			t.Fatalf("%s manifest: %d %s", method, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != oci.MediaTypeDockerManifest {
			t.Errorf("%s manifest: Content-Type %q", method, ct)
		}
		if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
			t.Errorf("%s manifest: Docker-Content-Digest %q, want %s", method, got, d)
		}
		if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
			t.Errorf("%s manifest: Content-Length %q, want %d", method, cl, len(want))
		}
		if method == http.MethodGet && !bytes.Equal(r.body, want) {
			t.Errorf("GET manifest: %q", r.body)
		}
	}
	check(http.MethodGet, m1, d1)
	check(http.MethodHead, m1, d1)
	if n := c.count("origin GET blob"); n != 1 {
		t.Errorf("origin served %d GETs, want 1 (the manifest is cached)", n)
	}

	// Tags are mutable: the next request sees the new target.
	c.tag("library/busybox", "latest", d2)
	check(http.MethodGet, m2, d2)
	if n := c.count("buildindex tag"); n != 3 {
		t.Errorf("build-index asked %d times, want once per request (3)", n)
	}

	// By digest, no build-index.
	r := a.do(t, http.MethodGet, "/v2/library/busybox/manifests/"+d1.String())
	if r.status != http.StatusOK || !bytes.Equal(r.body, m1) {
		t.Errorf("manifest by digest: %d %q", r.status, r.body)
	}
	if n := c.count("buildindex tag"); n != 3 {
		t.Errorf("build-index asked for a manifest by digest")
	}

	r = a.do(t, http.MethodGet, "/v2/library/busybox/manifests/missing")
	if r.status != http.StatusNotFound || ociError(t, r).Code != oci.CodeManifestUnknown.Name {
		t.Errorf("unknown tag: %d %s", r.status, r.body)
	}
}

// TestMissingBlob: a blob no origin holds is a 404 BLOB_UNKNOWN, after one question to
// the tracker: containerd falls back to its next mirror at once.
func TestMissingBlob(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgent(t, c, "127.0.0.73")
	d := digest.FromString("nobody has this")
	path := "/v2/library/busybox/blobs/" + d.String()

	r := a.do(t, http.MethodGet, path)
	if r.status != http.StatusNotFound {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	if e := ociError(t, r); e.Code != oci.CodeBlobUnknown.Name {
		t.Errorf("GET: code %s", e.Code)
	}
	if r := a.do(t, http.MethodHead, path); r.status != http.StatusNotFound {
		t.Errorf("HEAD: %d", r.status)
	}
	if n := c.count("tracker metainfo"); n != 2 {
		t.Errorf("tracker asked %d times for two requests", n)
	}
	if n := c.count("origin GET blob") + c.count("tracker announce"); n != 0 {
		t.Errorf("%d origin GETs or announces for a blob the tracker does not know", n)
	}
	if _, err := a.store.Info(d); err == nil {
		t.Error("metainfo of a missing blob cached")
	}
}

// TestSmallBlobFallsThroughOrigins: a small blob is fetched from whichever origin has
// it, past origins that fail or miss, whatever their placement order.
func TestSmallBlobFallsThroughOrigins(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	var down, empty atomic.Int64
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		down.Add(1)
		http.Error(w, "disk on fire", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	missing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		empty.Add(1)
		notFound(w, originclient.CodeNotFound)
	}))
	t.Cleanup(missing.Close)
	a := newAgent(t, c, "127.0.0.76", failing.URL, missing.URL)
	members := a.cfg.Origins.Static
	served := 0
	for seed := uint64(100); served < 3; seed++ {
		data := randomBlob(1000, seed)
		d := digest.FromBytes(data)
		if hashring.Owners(d.String(), members, 0)[2] != c.origin.URL {
			continue // want blobs the holder is the last choice for
		}
		c.add(data)
		if r := a.do(t, http.MethodGet, "/v2/x/blobs/"+d.String()); r.status != http.StatusOK || !bytes.Equal(r.body, data) {
			t.Fatalf("GET %s: %d %s", d, r.status, r.body)
		}
		served++
	}
	if n := c.count("origin GET blob"); n != 3 {
		t.Fatalf("holder served %d GETs, want 3", n)
	}
	// The failing origin is reported on each failure and after two is tried last.
	if down.Load() != 2 || empty.Load() != 3 {
		t.Errorf("failing origin asked %d times (want 2), empty one %d (want 3)", down.Load(), empty.Load())
	}
}

// TestBlobGoneFromOrigin: the tracker knows a small blob but the agent's origin
// answers 404; that is BLOB_UNKNOWN too, not a server error, and nothing is cached.
func TestBlobGoneFromOrigin(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgent(t, c, "127.0.0.74")
	data := []byte("evicted layer")
	d := c.add(data)
	// Cache the metainfo while the origin has the blob, then take it away.
	if r := a.do(t, http.MethodHead, "/v2/x/blobs/"+d.String()); r.status != http.StatusOK {
		t.Fatalf("HEAD: %d", r.status)
	}
	c.mu.Lock()
	delete(c.blobs, d)
	c.mu.Unlock()

	r := a.do(t, http.MethodGet, "/v2/x/blobs/"+d.String())
	if r.status != http.StatusNotFound || ociError(t, r).Code != oci.CodeBlobUnknown.Name {
		t.Errorf("GET: %d %s", r.status, r.body)
	}
	if _, err := a.store.Stat(d); err == nil {
		t.Error("blob committed without its bytes")
	}
}

// TestWritesRefused: every write is 405 UNSUPPORTED and names the proxy to push to.
func TestWritesRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgent(t, c, "127.0.0.75")
	d := digest.FromString("x")
	for _, w := range []struct{ method, path string }{
		{http.MethodPost, "/v2/x/blobs/uploads/"},
		{http.MethodPost, "/v2/library/busybox/blobs/uploads/?digest=" + d.String()},
		{http.MethodPatch, "/v2/x/blobs/uploads/abc"},
		{http.MethodPut, "/v2/x/blobs/uploads/abc?digest=" + d.String()},
		{http.MethodPut, "/v2/x/manifests/latest"},
		{http.MethodDelete, "/v2/x/blobs/" + d.String()},
	} {
		r := a.do(t, w.method, w.path)
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s", w.method, w.path, r.status, r.body)
			continue
		}
		e := ociError(t, r)
		if e.Code != oci.CodeUnsupported.Name || !strings.Contains(e.Message+" "+e.Detail, a.cfg.Proxy) {
			t.Errorf("%s %s: %+v, want UNSUPPORTED naming %s", w.method, w.path, e, a.cfg.Proxy)
		}
	}
	if r := a.do(t, http.MethodGet, "/v2/"); r.status != http.StatusOK ||
		r.header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/: %d", r.status)
	}
	if r := a.do(t, http.MethodGet, "/health"); r.status != http.StatusOK {
		t.Errorf("GET /health: %d", r.status)
	}
	if n := c.count("origin GET blob") + c.count("tracker metainfo"); n != 0 {
		t.Errorf("%d upstream requests for refused writes", n)
	}
}

// TestLargeBlobThroughSwarm: a blob of direct_below or more comes through the swarm,
// from a seeder the tracker hands out as an origin, but for its first piece, which
// one ranged GET from the origin serves.
func TestLargeBlobThroughSwarm(t *testing.T) {
	t.Parallel()
	testLargeBlobThroughSwarm(t, false)
}

// TestLargeBlobThroughSwarmOriginHTTPDown: when the origin's HTTP GETs fail, the agent
// fetches every piece, the first too, from the origin over BitTorrent.
func TestLargeBlobThroughSwarmOriginHTTPDown(t *testing.T) {
	t.Parallel()
	testLargeBlobThroughSwarm(t, true)
}

// TestLargeBlobRangeFirst: a cold blob's first request is a range past the first
// piece: the head fetched ahead for a read from 0 is dropped, the range comes right.
func TestLargeBlobRangeFirst(t *testing.T) {
	t.Parallel()
	_, a, data, d := swarmWithSeeder(t, false, "127.0.0.71", "127.0.0.72")
	r := a.do(t, http.MethodGet, "/v2/library/big/blobs/"+d.String(), "Range", "bytes=1048570-1048589")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, data[1048570:1048590]) {
		t.Fatalf("ranged GET: %d %q", r.status, r.body)
	}
	// The head fetched ahead, never read, must be closed: goleak (TestMain) checks.
}

// waitBlobCompleted waits until the agent's engine has completed n blobs and
// returns its stats then. It bounds the wait so a broken pull fails the test
// instead of hanging it; it asserts nothing about time.
func waitBlobCompleted(t *testing.T, a *agent, n int64) p2p.Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := a.engine.Stats()
		if st.BlobsCompleted >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d blobs completed after 30s, want %d: %+v", st.BlobsCompleted, n, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLargeBlobThroughSwarm(t *testing.T, originHTTPDown bool) {
	seederIP, agentIP := "127.0.0.77", "127.0.0.78"
	if originHTTPDown {
		seederIP, agentIP = "127.0.0.75", "127.0.0.79"
	}
	c, a, data, d := swarmWithSeeder(t, originHTTPDown, seederIP, agentIP)
	pieceLen := metainfo.PieceLength(int64(len(data)))
	pieces := int((int64(len(data)) + pieceLen - 1) / pieceLen)
	path := "/v2/library/big/blobs/" + d.String()

	// A stat needs only the metainfo.
	r := a.do(t, http.MethodHead, path)
	if r.status != http.StatusOK || r.header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD: %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
	r = a.do(t, http.MethodGet, path)
	if r.status != http.StatusOK || !bytes.Equal(r.body, data) {
		t.Fatalf("GET: %d, %d bytes, equal %v", r.status, len(r.body), bytes.Equal(r.body, data))
	}
	// The client's first piece came from the head fetch; the cache's copy of it may
	// still be on its way, so the counts are read once the blob is complete.
	st := waitBlobCompleted(t, a, 1)
	n, heads := c.count("origin GET blob"), c.count(fmt.Sprintf("origin GET blob bytes=0-%d", pieceLen-1))
	if originHTTPDown {
		// The head and the pulls failed: everything came from the origin over BitTorrent.
		if st.BytesFromOrigins != int64(len(data)) || st.BytesPulled != 0 {
			t.Errorf("%d bytes over BitTorrent and %d pulled over HTTP, want %d and 0", st.BytesFromOrigins, st.BytesPulled, len(data))
		}
	} else {
		// The first piece for the client, then each piece pulled once into the cache.
		if n != 1+pieces || heads != 2 {
			t.Errorf("%d GETs of a large blob went to the origin over HTTP, %d of them for the first piece; want %d and 2", n, heads, 1+pieces)
		}
		if st.BytesPulled != int64(len(data)) || st.BytesFromOrigins != 0 {
			t.Errorf("%d bytes pulled over HTTP and %d over BitTorrent, want %d and 0", st.BytesPulled, st.BytesFromOrigins, len(data))
		}
	}
	// The blob may still lack its first piece from the swarm: then this range comes
	// from the origin too.
	r = a.do(t, http.MethodGet, path, "Range", "bytes=1048570-1048589")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, data[1048570:1048590]) {
		t.Errorf("ranged GET: %d %q", r.status, r.body)
	}
	if n := c.count("tracker announce"); n == 0 {
		t.Error("no announce")
	}
	if n := c.count("tracker metainfo"); n != 1 {
		t.Errorf("tracker asked for metainfo %d times, want 1 (then cached)", n)
	}

	// Evicted, then pulled again at once: a fresh torrent fetches it (Kraken stalls
	// here on the stale torrent). The engine refuses while the last reader closes.
	for {
		err := a.engine.Evict(d, func() error { return a.store.Remove(d) })
		if err == nil {
			break
		}
		if !errors.Is(err, p2p.ErrBusy) {
			t.Fatalf("evict: %v", err)
		}
		runtime.Gosched()
	}
	if _, err := a.store.Stat(d); err == nil {
		t.Fatal("blob still stored after eviction")
	}
	r = a.do(t, http.MethodGet, path)
	if r.status != http.StatusOK || !bytes.Equal(r.body, data) {
		t.Fatalf("GET after eviction: %d, %d bytes", r.status, len(r.body))
	}
}

// swarmWithSeeder starts a cluster holding a blob of several pieces, a seeder of it
// that the tracker hands out as an origin, and an agent (each on its own IP: peers
// are told apart, and banned, by IP).
func swarmWithSeeder(t *testing.T, originHTTPDown bool, seederIP, agentIP string) (*cluster, *agent, []byte, digest.Digest) {
	c := newCluster(t)
	c.originDown = originHTTPDown
	data := randomBlob(2<<20+12345, 3)
	d := c.add(data)
	seeder, seederStore := newEngine(t, seederIP)
	res, err := seederStore.Ingest(d, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := seeder.Seed(d, res.InfoBytes); err != nil {
		t.Fatal(err)
	}
	ip, port := seeder.Addr()
	c.mu.Lock()
	c.seeders = []p2p.Peer{{PeerID: seeder.PeerID(), IP: ip, Port: port, Origin: true, Complete: true}}
	c.mu.Unlock()
	a := newAgent(t, c, agentIP)
	if int64(len(data)) < a.cfg.DirectBelow {
		t.Fatalf("blob of %d bytes is under direct_below %d", len(data), a.cfg.DirectBelow)
	}
	return c, a, data, d
}

// TestPullWithTrackerDown: with no tracker answering, a blob no agent holds yet is
// still pulled whole, its metainfo asked of the origin (the tracker used to be a
// single point of failure: 500).
func TestPullWithTrackerDown(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := newAgent(t, c, "127.0.0.80")
	b := make([]byte, 3<<20+12345)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	d := c.add(b)
	c.tracker.Close()
	r := a.do(t, http.MethodGet, "/v2/library/busybox/blobs/"+d.String())
	if r.status != http.StatusOK || digest.FromBytes(r.body) != d {
		t.Fatalf("GET with the tracker down: %d, %d bytes (digest %s), want %s", r.status, len(r.body), digest.FromBytes(r.body), d)
	}
	if n := c.count("origin metainfo"); n != 1 {
		t.Errorf("origin asked for metainfo %d times, want 1", n)
	}
	if n := a.counter("metainfo_from_origins", nil); n != 1 {
		t.Errorf("metainfo_from_origins = %d, want 1", n)
	}
}
