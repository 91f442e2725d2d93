package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	registrybackend "github.com/shoal-p2p/shoal/lib/backend/registry"
	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/preheat"
	"github.com/shoal-p2p/shoal/lib/preheatauth"
	"github.com/shoal-p2p/shoal/lib/registry"
	"github.com/shoal-p2p/shoal/lib/warmfeed"
)

// testImage is a two-platform OCI index pushed into an upstream: 2 manifests, 2
// configs, 3 layers of which one is shared.
type testImage struct {
	index digest.Digest
	blobs []digest.Digest // every blob and manifest, the index included
}

func putBlob(t *testing.T, mem *registry.Memory, body []byte) digest.Digest {
	t.Helper()
	ctx := context.Background()
	id, err := mem.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Append(ctx, id, 0, strings.NewReader(string(body))); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(body)
	if err := mem.Commit(ctx, id, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func pushIndex(t *testing.T, mem *registry.Memory, repo, tag string) testImage {
	t.Helper()
	var img testImage
	desc := func(mt string, body []byte) map[string]any {
		d := putBlob(t, mem, body)
		img.blobs = append(img.blobs, d)
		return map[string]any{"mediaType": mt, "digest": d.String(), "size": len(body)}
	}
	shared := desc("application/vnd.oci.image.layer.v1.tar+gzip", []byte("shared layer"))
	var manifests []any
	for _, arch := range []string{"amd64", "arm64"} {
		cfg := desc("application/vnd.oci.image.config.v1+json", []byte(`{"architecture":"`+arch+`","os":"linux"}`))
		own := desc("application/vnd.oci.image.layer.v1.tar+gzip", []byte("layer of "+arch))
		m := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": cfg, "layers": []any{shared, own}})
		md := desc("application/vnd.oci.image.manifest.v1+json", m)
		md["platform"] = map[string]string{"os": "linux", "architecture": arch}
		manifests = append(manifests, md)
	}
	idx := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": manifests})
	img.index = putBlob(t, mem, idx)
	img.blobs = append(img.blobs, img.index)
	if err := mem.Put(context.Background(), repo, tag, img.index); err != nil {
		t.Fatal(err)
	}
	return img
}

// newUpstream serves mem's registry API, for requests with Authorization Bearer good
// (a dragonfly job's header) or Basic shoal:secret (a configured kraken upstream).
func newUpstream(t *testing.T, mem *registry.Memory) *httptest.Server {
	t.Helper()
	r := chi.NewRouter()
	registry.New(registry.Options{Blobs: mem, Tags: mem}).Routes(r)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("shoal:secret"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if a := req.Header.Get("Authorization"); a != "Bearer good" && a != basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type preheatProxy struct {
	url   string
	store *blobstore.Store
}

// newPreheatProxy is the proxy with preheat on over one stand-in origin.
func newPreheatProxy(t *testing.T, cfg PreheatConfig, trackers ...string) *preheatProxy {
	t.Helper()
	store, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(standInOrigin(store))
	t.Cleanup(origin.Close)
	ocfg := originset.DefaultConfig()
	ocfg.Static = []string{origin.URL}
	ocfg.Replicas = 1
	set, err := originset.New(ocfg, origin.Client(), zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Enabled = true
	if cfg.Trackers.Replicas == 0 {
		cfg.Trackers = DefaultConfig().Preheat.Trackers
		cfg.Trackers.Static = trackers
	}
	p, err := NewPreheat(context.Background(), cfg, set, time.Second, nil, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(registry.DefaultLimits(), set, buildindexclient.New("http://buildindex.invalid", nil),
		zap.NewNop(), tally.NoopScope).WithPreheat(p)
	ps := httptest.NewServer(srv.Handler(nil))
	t.Cleanup(ps.Close)
	t.Cleanup(p.Close) // runs first: jobs end before the servers close
	return &preheatProxy{url: ps.URL, store: store}
}

func post(t *testing.T, u, contentType string, h http.Header, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func getJSON(t *testing.T, u string, h http.Header, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
	}
	return resp.StatusCode
}

type dfJob struct {
	ID     int64  `json:"id"`
	State  string `json:"state"`
	Result struct {
		JobStates []struct {
			Error   string `json:"error"`
			Results []struct {
				SuccessTasks []map[string]string `json:"success_tasks"`
				FailureTasks []map[string]string `json:"failure_tasks"`
			} `json:"results"`
		} `json:"job_states"`
	} `json:"result"`
}

// waitDragonfly polls the job until it is no longer PENDING; the deadline only guards
// against a hang.
func waitDragonfly(t *testing.T, base string, h http.Header, id int64) dfJob {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var j dfJob
		if code := getJSON(t, fmt.Sprintf("%s/oapi/v1/jobs/%d", base, id), h, &j); code != http.StatusOK {
			t.Fatalf("GET job %d: %d", id, code)
		}
		if j.State != "PENDING" {
			return j
		}
	}
	t.Fatalf("job %d still PENDING", id)
	return dfJob{}
}

// waitJob polls /preheat/jobs/{id} until it finishes.
func waitJob(t *testing.T, base string, h http.Header, id int64) preheat.Snapshot {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var s preheat.Snapshot
		if code := getJSON(t, fmt.Sprintf("%s/preheat/jobs/%d", base, id), h, &s); code != http.StatusOK {
			t.Fatalf("GET job %d: %d", id, code)
		}
		if s.State.Finished() {
			return s
		}
	}
	t.Fatalf("job %d never finished", id)
	return preheat.Snapshot{}
}

func bearerAuth(t *testing.T) preheatauth.Config {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte("harbor-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return preheatauth.Config{Mode: preheatauth.ModeBearer, SecretFile: f}
}

func dragonflyBody(manifestURL, token string) string {
	return dragonflyScoped(manifestURL, token, "all_seed_peers")
}

func dragonflyScoped(manifestURL, token, scope string) string {
	return string(mustJSON(map[string]any{"type": "preheat", "args": map[string]any{
		"type": "image", "url": manifestURL, "tag": "", "filtered_query_params": "",
		"headers": map[string]string{"Authorization": "Bearer " + token}, "scope": scope,
	}, "scheduler_cluster_ids": nil}))
}

func TestDragonflyPreheat(t *testing.T) {
	t.Parallel()
	mem := registry.NewMemory()
	img := pushIndex(t, mem, "library/app", "v1")
	up := newUpstream(t, mem)
	p := newPreheatProxy(t, PreheatConfig{Auth: bearerAuth(t)})
	auth := http.Header{"Authorization": {"Bearer harbor-token"}}

	// Wrong preheat credentials: 401 with the challenge, and no job.
	code, h, body := post(t, p.url+"/oapi/v1/jobs", "application/json", http.Header{"Authorization": {"Bearer nope"}},
		dragonflyBody(up.URL+"/v2/library/app/manifests/v1", "good"))
	if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" || !strings.Contains(body, `"UNAUTHORIZED"`) {
		t.Fatalf("wrong credentials: %d %q %s", code, h.Get("WWW-Authenticate"), body)
	}
	var list []preheat.Summary
	if getJSON(t, p.url+"/preheat/jobs", auth, &list); len(list) != 0 {
		t.Fatalf("a refused request started %d jobs", len(list))
	}

	// Bad JSON: 400.
	if code, _, body := post(t, p.url+"/oapi/v1/jobs", "application/json", auth, "{"); code != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d %s", code, body)
	}

	// The right header: PENDING at once, then SUCCESS with every blob on the origin.
	code, _, body = post(t, p.url+"/oapi/v1/jobs", "application/json", auth,
		dragonflyBody(up.URL+"/v2/library/app/manifests/v1", "good"))
	var created dfJob
	if err := json.Unmarshal([]byte(body), &created); code != http.StatusOK || err != nil || created.ID <= 0 || created.State != "PENDING" {
		t.Fatalf("create: %d %s", code, body)
	}
	j := waitDragonfly(t, p.url, auth, created.ID)
	if j.State != "SUCCESS" || len(j.Result.JobStates) != 1 || len(j.Result.JobStates[0].Results[0].SuccessTasks) != 1 {
		t.Fatalf("job: %+v", j)
	}
	for _, d := range img.blobs {
		if _, err := p.store.Stat(d); err != nil {
			t.Errorf("blob %s not on the origin: %v", d, err)
		}
	}
	if len(img.blobs) != 8 {
		t.Fatalf("image has %d blobs, want 8", len(img.blobs))
	}

	// all_peers without preheat.trackers: FAILURE naming the key.
	_, _, body = post(t, p.url+"/oapi/v1/jobs", "application/json", auth,
		dragonflyScoped(up.URL+"/v2/library/app/manifests/v1", "good", "all_peers"))
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	j = waitDragonfly(t, p.url, auth, created.ID)
	if j.State != "FAILURE" || !strings.Contains(j.Result.JobStates[0].Error, "preheat.trackers") {
		t.Fatalf("all_peers: %+v", j)
	}

	// A tag the upstream lacks: FAILURE naming it.
	_, _, body = post(t, p.url+"/oapi/v1/jobs", "application/json", auth,
		dragonflyBody(up.URL+"/v2/library/app/manifests/missing", "good"))
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	j = waitDragonfly(t, p.url, auth, created.ID)
	if j.State != "FAILURE" || !strings.Contains(j.Result.JobStates[0].Error, "missing") {
		t.Fatalf("missing tag: %+v", j)
	}
}

// TestDragonflyAllowedRegistries: with preheat.allowed_registries set, a job for
// another registry is refused 400 naming the key, and starts nothing; a listed one
// (any case) runs.
func TestDragonflyAllowedRegistries(t *testing.T) {
	t.Parallel()
	mem := registry.NewMemory()
	pushIndex(t, mem, "library/app", "v1")
	up := newUpstream(t, mem)
	host := strings.TrimPrefix(up.URL, "http://")
	p := newPreheatProxy(t, PreheatConfig{Auth: bearerAuth(t), AllowedRegistries: []string{"harbor.example.com", strings.ToUpper(host)}})
	auth := http.Header{"Authorization": {"Bearer harbor-token"}}
	code, _, body := post(t, p.url+"/oapi/v1/jobs", "application/json", auth,
		dragonflyBody("http://internal.example.com:8080/v2/library/app/manifests/v1", "good"))
	if code != http.StatusBadRequest || !strings.Contains(body, "preheat.allowed_registries") {
		t.Fatalf("unlisted registry: %d %s", code, body)
	}
	var list []preheat.Summary
	if getJSON(t, p.url+"/preheat/jobs", auth, &list); len(list) != 0 {
		t.Fatalf("a refused job was started: %+v", list)
	}
	_, _, body = post(t, p.url+"/oapi/v1/jobs", "application/json", auth,
		dragonflyBody(up.URL+"/v2/library/app/manifests/v1", "good"))
	var created dfJob
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	if j := waitDragonfly(t, p.url, auth, created.ID); j.State != "SUCCESS" {
		t.Fatalf("listed registry: %+v", j)
	}
}

// TestDragonflyPreheatAllPeers: with a tracker's warm feed and two agents following
// it, all_peers warms the origin and then both agents (each fetching from the origin),
// and the job shows one success task per host.
func TestDragonflyPreheatAllPeers(t *testing.T) {
	t.Parallel()
	mem := registry.NewMemory()
	img := pushIndex(t, mem, "library/app", "v1")
	up := newUpstream(t, mem)
	board := chi.NewRouter()
	warmfeed.Routes(board, warmfeed.NewBoard("e1", 0), time.Now)
	tracker := httptest.NewServer(board)
	t.Cleanup(tracker.Close)
	p := newPreheatProxy(t, PreheatConfig{Auth: bearerAuth(t)}, tracker.URL)
	auth := http.Header{"Authorization": {"Bearer harbor-token"}}

	// Two agents whose warm reads the blob back from the origin's store.
	type agent struct {
		mu   sync.Mutex
		held map[digest.Digest]bool
	}
	agents := map[string]*agent{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, id := range []string{"10.0.0.1:16001", "10.0.0.2:16001"} {
		a := &agent{held: map[digest.Digest]bool{}}
		agents[id] = a
		f := warmfeed.NewFollower(warmfeed.FollowerConfig{PollInterval: 100 * time.Millisecond, MaxBlobs: 2},
			warmfeed.Agent{ID: id, Name: "node"}, func() []warmfeed.Tracker {
				return []warmfeed.Tracker{warmfeed.NewClient(tracker.URL, nil)}
			}, func(_ context.Context, _ string, d digest.Digest) error {
				if _, err := p.store.Stat(d); err != nil {
					return fmt.Errorf("not on the origin: %w", err)
				}
				a.mu.Lock()
				defer a.mu.Unlock()
				a.held[d] = true
				return nil
			}, zap.NewNop(), tally.NoopScope)
		wg.Go(func() { _ = f.Run(ctx) })
	}
	// Both agents have polled once they are listed live.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		as, err := warmfeed.NewClient(tracker.URL, nil).Agents(context.Background())
		if err == nil && len(as) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents never live: %v %v", as, err)
		}
	}

	_, _, body := post(t, p.url+"/oapi/v1/jobs", "application/json", auth,
		dragonflyScoped(up.URL+"/v2/library/app/manifests/v1", "good", "all_peers"))
	var created dfJob
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	j := waitDragonfly(t, p.url, auth, created.ID)
	res := j.Result.JobStates[0].Results[0]
	if j.State != "SUCCESS" || len(res.SuccessTasks) != 3 || len(res.FailureTasks) != 0 {
		t.Fatalf("all_peers: %+v", j)
	}
	var ips []string
	for _, task := range res.SuccessTasks {
		ips = append(ips, task["ip"])
	}
	if slices.Sort(ips); !strings.Contains(strings.Join(ips, ","), "10.0.0.1,10.0.0.2") {
		t.Errorf("success tasks' IPs %v, want both agents'", ips)
	}
	for id, a := range agents {
		a.mu.Lock() // the job learnt of each warm over HTTP, which the race detector does not see
		defer a.mu.Unlock()
		for _, d := range img.blobs {
			if !a.held[d] {
				t.Errorf("agent %s lacks %s", id, d)
			}
		}
	}
}

// harborEvent is the body Harbor's kraken provider posts, byte for byte in shape.
func harborEvent(host, repo string, d digest.Digest) string {
	return `{"Events":[{"Id":"TI8a9AYwAcGg6TOcPa5J96sw9xAqeZj0","TimeStamp":"2026-12-04T03:38:53.297830075Z","Action":"push","Target":{"MediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"Digest":"` + d.String() + `","Repository":"` + repo + `","Url":"http://` + host + `/v2/` + repo + `/manifests/v1","Tag":"v1"},` +
		`"Request":null,"Actor":null}]}`
}

func TestKrakenPreheat(t *testing.T) {
	t.Parallel()
	mem := registry.NewMemory()
	img := pushIndex(t, mem, "library/app", "v1")
	up := newUpstream(t, mem)
	upURL, _ := url.Parse(up.URL)
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newPreheatProxy(t, PreheatConfig{Upstreams: []PreheatUpstream{{
		Config: registrybackend.Config{URL: up.URL, Insecure: true, Username: "shoal", PasswordFile: pw},
	}}})

	jobs := func() []preheat.Summary {
		var list []preheat.Summary
		getJSON(t, p.url+"/preheat/jobs", nil, &list)
		return list
	}
	code, _, body := post(t, p.url+"/registry/notifications", "application/json", nil, harborEvent(upURL.Host, "library/app", img.index))
	if code != http.StatusOK || strings.TrimSpace(body) != "{}" {
		t.Fatalf("notification: %d %s", code, body)
	}
	list := jobs()
	if len(list) != 1 || list[0].Source != preheat.SourceKraken {
		t.Fatalf("jobs: %+v", list)
	}
	if s := waitJob(t, p.url, nil, list[0].ID); s.State != preheat.StateSuccess || len(s.Blobs) != 8 {
		t.Fatalf("job: %+v", s)
	}
	for _, d := range img.blobs {
		if _, err := p.store.Stat(d); err != nil {
			t.Errorf("blob %s not on the origin: %v", d, err)
		}
	}

	// A host with no upstream: 200 all the same, and a FAILURE naming the host.
	code, _, _ = post(t, p.url+"/registry/notifications", "application/json", nil,
		harborEvent("elsewhere.example.com", "library/other", digest.FromString("other")))
	if code != http.StatusOK {
		t.Fatalf("unknown host: %d", code)
	}
	list = jobs()
	if len(list) != 2 {
		t.Fatalf("jobs: %+v", list)
	}
	var last preheat.Summary
	for _, s := range list {
		if s.Target.Registry == "elsewhere.example.com" {
			last = s
		}
	}
	if s := waitJob(t, p.url, nil, last.ID); s.State != preheat.StateFailure ||
		!strings.Contains(s.Error, "no upstream configured for elsewhere.example.com") {
		t.Fatalf("unknown host job: %+v", s.Summary)
	}

	// Bad JSON: 400, no job.
	if code, _, body := post(t, p.url+"/registry/notifications", "application/json", nil, `{"Events":[`); code != http.StatusBadRequest ||
		!strings.Contains(body, "INVALID") {
		t.Fatalf("bad JSON: %d %s", code, body)
	}
	if n := len(jobs()); n != 2 {
		t.Fatalf("bad JSON started a job: %d jobs", n)
	}
}

func TestPreheatConfigErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for key, mut := range map[string]func(*Config){
		"preheat.auth.mode":             func(c *Config) { c.Preheat.Auth.Mode = "token" },
		"preheat.runner.max_jobs":       func(c *Config) { c.Preheat.Runner.MaxJobs = -1 },
		"preheat.upstreams[0]":          func(c *Config) { c.Preheat.Upstreams = []PreheatUpstream{{}} },
		"preheat.trackers: static[0]":   func(c *Config) { c.Preheat.Trackers.Static = []string{"tracker:15300"} },
		"preheat.allowed_registries[0]": func(c *Config) { c.Preheat.AllowedRegistries = []string{"https://harbor"} },
		"preheat.upstreams[1].host": func(c *Config) {
			c.Preheat.Upstreams = []PreheatUpstream{{Config: registrybackend.Config{URL: "https://a"}}, {Host: "a", Config: registrybackend.Config{URL: "https://b"}}}
		},
		"preheat.upstreams[0].host: \"a/": func(c *Config) {
			c.Preheat.Upstreams = []PreheatUpstream{{Host: "a/b", Config: registrybackend.Config{URL: "https://a"}}}
		},
	} {
		cfg, err := loadConfig([]string{"--config", "../config/proxy.yaml"})
		if err != nil {
			t.Fatal(err)
		}
		mut(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v, want an error naming it", key, err)
		}
	}
}
