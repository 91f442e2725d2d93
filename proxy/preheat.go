package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	registrybackend "github.com/shoal-p2p/shoal/lib/backend/registry"
	"github.com/shoal-p2p/shoal/lib/dragonfly"
	"github.com/shoal-p2p/shoal/lib/memberset"
	"github.com/shoal-p2p/shoal/lib/notification"
	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/preheat"
	"github.com/shoal-p2p/shoal/lib/preheatauth"
	"github.com/shoal-p2p/shoal/lib/registry"
	"github.com/shoal-p2p/shoal/lib/warmfeed"
)

// PreheatConfig is the proxy's preheat block: Harbor's kraken and dragonfly P2P
// providers served on the registry listener. Off by default.
type PreheatConfig struct {
	// Enabled serves POST /registry/notifications (kraken), GET /healthy and
	// /oapi/v1/jobs (dragonfly) and GET /preheat/jobs. Default false.
	Enabled bool `yaml:"enabled"`
	// Auth is the credential Harbor's provider instance must send (default none).
	Auth preheatauth.Config `yaml:"auth"`
	// Runner bounds the jobs: blobs at once, jobs at once, timeout, platforms.
	Runner preheat.RunnerConfig `yaml:"runner"`
	// Upstreams are the registries a kraken-contract event's content may be pulled
	// from when the origins do not hold it already, matched by the host of the event's
	// Target.Url (Harbor sends no credentials on that contract, so they are here).
	Upstreams []PreheatUpstream `yaml:"upstreams"`
	// AllowedRegistries are the registries (host[:port], case-insensitive) a dragonfly
	// job's args.url may name; a job for any other is refused 400 and starts nothing.
	// Empty allows any: the proxy then fetches from wherever a caller says, so keep
	// auth on (the proxy warns at start when both are open).
	AllowedRegistries []string `yaml:"allowed_registries"`
	// Trackers are the trackers whose warm feed reaches the agents (lib/warmfeed): a
	// preheat of scope all_peers posts each blob there and waits for every live agent's
	// report. A static list or DNS, as the agents' trackers. Unset, all_peers fails
	// naming this key.
	Trackers memberset.Config `yaml:"trackers"`
}

// hasTrackers reports whether preheat.trackers names any tracker.
func (c PreheatConfig) hasTrackers() bool { return len(c.Trackers.Static) > 0 || c.Trackers.DNS != "" }

// PreheatUpstream is one pull-through registry of the kraken contract: a
// lib/backend/registry Config (url, username, password_file, insecure, timeouts) and
// the host events name it by.
type PreheatUpstream struct {
	// Host is the host[:port] of the Target.Url of the events this upstream serves,
	// e.g. harbor.example.com. Empty means url's host.
	Host                   string `yaml:"host"`
	registrybackend.Config `yaml:",inline"`
}

func (u PreheatUpstream) host() string {
	if u.Host != "" {
		return u.Host
	}
	p, err := url.Parse(u.URL)
	if err != nil {
		return ""
	}
	return p.Host
}

// Validate checks the block; messages name the key (preheat.…) and the fix. A
// disabled block is still checked, so a typo surfaces before it is turned on.
func (c PreheatConfig) Validate() error {
	var errs []error
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Runner.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("preheat.runner.%w", err))
	}
	if c.hasTrackers() {
		if err := c.Trackers.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("preheat.trackers: %w", err))
		}
	}
	for i, h := range c.AllowedRegistries {
		if hu, err := url.Parse("http://" + h); h == "" || err != nil || hu.Host != h {
			errs = append(errs, fmt.Errorf("preheat.allowed_registries[%d]: %q is not a host[:port] (set e.g. harbor.example.com)", i, h))
		}
	}
	seen := map[string]int{}
	for i, u := range c.Upstreams {
		key := fmt.Sprintf("preheat.upstreams[%d]", i)
		if err := u.Config.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		h := u.host()
		if hu, err := url.Parse("http://" + h); h == "" || err != nil || hu.Host != h || hu.Path != "" || hu.RawQuery != "" || hu.Fragment != "" {
			errs = append(errs, fmt.Errorf("%s.host: %q is not a host[:port] (set e.g. host: harbor.example.com)", key, u.Host))
			continue
		}
		if j, ok := seen[h]; ok {
			errs = append(errs, fmt.Errorf("%s.host: %s is also preheat.upstreams[%d]'s (keep one upstream per host)", key, h, j))
		}
		seen[h] = i
	}
	return errors.Join(errs...)
}

// Preheat is the preheat wiring: the job registry and runner, the auth check, the
// kraken upstreams, and the handlers of both Harbor provider contracts.
type Preheat struct {
	jobs      *preheat.Registry
	runner    *preheat.Runner
	auth      *preheatauth.Checker
	origins   *originset.Set
	store     *registry.ClusterStore
	upstreams map[string]backend.Backend       // by host
	trackers  *memberset.Set[*warmfeed.Client] // nil: preheat.trackers unset
	feed      *warmfeed.Publisher
	allowed   map[string]bool // lower-case hosts; empty: any
	log       *zap.Logger

	mu         sync.Mutex
	transports []*http.Transport // every upstream's, their idle connections closed by Close
	once       sync.Once
	dragonfly  *http.Transport
}

// NewPreheat builds the preheat wiring over the origin set: jobs warm the origins
// through ClusterStore upload sessions, and (scope all_peers) the agents through the
// warm feed of preheat.trackers. Run keeps the tracker membership current; Close stops
// the jobs.
func NewPreheat(ctx context.Context, cfg PreheatConfig, origins *originset.Set, stallTimeout time.Duration,
	hc *http.Client, log *zap.Logger, scope tally.Scope) (*Preheat, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	auth, err := preheatauth.Load(cfg.Auth)
	if err != nil {
		return nil, err
	}
	store := registry.NewClusterStore(origins, stallTimeout)
	p := &Preheat{jobs: preheat.NewRegistry(preheat.DefaultKeepFinished, preheat.IDBase(time.Now())), auth: auth, origins: origins,
		store: store, upstreams: map[string]backend.Backend{}, log: log}
	for i, u := range cfg.Upstreams {
		b, err := registrybackend.New(ctx, u.Config, registrybackend.WithLogger(log.Named("upstream")),
			registrybackend.WithTransport(p.transport(u.Timeout)))
		if err != nil {
			return nil, fmt.Errorf("preheat.upstreams[%d]: %w", i, err)
		}
		p.upstreams[u.host()] = b
	}
	p.allowed = map[string]bool{}
	for _, h := range cfg.AllowedRegistries {
		p.allowed[strings.ToLower(h)] = true
	}
	if len(p.allowed) == 0 && (cfg.Auth.Mode == "" || cfg.Auth.Mode == preheatauth.ModeNone) {
		log.Warn("preheat is open: auth mode none and no allowed_registries, so anyone who reaches the proxy can make it fetch from any registry (set preheat.auth or preheat.allowed_registries)")
	}
	if cfg.hasTrackers() {
		p.trackers, err = memberset.New("tracker", cfg.Trackers, func(base string) *warmfeed.Client {
			return warmfeed.NewClient(base, hc)
		}, hc, log.Named("trackers"), scope.SubScope("trackers"))
		if err != nil {
			return nil, fmt.Errorf("preheat.trackers: %w", err)
		}
	}
	runner := cfg.Runner
	feed := warmfeed.NewPublisher(p.feedTrackers, cmp.Or(runner.JobTimeout, preheat.DefaultJobTimeout), log.Named("warmfeed"))
	place := preheat.Placement{OwnersOf: func(d digest.Digest) []string {
		cs := origins.Owners(d)
		cs = cs[:min(len(cs), origins.Replicas())]
		addrs := make([]string, len(cs))
		for i, c := range cs {
			addrs[i] = c.Addr()
		}
		return addrs
	}, Agents: func(ctx context.Context) ([]string, error) {
		if p.trackers == nil {
			return nil, errors.New("preheat.trackers is not set: scope all_peers reaches the agents through the trackers' warm feed (list them under preheat.trackers.static)")
		}
		return feed.Agents(ctx)
	}}
	p.feed = feed
	p.runner, err = preheat.NewRunner(runner, p.jobs, clusterSink{store: store, origins: origins}, feed, place,
		log, scope)
	if err != nil {
		return nil, fmt.Errorf("preheat.runner: %w", err)
	}
	return p, nil
}

// feedTrackers are the warm feed's trackers: every member, healthy ones first (a
// tracker down answers nothing; the feed posts to all and needs one).
func (p *Preheat) feedTrackers() []warmfeed.Tracker {
	if p.trackers == nil {
		return nil
	}
	var healthy, down []warmfeed.Tracker
	for _, c := range p.trackers.Members() {
		if p.trackers.Healthy(c.Addr()) {
			healthy = append(healthy, c)
		} else {
			down = append(down, c)
		}
	}
	return append(healthy, down...)
}

// Run keeps the tracker membership current until ctx ends.
func (p *Preheat) Run(ctx context.Context) error {
	if p.trackers == nil {
		return nil
	}
	return p.trackers.Run(ctx)
}

// Close cancels every job, waits for the runner's goroutines and drops the upstreams'
// idle connections.
func (p *Preheat) Close() {
	p.runner.Close()
	p.feed.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
}

// transport is a new upstream transport waiting timeout (0: the default) for response
// headers, as lib/backend/registry's own default does.
func (p *Preheat) transport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = cmp.Or(timeout, registrybackend.DefaultTimeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.transports = append(p.transports, t)
	return t
}

// Routes mounts the preheat endpoints on r.
func (p *Preheat) Routes(r chi.Router) {
	r.Get("/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK\n") })
	r.Group(func(r chi.Router) {
		r.Use(p.authenticate)
		r.Post("/registry/notifications", p.handle(p.notify))
		r.Post("/oapi/v1/jobs", p.handle(p.createDragonfly))
		r.Get("/oapi/v1/jobs/{id}", p.handle(p.getDragonfly))
		r.Get("/preheat/jobs", p.handle(p.listJobs))
		r.Get("/preheat/jobs/{id}", p.handle(p.getJob))
	})
}

// The preheat endpoints' error codes, beside lib/oci's table.
var (
	codePreheatInvalid  = oci.Code{Name: "INVALID", Status: http.StatusBadRequest, Message: "invalid preheat request"}
	codePreheatTooLarge = oci.Code{Name: "TOO_LARGE", Status: http.StatusRequestEntityTooLarge, Message: "preheat request too large"}
	codeJobUnknown      = oci.Code{Name: "JOB_UNKNOWN", Status: http.StatusNotFound, Message: "preheat job unknown"}
)

// preheatError maps the preheat seams' sentinels to an API error.
func preheatError(err error) error {
	var code oci.Code
	switch {
	case errors.Is(err, preheatauth.ErrUnauthorized):
		code = oci.CodeUnauthorized
	case errors.Is(err, notification.ErrTooLarge), errors.Is(err, dragonfly.ErrTooLarge):
		code = codePreheatTooLarge
	case errors.Is(err, notification.ErrInvalid), errors.Is(err, dragonfly.ErrInvalid):
		code = codePreheatInvalid
	case errors.Is(err, preheat.ErrUnknownJob):
		code = codeJobUnknown
	default:
		return err
	}
	return oci.NewError(code, err.Error(), err)
}

// handle is the one error edge of the preheat handlers.
func (p *Preheat) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			if code := oci.WriteError(w, preheatError(err)); code.Status >= 500 {
				p.log.Error("preheat request failed", zap.String("path", r.URL.Path), zap.Error(err))
			}
		}
	}
}

// authenticate refuses a request without the configured credential: 401 with the
// challenge, before anything is read or started.
func (p *Preheat) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.auth.Check(r.Header); err != nil {
			if c := p.auth.Challenge(); c != "" {
				w.Header().Set("WWW-Authenticate", c)
			}
			oci.WriteError(w, preheatError(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(b)
	return err
}

// notify is the kraken contract: every manifest push becomes a job, answered 200 at
// once (never 208: Harbor takes it for an error); the work runs in the background.
func (p *Preheat) notify(w http.ResponseWriter, r *http.Request) error {
	env, err := notification.Decode(r.Header.Get("Content-Type"), r.Body)
	if err != nil {
		return err
	}
	triggers, err := notification.Triggers(env)
	if err != nil {
		return err
	}
	for _, t := range triggers {
		id, err := p.runner.Submit(preheat.Request{
			Contract: preheat.SourceKraken,
			Target:   preheat.Target{Registry: t.Host, Repository: t.Repository, Reference: t.Digest.String()},
			Content:  p.krakenContent(t.Host),
		})
		if err != nil {
			return err
		}
		p.log.Info("preheat notification accepted", zap.Int64("job", id), zap.String("event", t.EventID),
			zap.String("host", t.Host), zap.String("repository", t.Repository), zap.Stringer("digest", t.Digest))
	}
	return writeJSON(w, struct{}{})
}

// krakenContent reads from the origins first, then from the upstream configured for
// host; with none, what the origins miss fails the job naming host.
func (p *Preheat) krakenContent(host string) preheat.Content {
	var fallback preheat.Content = failedContent{fmt.Errorf("no upstream configured for %s (add it under preheat.upstreams)", host)}
	if b, ok := p.upstreams[host]; ok {
		fallback = backendContent{b}
	}
	return firstOf{originContent{p.store}, fallback}
}

// dragonflyTransport is the one transport every dragonfly job's registry requests
// share (made on first use), so connections are reused across jobs.
func (p *Preheat) dragonflyTransport() *http.Transport {
	p.once.Do(func() { p.dragonfly = p.transport(0) })
	return p.dragonfly
}

// createDragonfly is the dragonfly contract's POST /oapi/v1/jobs: the job pulls from
// the registry args.url names, with args.headers on every request to it.
func (p *Preheat) createDragonfly(w http.ResponseWriter, r *http.Request) error {
	req, err := dragonfly.DecodeCreate(r.Body)
	if err != nil {
		return err
	}
	if len(p.allowed) > 0 && !p.allowed[strings.ToLower(req.Host)] {
		msg := fmt.Sprintf("args.url: registry %s is not in preheat.allowed_registries (add it there to preheat from it)", oci.QuoteInput(req.Host))
		return oci.NewError(codePreheatInvalid, msg, errors.New(msg))
	}
	cfg := registrybackend.Config{URL: req.Scheme + "://" + req.Host, Insecure: req.Scheme == "http"}
	b, err := registrybackend.New(r.Context(), cfg,
		registrybackend.WithTransport(withHeaders{inner: p.dragonflyTransport(), host: req.Host, headers: req.Headers}),
		registrybackend.WithLogger(p.log.Named("upstream")))
	if err != nil {
		return oci.NewError(codePreheatInvalid, "args.url: "+err.Error(), err)
	}
	id, err := p.runner.Submit(preheat.Request{
		Contract: preheat.SourceDragonfly,
		Target:   preheat.Target{Registry: req.Host, Repository: req.Repository, Reference: req.Reference.String(), URL: req.URL},
		Scope:    req.Scope,
		Content:  backendContent{b},
	})
	if err != nil {
		return err
	}
	return p.writeDragonfly(w, id, req.URL)
}

func (p *Preheat) getDragonfly(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	return p.writeDragonfly(w, id, "")
}

// writeDragonfly answers job id as Harbor parses a dragonfly job: RUNNING shows as
// PENDING, and each host of the job is a success or failure task.
func (p *Preheat) writeDragonfly(w http.ResponseWriter, id int64, imageURL string) error {
	s, err := p.jobs.Get(id)
	if err != nil {
		return err
	}
	if imageURL = cmp.Or(imageURL, s.Target.URL); imageURL == "" {
		imageURL = s.Target.Registry + "/" + s.Target.Repository + ":" + s.Target.Reference
	}
	st := dragonfly.Status{ID: s.ID, State: dragonfly.StatePending, CreatedAt: s.CreatedAt, Error: s.Error}
	switch s.State {
	case preheat.StateSuccess:
		st.State = dragonfly.StateSuccess
	case preheat.StateFailure:
		st.State = dragonfly.StateFailure
	}
	for _, t := range []*time.Time{s.StartedAt, s.FinishedAt} {
		if t != nil {
			st.UpdatedAt = *t
		}
	}
	if s.State.Finished() {
		for _, h := range s.Hosts {
			task := hostTask(imageURL, h.Host)
			if h.OK {
				st.Succeeded = append(st.Succeeded, task)
				continue
			}
			task.Description = h.Error
			if task.Description == "" {
				task.Description = "not warmed"
			}
			st.Failed = append(st.Failed, task)
		}
	}
	body, err := dragonfly.EncodeJob(st)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(body)
	return err
}

// hostTask names a host as a dragonfly task: its kind and host:port (an origin by
// its base URL's, an agent by its warm feed id), so hosts sharing an IP stay apart in
// Harbor's task list, and its IP when the host is an IP literal.
func hostTask(imageURL string, h preheat.Host) dragonfly.Task {
	hostport := h.Addr
	if u, err := url.Parse(h.Addr); err == nil && u.Host != "" {
		hostport = u.Host
	}
	host := hostport
	if hn, _, err := net.SplitHostPort(hostport); err == nil {
		host = hn
	}
	t := dragonfly.Task{URL: imageURL, Hostname: string(h.Kind) + " " + hostport}
	if net.ParseIP(host) != nil {
		t.IP = host
	}
	return t
}

func (p *Preheat) listJobs(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, p.jobs.List())
}

func (p *Preheat) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	s, err := p.jobs.Get(id)
	if err != nil {
		return err
	}
	return writeJSON(w, s)
}

func jobID(r *http.Request) (int64, error) {
	raw := chi.URLParam(r, "id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("job %q: %w", raw, preheat.ErrUnknownJob)
	}
	return id, nil
}

// withHeaders adds a dragonfly job's args.headers (Harbor's pull token) to every
// request to the job's registry host, and to no other host.
type withHeaders struct {
	inner   http.RoundTripper
	host    string
	headers http.Header
}

func (h withHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != h.host || len(h.headers) == 0 {
		return h.inner.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, vs := range h.headers {
		r.Header[k] = append([]string(nil), vs...)
	}
	return h.inner.RoundTrip(r)
}

// clusterSink is the preheat Sink over the origin cluster.
type clusterSink struct {
	store   *registry.ClusterStore
	origins *originset.Set
}

var _ preheat.Sink = clusterSink{}

// Has stats d on that one origin. Of agents it knows nothing: the warm feed asks them,
// and one that holds d already reports so within a poll interval.
func (s clusterSink) Has(ctx context.Context, h preheat.Host, d digest.Digest) (bool, error) {
	if h.Kind != preheat.HostOrigin {
		return false, nil
	}
	c, ok := s.origins.Member(h.Addr)
	if !ok {
		return false, fmt.Errorf("origin %s is no longer a member", h.Addr)
	}
	if _, err := c.Stat(ctx, d); err != nil {
		if errors.Is(err, originclient.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Put streams d into one upload session; the commit stores it on its owners and in
// the backend. Any failure cancels the session, so nothing half-written is kept.
func (s clusterSink) Put(ctx context.Context, d digest.Digest, _ int64, r io.Reader) error {
	id, err := s.store.Start(ctx)
	if err != nil {
		return fmt.Errorf("preheat put %s: %w", d, err)
	}
	if _, err = s.store.Append(ctx, id, 0, r); err == nil {
		err = s.store.Commit(ctx, id, d)
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.store.Cancel(cctx, id)
		return fmt.Errorf("preheat put %s: %w", d, err)
	}
	return nil
}

// backendContent reads a job's content from a backend, the pull-through registry
// driver in practice: tags as tag objects, manifests and blobs as blob objects in the
// repository's namespace.
type backendContent struct{ b backend.Backend }

func (c backendContent) Resolve(ctx context.Context, repo, ref string) (digest.Digest, error) {
	var buf bytes.Buffer
	if err := c.b.Download(ctx, backend.TagName(repo, ref), &buf); err != nil {
		return "", notFound(err)
	}
	return digest.Parse(buf.String())
}

func (c backendContent) Manifest(ctx context.Context, repo string, d digest.Digest) ([]byte, error) {
	var buf bytes.Buffer
	if err := c.b.Download(backend.WithNamespace(ctx, repo), backend.BlobName(d), &buf); err != nil {
		return nil, notFound(err)
	}
	return buf.Bytes(), nil
}

func (c backendContent) Blob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	ctx = backend.WithNamespace(ctx, repo)
	info, err := c.b.Stat(ctx, backend.BlobName(d))
	if err != nil {
		return nil, 0, notFound(err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(c.b.Download(ctx, backend.BlobName(d), pw)) }()
	return pr, info.Size, nil
}

func notFound(err error) error {
	if errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("%w: %w", preheat.ErrNotFound, err)
	}
	return err
}

// originContent reads what the origins already hold (by digest only: tags are the
// build-index's, and the kraken contract names digests).
type originContent struct{ store *registry.ClusterStore }

func (c originContent) Resolve(_ context.Context, repo, ref string) (digest.Digest, error) {
	return "", fmt.Errorf("%w: %s:%s: the origins hold digests, not tags", preheat.ErrNotFound, repo, ref)
}

func (c originContent) Manifest(ctx context.Context, _ string, d digest.Digest) ([]byte, error) {
	rc, _, err := c.Blob(ctx, "", d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, registry.DefaultLimits().MaxManifestBytes+1))
}

func (c originContent) Blob(ctx context.Context, _ string, d digest.Digest) (io.ReadCloser, int64, error) {
	rc, size, err := c.store.Open(ctx, d)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return nil, 0, fmt.Errorf("%w: %w", preheat.ErrNotFound, err)
		}
		return nil, 0, err
	}
	return rc, size, nil
}

// firstOf reads from a, and from b what a misses.
type firstOf struct{ a, b preheat.Content }

func (f firstOf) Resolve(ctx context.Context, repo, ref string) (digest.Digest, error) {
	d, err := f.a.Resolve(ctx, repo, ref)
	if errors.Is(err, preheat.ErrNotFound) {
		return f.b.Resolve(ctx, repo, ref)
	}
	return d, err
}

func (f firstOf) Manifest(ctx context.Context, repo string, d digest.Digest) ([]byte, error) {
	body, err := f.a.Manifest(ctx, repo, d)
	if errors.Is(err, preheat.ErrNotFound) {
		return f.b.Manifest(ctx, repo, d)
	}
	return body, err
}

func (f firstOf) Blob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	rc, n, err := f.a.Blob(ctx, repo, d)
	if errors.Is(err, preheat.ErrNotFound) {
		return f.b.Blob(ctx, repo, d)
	}
	return rc, n, err
}

// failedContent fails every read with err: a kraken event for a host with no upstream.
type failedContent struct{ err error }

func (f failedContent) Resolve(context.Context, string, string) (digest.Digest, error) {
	return "", f.err
}

func (f failedContent) Manifest(context.Context, string, digest.Digest) ([]byte, error) {
	return nil, f.err
}

func (f failedContent) Blob(context.Context, string, digest.Digest) (io.ReadCloser, int64, error) {
	return nil, 0, f.err
}
