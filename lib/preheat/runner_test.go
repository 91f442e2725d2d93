package preheat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const repo = "library/app"

// twoPlatforms is a two-platform OCI index tagged latest: 10 entries (index, two
// manifests, two configs, five layers, "base" shared).
func twoPlatforms() (*fakeContent, digest.Digest) {
	f := newFake()
	idx := f.index("index", v1.MediaTypeImageIndex,
		f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "base", "amd-app", "amd-data"),
		f.imageOn("arm", v1.MediaTypeImageManifest, arm64, "base", "arm-app", "arm-data"))
	c := contentOf(f)
	c.tag(repo, "latest", idx.Digest)
	return c, idx.Digest
}

func layer(name string) digest.Digest { return digest.FromString(name) }

type harness struct {
	r       *Runner
	jobs    *Registry
	cluster *fakeCluster
	logs    *observer.ObservedLogs
	scope   tally.TestScope
}

func newHarness(t *testing.T, cfg RunnerConfig, agents ...string) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	h := &harness{jobs: NewRegistry(0, 0), cluster: newCluster(), logs: logs, scope: tally.NewTestScope("", nil)}
	place := Placement{
		OwnersOf: func(digest.Digest) []string { return []string{"o1", "o2"} },
		Agents:   func(context.Context) ([]string, error) { return agents, nil },
	}
	r, err := NewRunner(cfg, h.jobs, h.cluster, h.cluster, place, zap.New(core), h.scope)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	return h
}

func (h *harness) submit(t *testing.T, c Content, ref string, scope Scope) int64 {
	t.Helper()
	id, err := h.r.Submit(Request{Contract: SourceDragonfly, Target: Target{Registry: "harbor.example.com",
		Repository: repo, Reference: ref}, Scope: scope, Content: c})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (h *harness) get(t *testing.T, id int64) Snapshot {
	t.Helper()
	s, err := h.jobs.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) counter(name string, tags map[string]string) int64 {
	for _, c := range h.scope.Snapshot().Counters() {
		if c.Name() == name && (tags == nil || fmt.Sprint(c.Tags()) == fmt.Sprint(tags)) {
			return c.Value()
		}
	}
	return 0
}

// checkLogs asserts every log line names its job.
func (h *harness) checkLogs(t *testing.T) {
	t.Helper()
	for _, e := range h.logs.All() {
		if _, ok := e.ContextMap()["job"]; !ok {
			t.Errorf("log line without job id: %q %v", e.Message, e.ContextMap())
		}
	}
}

// checkVerified asserts the cluster holds nothing but whole, verified blobs.
func (h *harness) checkVerified(t *testing.T) {
	t.Helper()
	for d, b := range h.cluster.stored() {
		if digest.FromBytes(b) != d {
			t.Errorf("the cluster serves %s with bytes of %s", d, digest.FromBytes(b))
		}
	}
}

func TestRunnerWarmsTwoPlatformIndex(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, RunnerConfig{})
		defer h.r.Close()
		c, root := twoPlatforms()
		id := h.submit(t, c, "latest", "")
		synctest.Wait()
		s := h.get(t, id)
		if s.State != StateSuccess || s.Digest != root || s.Scope != DefaultScope {
			t.Fatalf("job %+v", s.Summary)
		}
		if len(s.Blobs) != 10 || !slices.Equal(s.Platforms, []string{"linux/amd64", "linux/arm64/v8"}) {
			t.Fatalf("%d blobs, platforms %v", len(s.Blobs), s.Platforms)
		}
		stored := h.cluster.stored()
		var size int64
		for _, b := range s.Blobs {
			if _, ok := stored[b.Digest]; !ok {
				t.Errorf("%s %s not stored", b.Kind, b.Digest)
			}
			if b.HostsDone != 2 || b.BytesDone != 2*b.Size {
				t.Errorf("blob %+v", b)
			}
			size += b.Size
		}
		h.checkVerified(t)
		if s.BytesDone != s.BytesTotal || s.BytesTotal != 2*size {
			t.Errorf("bytes %d/%d, want %d", s.BytesDone, s.BytesTotal, 2*size)
		}
		if calls, _ := c.stats(); calls != 7 { // 2 configs + 5 layers; manifests come from the plan
			t.Errorf("%d Blob calls, want 7", calls)
		}
		if n := h.counter("jobs", map[string]string{"state": "SUCCESS"}); n != 1 {
			t.Errorf("jobs{SUCCESS} = %d", n)
		}
		if w, b := h.counter("blobs_warmed", nil), h.counter("bytes_warmed", nil); w != 10 || b != size {
			t.Errorf("blobs_warmed %d bytes_warmed %d, want 10 and %d", w, b, size)
		}
		h.checkLogs(t)
	})
}

func TestRunnerAlreadyWarm(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, RunnerConfig{}, "n1")
		defer h.r.Close()
		c, _ := twoPlatforms()
		first := h.submit(t, c, "latest", ScopeAllPeers)
		synctest.Wait()
		calls, _ := c.stats()
		puts := h.cluster.puts
		start := time.Now()
		second := h.submit(t, c, "latest", ScopeAllPeers)
		synctest.Wait()
		s := h.get(t, second)
		if h.get(t, first).State != StateSuccess || s.State != StateSuccess {
			t.Fatalf("states %s, %s", h.get(t, first).State, s.State)
		}
		if n, _ := c.stats(); n != calls || h.cluster.puts != puts || h.cluster.warms != 10 {
			t.Errorf("second job: Blob calls %d -> %d, puts %d -> %d, warms %d", calls, n, puts, h.cluster.puts, h.cluster.warms)
		}
		if !s.FinishedAt.Equal(start) {
			t.Errorf("second job took %s", s.FinishedAt.Sub(start))
		}
		if n := h.counter("blobs_skipped", nil); n != 10 {
			t.Errorf("blobs_skipped = %d, want 10", n)
		}
	})
}

// TestRunnerSourceFailsMidJob: the upstream cuts the third blob half way and is gone
// after it. The job fails naming exactly the blobs the cluster lacks.
func TestRunnerSourceFailsMidJob(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, RunnerConfig{MaxBlobsPerJob: 1})
		defer h.r.Close()
		c, _ := twoPlatforms()
		calls := 0
		c.hook = func(context.Context, string, digest.Digest) error {
			if calls++; calls > 3 {
				return errors.New("dial tcp harbor.example.com:443: connection refused")
			}
			return nil
		}
		c.body = func(d digest.Digest, b []byte) io.Reader {
			if calls == 3 {
				return io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotestErr{errors.New("connection reset by peer")})
			}
			return bytes.NewReader(b)
		}
		id := h.submit(t, c, "latest", ScopeSingleSeedPeer)
		synctest.Wait()
		s := h.get(t, id)
		if s.State != StateFailure {
			t.Fatalf("state %s", s.State)
		}
		stored := h.cluster.stored()
		var lacking []digest.Digest
		for _, b := range s.Blobs {
			if _, ok := stored[b.Digest]; !ok {
				lacking = append(lacking, b.Digest)
			}
		}
		if len(lacking) != 5 || !slices.Equal(lacking, s.Missing) { // 3 layers failed, 1 cut, ...
			t.Errorf("missing %v, the cluster lacks %v", s.Missing, lacking)
		}
		for _, d := range lacking {
			if !strings.Contains(s.Error, d.String()) {
				t.Errorf("error does not name %s: %s", d, s.Error)
			}
		}
		h.checkVerified(t)
		if n := h.counter("jobs", map[string]string{"state": "FAILURE"}); n != 1 {
			t.Errorf("jobs{FAILURE} = %d", n)
		}
	})
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestRunnerCorruptBlob(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, RunnerConfig{})
		defer h.r.Close()
		c, _ := twoPlatforms()
		bad := layer("arm-app")
		c.body = func(d digest.Digest, b []byte) io.Reader {
			if d == bad {
				b = bytes.ToUpper(b) // same length, other digest
			}
			return bytes.NewReader(b)
		}
		id := h.submit(t, c, "latest", "")
		synctest.Wait()
		s := h.get(t, id)
		if s.State != StateFailure || !slices.Equal(s.Missing, []digest.Digest{bad}) {
			t.Fatalf("state %s, missing %v", s.State, s.Missing)
		}
		if !strings.Contains(s.Error, bad.String()) || !strings.Contains(s.Error, "does not match its digest") {
			t.Errorf("error %q", s.Error)
		}
		stored := h.cluster.stored()
		if _, ok := stored[bad]; ok || len(stored) != 9 {
			t.Errorf("stored %d blobs, corrupt one held: %v", len(stored), ok)
		}
		h.checkVerified(t)
	})
}

func TestRunnerTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, RunnerConfig{JobTimeout: time.Minute})
		defer h.r.Close()
		c, _ := twoPlatforms()
		stuck := layer("amd-data")
		c.hook = func(ctx context.Context, _ string, d digest.Digest) error {
			if d == stuck {
				<-ctx.Done() // an upstream that never answers
				return ctx.Err()
			}
			return nil
		}
		id := h.submit(t, c, "latest", "")
		synctest.Wait()
		if s := h.get(t, id); s.State != StateRunning {
			t.Fatalf("before the timeout: %s", s.State)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		s := h.get(t, id)
		if s.State != StateFailure || !slices.Equal(s.Missing, []digest.Digest{stuck}) {
			t.Fatalf("state %s, missing %v", s.State, s.Missing)
		}
		if !strings.Contains(s.Error, "timed out after 1m0s") || !strings.Contains(s.Error, stuck.String()) {
			t.Errorf("error %q", s.Error)
		}
		if d := s.FinishedAt.Sub(*s.StartedAt); d != time.Minute {
			t.Errorf("ran %s, want 1m", d)
		}
	})
}

// TestRunnerBlobBound counts Blob calls in flight: never more than the bound.
func TestRunnerBlobBound(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, RunnerConfig{MaxBlobsPerJob: 3})
		defer h.r.Close()
		f := newFake()
		var layers []string
		for i := range 12 {
			layers = append(layers, fmt.Sprintf("layer-%d", i))
		}
		m := f.image("img", v1.MediaTypeImageManifest, layers...)
		c := contentOf(f)
		c.hook = func(context.Context, string, digest.Digest) error {
			time.Sleep(time.Second) // every worker piles up here
			return nil
		}
		id := h.submit(t, c, m.Digest.String(), "")
		time.Sleep(time.Hour)
		synctest.Wait()
		if s := h.get(t, id); s.State != StateSuccess {
			t.Fatalf("state %s: %s", s.State, s.Error)
		}
		if calls, peak := c.stats(); calls != 13 || peak != 3 {
			t.Errorf("%d Blob calls, at most %d at once; want 13 and 3", calls, peak)
		}
	})
}

// TestRunnerAllPeersWithoutAgents: all_peers with no live agent, or agents that cannot
// be listed, fails before anything is copied instead of claiming nodes were warmed.
func TestRunnerAllPeersWithoutAgents(t *testing.T) {
	t.Parallel()
	for name, agents := range map[string]func(context.Context) ([]string, error){
		"none live": func(context.Context) ([]string, error) { return nil, nil },
		"list fails": func(context.Context) ([]string, error) {
			return nil, errors.New("preheat.trackers is not set")
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, RunnerConfig{})
				h.r.place.Agents = agents
				defer h.r.Close()
				c, _ := twoPlatforms()
				id := h.submit(t, c, "latest", ScopeAllPeers)
				synctest.Wait()
				s := h.get(t, id)
				if s.State != StateFailure || !strings.Contains(s.Error, "agents") {
					t.Fatalf("state %s: %q", s.State, s.Error)
				}
				if h.cluster.puts != 0 {
					t.Errorf("%d puts before the job failed", h.cluster.puts)
				}
			})
		})
	}
}

func TestRunnerAllPeers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		agents := []string{"n1", "n2", "n3"}
		h := newHarness(t, RunnerConfig{}, agents...)
		defer h.r.Close()
		c, _ := twoPlatforms()
		id := h.submit(t, c, "latest", ScopeAllPeers)
		synctest.Wait()
		s := h.get(t, id)
		if s.State != StateSuccess {
			t.Fatalf("state %s: %s", s.State, s.Error)
		}
		for _, a := range agents {
			for _, b := range s.Blobs {
				if !h.cluster.agents[Pair{Host{HostAgent, a}, b.Digest}] {
					t.Errorf("agent %s lacks %s", a, b.Digest)
				}
			}
		}
		if h.cluster.warms != 3*10 || len(s.Hosts) != 5 {
			t.Errorf("%d warms, %d hosts; want 30 and 5", h.cluster.warms, len(s.Hosts))
		}
		for _, x := range s.Hosts {
			if !x.OK || x.BlobsDone != 10 {
				t.Errorf("host %+v", x)
			}
		}
		if n := h.counter("agent_blobs_warmed", nil); n != 30 {
			t.Errorf("agent_blobs_warmed = %d", n)
		}
	})
}

// TestRunnerJobBound: with two slots, a third job waits PENDING until one frees.
func TestRunnerJobBound(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, RunnerConfig{MaxJobs: 2})
		defer h.r.Close()
		gates := map[string]chan struct{}{"one": make(chan struct{}), "two": make(chan struct{})}
		var ids []int64
		for _, name := range []string{"one", "two", "three"} {
			f := newFake()
			m := f.image(name, v1.MediaTypeImageManifest, name+"-layer")
			c := contentOf(f)
			if g, ok := gates[name]; ok {
				c.hook = func(ctx context.Context, _ string, _ digest.Digest) error {
					select {
					case <-g:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			ids = append(ids, h.submit(t, c, m.Digest.String(), ""))
			synctest.Wait()
		}
		states := func() []State {
			var out []State
			for _, id := range ids {
				out = append(out, h.get(t, id).State)
			}
			return out
		}
		if got := states(); !slices.Equal(got, []State{StateRunning, StateRunning, StatePending}) {
			t.Fatalf("states %v", got)
		}
		close(gates["one"])
		synctest.Wait()
		if got := states(); !slices.Equal(got, []State{StateSuccess, StateRunning, StateSuccess}) {
			t.Fatalf("after one finished: %v", got)
		}
		close(gates["two"])
		synctest.Wait()
		if got := states(); !slices.Equal(got, []State{StateSuccess, StateSuccess, StateSuccess}) {
			t.Fatalf("at the end: %v", got)
		}
	})
}

func TestRunnerMissingContent(t *testing.T) {
	t.Parallel()
	f := newFake()
	gone := f.imageOn("gone", v1.MediaTypeImageManifest, arm64, "x")
	idx := f.index("index", v1.MediaTypeImageIndex, f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "y"), gone)
	for _, tc := range []struct {
		name, ref   string
		wantErr     string
		wantMissing []digest.Digest
	}{
		{"tag", "nope", "resolve " + repo + ":nope", nil},
		{"manifest", "latest", "manifests not found: " + gone.Digest.String(), []digest.Digest{gone.Digest}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, RunnerConfig{})
				defer h.r.Close()
				c := contentOf(f)
				delete(c.manifests, gone.Digest)
				c.tag(repo, "latest", idx.Digest)
				id := h.submit(t, c, tc.ref, "")
				synctest.Wait()
				s := h.get(t, id)
				if s.State != StateFailure || !strings.Contains(s.Error, tc.wantErr) || !slices.Equal(s.Missing, tc.wantMissing) {
					t.Errorf("%s %q missing %v; want error with %q", s.State, s.Error, s.Missing, tc.wantErr)
				}
				if calls, _ := c.stats(); calls != 0 || len(h.cluster.stored()) != 0 {
					t.Errorf("%d Blob calls, %d stored", calls, len(h.cluster.stored()))
				}
			})
		})
	}
}

func TestRunnerClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, RunnerConfig{MaxJobs: 1})
		c, _ := twoPlatforms()
		c.hook = func(ctx context.Context, _ string, _ digest.Digest) error {
			<-ctx.Done()
			return ctx.Err()
		}
		running := h.submit(t, c, "latest", "")
		synctest.Wait()
		waiting := h.submit(t, c, "latest", "")
		synctest.Wait()
		h.r.Close()
		for _, id := range []int64{running, waiting} {
			if s := h.get(t, id); s.State != StateFailure || !strings.Contains(s.Error, "runner closed") {
				t.Errorf("job %d: %s %q", id, s.State, s.Error)
			}
		}
		if s := h.get(t, waiting); s.StartedAt != nil {
			t.Errorf("the waiting job started")
		}
		if _, err := h.r.Submit(Request{Target: Target{Repository: repo, Reference: "latest"}, Content: c}); !errors.Is(err, ErrClosed) {
			t.Errorf("Submit after Close: %v", err)
		}
	})
}

func TestVerifier(t *testing.T) {
	t.Parallel()
	body := []byte("the layer's bytes")
	d := digest.FromBytes(body)
	for _, tc := range []struct {
		name    string
		r       io.Reader
		size    int64
		wantErr error
	}{
		{"whole", bytes.NewReader(body), int64(len(body)), nil},
		{"size unknown", bytes.NewReader(body), -1, nil},
		{"corrupt", bytes.NewReader(bytes.ToUpper(body)), int64(len(body)), ErrCorrupt},
		{"short", bytes.NewReader(body[:5]), int64(len(body)), ErrCorrupt},
		{"long", io.MultiReader(bytes.NewReader(body), strings.NewReader("more")), int64(len(body)), ErrCorrupt},
		{"long, size unknown", io.MultiReader(bytes.NewReader(body), strings.NewReader("more")), -1, ErrCorrupt},
		{"read error", io.MultiReader(bytes.NewReader(body[:3]), iotestErr{io.ErrUnexpectedEOF}), int64(len(body)), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var last int64
			v, err := newVerifier(tc.r, d, tc.size, func(n int64) { last = n })
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(v)
			if !errors.Is(err, tc.wantErr) || (err == nil) != v.verified() {
				t.Fatalf("err %v (verified %v), want %v", err, v.verified(), tc.wantErr)
			}
			if err == nil && (!bytes.Equal(got, body) || last != int64(len(body))) {
				t.Errorf("read %q, progress %d", got, last)
			}
			if _, err2 := v.Read(make([]byte, 1)); tc.wantErr != nil && !errors.Is(err2, tc.wantErr) {
				t.Errorf("error not sticky: %v", err2)
			}
		})
	}
}

func TestRunnerConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  RunnerConfig
		want string
	}{
		{RunnerConfig{}, ""},
		{RunnerConfig{MaxBlobsPerJob: 8, MaxJobs: 1, JobTimeout: time.Hour, Platforms: []string{"linux/amd64"}}, ""},
		{RunnerConfig{MaxBlobsPerJob: -1}, "max_blobs_per_job"},
		{RunnerConfig{MaxJobs: -1}, "max_jobs"},
		{RunnerConfig{JobTimeout: -time.Second}, "job_timeout"},
		{RunnerConfig{Platforms: []string{"linux"}}, "platforms"},
	} {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
