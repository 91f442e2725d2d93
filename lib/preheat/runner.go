package preheat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Content is where one job's bytes come from: the registry the job named, with the
// job's pull credentials (the wiring backs it with lib/backend/registry), or Shoal's own
// origins when they already hold the image. Its Manifest makes it Expand's Fetcher.
// Every miss (tag, manifest or blob) returns an error wrapping ErrNotFound. Methods are
// called from several goroutines at once and must be safe for concurrent use.
type Content interface {
	Fetcher
	// Resolve returns the digest the tag ref of repo points at now.
	Resolve(ctx context.Context, repo, ref string) (digest.Digest, error)
	// Blob opens blob d of repo and returns its size as the source states it, or -1
	// when it states none. The runner verifies the bytes; Blob need not.
	Blob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error)
}

// Sink is where warmed content goes: the origin cluster (the wiring backs Put with
// ClusterStore's upload sessions, whose commit stores d on every owner origin and writes
// it back to the backend, so one Put warms all of d's owners). Safe for concurrent use.
type Sink interface {
	// Has reports whether host already holds d whole. An error means "unknown": the
	// runner logs it and warms d anyway.
	Has(ctx context.Context, host Host, d digest.Digest) (bool, error)
	// Put stores d, of size bytes, read from r. r fails instead of returning io.EOF
	// when the bytes are not d (wrapping ErrCorrupt); Put must then return an error
	// and keep nothing: nothing half-written is served.
	Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) error
}

// AgentWarmer makes an agent hold a blob before any pull asks for it (scope all_peers).
// The runner calls Warm only after d is on its owner origins, so the agent can fetch it
// from them. Warm returns once agent holds d, or with an error saying why not; warming a
// blob the agent holds already is a cheap success. Safe for concurrent use.
type AgentWarmer interface {
	Warm(ctx context.Context, agent Host, d digest.Digest) error
}

// Placement answers where blobs live. OwnersOf gives d's owner origins in placement
// order (the hashring); Agents the live agents' addresses, asked once per job and only
// for scope all_peers (nil: such a job fails, naming that no agents are wired). Both
// must be safe for concurrent use.
type Placement struct {
	OwnersOf func(digest.Digest) []string
	Agents   func(context.Context) ([]string, error)
}

// ErrNoAgents is wrapped by the failure of an all_peers job that found no live agent:
// a SUCCESS would claim nodes were warmed when none was.
var ErrNoAgents = errors.New("preheat: no live agents")

// ErrCorrupt is wrapped when a blob's bytes do not hash to its digest or have another
// length than its descriptor says.
var ErrCorrupt = errors.New("preheat: content does not match its digest")

// ErrClosed is wrapped by Submit after Close, and by the failure of jobs Close cut short.
var ErrClosed = errors.New("preheat: runner closed")

// Runner defaults.
const (
	DefaultMaxBlobsPerJob = 4
	DefaultMaxJobs        = 2
	// DefaultJobTimeout is Harbor's patience: its dragonfly driver polls a job for up
	// to 1801 s before it gives up on it.
	DefaultJobTimeout = 30 * time.Minute
)

// RunnerConfig bounds the work of preheat jobs.
type RunnerConfig struct {
	// MaxBlobsPerJob is how many blobs one job copies at once; 0 means 4.
	MaxBlobsPerJob int `yaml:"max_blobs_per_job"`
	// MaxJobs is how many jobs run at once; more wait PENDING in submission order. 0
	// means 2.
	MaxJobs int `yaml:"max_jobs"`
	// JobTimeout bounds a job from its start (time waiting PENDING for a slot does not
	// count); a job still running then fails naming the missing digests. 0 means 30m.
	JobTimeout time.Duration `yaml:"job_timeout"`
	// Platforms narrows which platforms of an index are warmed, e.g. [linux/amd64];
	// empty means every platform.
	Platforms []string `yaml:"platforms"`
}

// Validate names the key at fault and the fix.
func (c RunnerConfig) Validate() error {
	switch {
	case c.MaxBlobsPerJob < 0:
		return fmt.Errorf("max_blobs_per_job is %d: want 1 or more, or 0 for %d", c.MaxBlobsPerJob, DefaultMaxBlobsPerJob)
	case c.MaxJobs < 0:
		return fmt.Errorf("max_jobs is %d: want 1 or more, or 0 for %d", c.MaxJobs, DefaultMaxJobs)
	case c.JobTimeout < 0:
		return fmt.Errorf("job_timeout is %s: want a positive duration such as 30m, or 0 for %s", c.JobTimeout, DefaultJobTimeout)
	}
	if _, err := ParsePlatforms(c.Platforms); err != nil {
		return fmt.Errorf("platforms: %w", err)
	}
	return nil
}

func (c RunnerConfig) withDefaults() RunnerConfig {
	if c.MaxBlobsPerJob == 0 {
		c.MaxBlobsPerJob = DefaultMaxBlobsPerJob
	}
	if c.MaxJobs == 0 {
		c.MaxJobs = DefaultMaxJobs
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	return c
}

// Request is one preheat to run.
type Request struct {
	Contract Source // which contract asked
	Target   Target
	Scope    Scope // "" is DefaultScope
	Content  Content
}

// RunnerOption changes a Runner's defaults.
type RunnerOption func(*Runner)

// WithRunnerClock makes the runner read time from now instead of time.Now.
func WithRunnerClock(now func() time.Time) RunnerOption { return func(r *Runner) { r.now = now } }

// Runner runs preheat jobs in the background: the thin shell that does the I/O the pure
// core (Expand, Targets, Job) decides. Per job: resolve the tag, Expand, Targets, ask
// the Sink what is warm, copy the rest from the Content into the Sink while verifying
// digests, then (all_peers) have every agent fetch every blob. Progress and the outcome
// go to the Registry. Submit and Close are safe for concurrent use.
type Runner struct {
	cfg       RunnerConfig
	platforms Platforms
	jobs      *Registry
	sink      Sink
	warmer    AgentWarmer
	place     Placement
	log       *zap.Logger
	scope     tally.Scope
	now       func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{}

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewRunner returns a Runner recording jobs in jobs. warmer may be nil when no job asks
// for all_peers (such a job then fails on its agents).
func NewRunner(cfg RunnerConfig, jobs *Registry, sink Sink, warmer AgentWarmer, place Placement,
	log *zap.Logger, scope tally.Scope, opts ...RunnerOption) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if jobs == nil || sink == nil || place.OwnersOf == nil {
		return nil, errors.New("preheat runner: a Registry, a Sink and Placement.OwnersOf are required")
	}
	cfg = cfg.withDefaults()
	ps, _ := ParsePlatforms(cfg.Platforms) // Validate checked them
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, platforms: ps, jobs: jobs, sink: sink, warmer: warmer, place: place,
		log: log, scope: scope, now: time.Now, ctx: ctx, cancel: cancel,
		slots: make(chan struct{}, cfg.MaxJobs)}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Submit records a PENDING job and runs it in the background; it returns at once with
// the job's id. Its outcome is read from the Registry.
func (r *Runner) Submit(req Request) (int64, error) {
	if req.Content == nil {
		return 0, errors.New("preheat submit: no Content")
	}
	if req.Scope == "" {
		req.Scope = DefaultScope
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, fmt.Errorf("preheat submit %s/%s:%s: %w", req.Target.Registry, req.Target.Repository, req.Target.Reference, ErrClosed)
	}
	id := r.jobs.Create(req.Contract, req.Target, req.Scope, r.now()).ID
	log := r.log.With(zap.Int64("job", id))
	log.Info("preheat job queued", zap.String("contract", string(req.Contract)),
		zap.String("registry", req.Target.Registry), zap.String("repository", req.Target.Repository),
		zap.String("reference", req.Target.Reference), zap.String("scope", string(req.Scope)))
	r.wg.Add(1)
	go r.run(id, req, log)
	return id, nil
}

// Close cancels every job (running ones fail naming what is missing, waiting ones fail
// without starting) and returns once every goroutine has ended.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

func (r *Runner) run(id int64, req Request, log *zap.Logger) {
	defer r.wg.Done()
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-r.ctx.Done():
		r.end(id, log, fmt.Errorf("before the job started: %w", ErrClosed))
		return
	}
	if r.ctx.Err() != nil { // a slot and Close at once: the select chose at random
		r.end(id, log, fmt.Errorf("before the job started: %w", ErrClosed))
		return
	}
	if err := r.jobs.Update(id, func(j *Job) error { return j.Start(r.now()) }); err != nil {
		log.Error("start preheat job", zap.Error(err))
		return
	}
	log.Info("preheat job started")
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.JobTimeout)
	defer cancel()
	err := r.warm(ctx, id, req, log)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("timed out after %s", r.cfg.JobTimeout)
	case r.ctx.Err() != nil:
		err = ErrClosed
	}
	r.end(id, log, err)
}

// end finishes job id: FAILURE because of err, or, with err nil, as its pairs say.
func (r *Runner) end(id int64, log *zap.Logger, err error) {
	var s Summary
	uerr := r.jobs.Update(id, func(j *Job) error {
		var ferr error
		if err != nil {
			ferr = j.Fail(r.now(), err)
		} else {
			_, ferr = j.Finish(r.now())
		}
		s = j.Summary()
		return ferr
	})
	if uerr != nil {
		log.Error("finish preheat job", zap.Error(uerr))
		return
	}
	r.scope.Tagged(map[string]string{"state": string(s.State)}).Counter("jobs").Inc(1)
	fields := []zap.Field{zap.String("state", string(s.State)), zap.Int64("bytes_done", s.BytesDone),
		zap.Int64("bytes_total", s.BytesTotal)}
	if s.State == StateSuccess {
		log.Info("preheat job finished", fields...)
		return
	}
	log.Warn("preheat job finished", append(fields, zap.String("error", s.Error),
		zap.Stringers("missing", s.Missing))...)
}

// blobWork is one plan entry's pending pairs.
type blobWork struct {
	entry   Entry
	origins []Host
	agents  []Host
}

// warm does the job's I/O. An error before the plan is set is the job's failure; after
// it, copy failures are recorded per pair and warm returns nil (or ctx's error).
func (r *Runner) warm(ctx context.Context, id int64, req Request, log *zap.Logger) error {
	repo := req.Target.Repository
	root, err := r.resolve(ctx, req)
	if err != nil {
		return err
	}
	plan, err := Expand(ctx, req.Content, repo, root, r.platforms)
	if err != nil {
		return err
	}
	var agents []string
	if req.Scope == ScopeAllPeers {
		if r.place.Agents == nil {
			return fmt.Errorf("scope %s: %w: this runner has no agent placement", req.Scope, ErrNoAgents)
		}
		if agents, err = r.place.Agents(ctx); err != nil {
			return fmt.Errorf("scope %s: list agents: %w", req.Scope, err)
		}
		if len(agents) == 0 {
			return fmt.Errorf("scope %s: %w", req.Scope, ErrNoAgents)
		}
	}
	as, err := Targets(plan, req.Scope, r.place.OwnersOf, agents)
	if err != nil {
		return err
	}
	held := r.held(ctx, as, log)
	var pending []Pair
	if err := r.jobs.Update(id, func(j *Job) error {
		var err error
		pending, err = j.SetPlan(plan, as, func(h Host, d digest.Digest) bool { return held[Pair{h, d}] })
		return err
	}); err != nil {
		return err
	}
	var work []blobWork
	for _, e := range plan.Entries {
		w := blobWork{entry: e}
		for _, p := range pending {
			switch {
			case p.Digest != e.Digest:
			case p.Host.Kind == HostAgent:
				w.agents = append(w.agents, p.Host)
			default:
				w.origins = append(w.origins, p.Host)
			}
		}
		if len(w.origins)+len(w.agents) > 0 {
			work = append(work, w)
		}
	}
	skipped := len(plan.Entries) - len(work)
	r.scope.Counter("blobs_skipped").Inc(int64(skipped))
	log.Info("preheat job planned", zap.Stringer("digest", root), zap.String("media_type", plan.MediaType),
		zap.Strings("platforms", plan.Platforms), zap.Int("blobs", len(plan.Entries)),
		zap.Int("blobs_warm", skipped), zap.Int("pairs_pending", len(pending)), zap.Int64("bytes", plan.Size()))

	queue := make(chan blobWork)
	var wg sync.WaitGroup
	for range min(r.cfg.MaxBlobsPerJob, len(work)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range queue {
				r.blob(ctx, id, req, w, log)
			}
		}()
	}
	for _, w := range work {
		queue <- w // workers drain the queue even after ctx ends: each pair gets its outcome
	}
	close(queue)
	wg.Wait()
	return ctx.Err()
}

func (r *Runner) resolve(ctx context.Context, req Request) (digest.Digest, error) {
	t := req.Target
	if d, err := digest.Parse(t.Reference); err == nil {
		return d, nil
	}
	if t.Reference == "" {
		return "", fmt.Errorf("%s: no tag or digest to preheat", t.Repository)
	}
	d, err := req.Content.Resolve(ctx, t.Repository, t.Reference)
	if err != nil {
		return "", fmt.Errorf("resolve %s:%s: %w", t.Repository, t.Reference, err)
	}
	return d, nil
}

// held asks the Sink about every pair of as, a few at once; an unknown answer counts
// as not held.
func (r *Runner) held(ctx context.Context, as []Assignment, log *zap.Logger) map[Pair]bool {
	var (
		mu  sync.Mutex
		out = map[Pair]bool{}
		g   errgroup.Group
	)
	g.SetLimit(r.cfg.MaxBlobsPerJob)
	for _, a := range as {
		for _, h := range a.Hosts {
			p := Pair{h, a.Entry.Digest}
			g.Go(func() error {
				ok, err := r.sink.Has(ctx, p.Host, p.Digest)
				if err != nil {
					log.Warn("preheat: is it warm? unknown, warming it", zap.Stringer("host", p.Host),
						zap.Stringer("digest", p.Digest), zap.Error(err))
				}
				mu.Lock()
				out[p] = ok && err == nil
				mu.Unlock()
				return nil
			})
		}
	}
	_ = g.Wait() // the goroutines return no errors
	return out
}

// blob warms one entry: on its pending owner origins with one Put, then on its pending
// agents one at a time. Every pending pair ends settled.
func (r *Runner) blob(ctx context.Context, id int64, req Request, w blobWork, log *zap.Logger) {
	d := w.entry.Digest
	log = log.With(zap.Stringer("digest", d))
	record := func(h Host, err error) {
		if uerr := r.jobs.Update(id, func(j *Job) error { return j.Warmed(h, d, err) }); uerr != nil {
			log.Error("record preheat progress", zap.Error(uerr))
		}
	}
	if len(w.origins) > 0 {
		err := r.copy(ctx, id, req.Content, req.Target.Repository, w.entry, w.origins)
		for _, h := range w.origins {
			record(h, err)
		}
		if err != nil {
			log.Warn("preheat blob not stored", zap.Error(err))
			for _, a := range w.agents {
				record(a, fmt.Errorf("not on the origins: %w", err))
			}
			return
		}
		log.Debug("preheat blob stored", zap.Int64("size", w.entry.Size), zap.Int("origins", len(w.origins)))
	}
	for _, a := range w.agents {
		var err error
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case r.warmer == nil:
			err = errors.New("no agent warmer configured")
		default:
			err = r.warmer.Warm(ctx, a, d)
		}
		if err != nil {
			err = fmt.Errorf("warm %s on %s: %w", d, a, err)
			log.Warn("preheat agent not warmed", zap.Stringer("agent", a), zap.Error(err))
		} else {
			r.scope.Counter("agent_blobs_warmed").Inc(1)
		}
		record(a, err)
	}
}

// progressStep is how many bytes pass between progress updates of one copy.
const progressStep = 1 << 20

// copy streams e from c into the Sink through a verifying reader, reporting progress
// on hosts. The manifests' bytes come from the plan, already verified by Expand.
func (r *Runner) copy(ctx context.Context, id int64, c Content, repo string, e Entry, hosts []Host) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		rc   io.ReadCloser
		size int64
	)
	if e.Body != nil {
		rc, size = io.NopCloser(bytes.NewReader(e.Body)), int64(len(e.Body))
	} else {
		var err error
		if rc, size, err = c.Blob(ctx, repo, e.Digest); err != nil {
			return fmt.Errorf("fetch blob %s@%s: %w", repo, e.Digest, err)
		}
	}
	defer rc.Close()
	want := e.Size
	switch {
	case want <= 0:
		want = size
	case size >= 0 && size != want:
		return fmt.Errorf("blob %s@%s: the source has %d bytes, the manifest says %d: %w", repo, e.Digest, size, want, ErrCorrupt)
	}
	var last int64
	v, err := newVerifier(rc, e.Digest, want, func(n int64) {
		if n-last < progressStep {
			return
		}
		last = n
		_ = r.jobs.Update(id, func(j *Job) error {
			for _, h := range hosts {
				if err := j.Progress(h, e.Digest, n); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if err := r.sink.Put(ctx, e.Digest, want, v); err != nil {
		return fmt.Errorf("store %s: %w", e.Digest, err)
	}
	if !v.verified() {
		return fmt.Errorf("store %s: the sink returned without reading it whole (%d of %d bytes); not counted as warm", e.Digest, v.n, want)
	}
	r.scope.Counter("bytes_warmed").Inc(v.n)
	r.scope.Counter("blobs_warmed").Inc(1)
	return nil
}

// verifier passes r's bytes on and, instead of io.EOF, fails with ErrCorrupt when they
// do not hash to d or are not size bytes (size < 0: any length). It fails as soon as
// more than size bytes arrive.
type verifier struct {
	r        io.Reader
	d        digest.Digest
	size     int64
	h        hash.Hash
	n        int64
	progress func(int64)
	err      error // sticky
	ok       bool
}

func newVerifier(r io.Reader, d digest.Digest, size int64, progress func(int64)) (*verifier, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if progress == nil {
		progress = func(int64) {}
	}
	return &verifier{r: r, d: d, size: size, h: d.Algorithm().Hash(), progress: progress}, nil
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.size >= 0 && int64(len(p)) > v.size-v.n+1 {
		p = p[:v.size-v.n+1] // read at most one byte too many, to notice it
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("blob %s: more than the %d bytes expected: %w", v.d, v.size, ErrCorrupt)
		return 0, v.err
	}
	if n > 0 {
		v.progress(v.n)
	}
	switch {
	case errors.Is(err, io.EOF):
		got := digest.NewDigest(v.d.Algorithm(), v.h)
		switch {
		case v.size >= 0 && v.n != v.size:
			v.err = fmt.Errorf("blob %s: %d bytes, want %d: %w", v.d, v.n, v.size, ErrCorrupt)
		case got != v.d:
			v.err = fmt.Errorf("blob %s: the bytes have digest %s: %w", v.d, got, ErrCorrupt)
		default:
			v.ok, v.err = true, io.EOF
			return n, io.EOF
		}
		return n, v.err
	case err != nil:
		v.err = fmt.Errorf("read blob %s: %w", v.d, err)
		return n, v.err
	}
	return n, nil
}

// verified reports whether every byte was read and matched.
func (v *verifier) verified() bool { return v.ok }
