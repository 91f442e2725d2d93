package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/clientallow"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/mirror"
	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/registry"
	"github.com/shoal-p2p/shoal/lib/stall"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
)

// ServerDeps are the agent server's collaborators.
type ServerDeps struct {
	Store      *blobstore.Store
	Engine     *p2p.Engine
	Trackers   *trackerclient.Trackers
	Origins    *originset.Set
	BuildIndex *buildindexclient.Client
	// Transport carries the readiness checks (nil: http.DefaultTransport); TLS-aware
	// when tls is on.
	Transport http.RoundTripper
}

// Server is the agent's read-only registry.
type Server struct {
	registry *registry.Registry
	allowed  []netip.Prefix // callers admitted besides loopback
	blobs    *blobSource
	mirror   *mirror.Mapper
	log      *zap.Logger
	scope    tally.Scope
	origins  *originset.Set
	// deps are the base URLs readiness checks (build-index).
	deps []string
	hc   *http.Client
}

// NewServer wires the read side of the registry API over the agent's blob cache,
// the swarm and build-index.
func NewServer(d ServerDeps, cfg Config, log *zap.Logger, scope tally.Scope) *Server {
	blobs := &blobSource{store: d.Store, engine: d.Engine, trackers: d.Trackers, origins: d.Origins,
		directBelow: cfg.DirectBelow, stallTimeout: cfg.StallTimeout, log: log, scope: scope}
	reg := registry.New(registry.Options{
		Blobs:        blobs,
		Tags:         registry.BuildIndexTags(d.BuildIndex),
		ReadOnlyHint: "this is a Shoal agent (read only): push through the proxy at " + cfg.Proxy,
		Log:          log,
		Scope:        scope.SubScope("registry"),
	})
	allowed, _ := clientallow.Parse("allowed_clients", cfg.AllowedClients) // Validate checked them
	return &Server{registry: reg, blobs: blobs, allowed: allowed, mirror: mirror.New(cfg.Mirror.Upstreams, cfg.Proxy), log: log, scope: scope,
		origins: d.Origins, deps: []string{cfg.BuildIndex}, hc: &http.Client{Timeout: 2 * time.Second, Transport: d.Transport}}
}

// ready is the agent's readiness: it knows origins and reaches build-index. Until then
// every pull would fail with a 500 and containerd would fall back to the upstream (on
// Kubernetes: until kube-proxy has programmed the Services). The trackers are not
// needed: without them pulls come from the origins.
func (s *Server) ready(ctx context.Context) error {
	if s.origins != nil && len(s.origins.Members()) == 0 {
		return errors.New("no origins known yet")
	}
	for _, base := range s.deps {
		if err := httpserver.CheckHealth(ctx, s.hc, strings.TrimRight(base, "/")); err != nil {
			return fmt.Errorf("%s: %w", base, err)
		}
	}
	return nil
}

// Warm fetches d into the cache through the same path as a pull (the swarm, or the
// origins directly for a small blob) and returns once it is stored and verified: the
// warm feed's WarmFunc.
func (s *Server) Warm(ctx context.Context, repo string, d digest.Digest) error {
	if repo != "" {
		ctx = backend.WithNamespace(ctx, repo)
	}
	r, _, err := s.blobs.Open(ctx, d)
	if err != nil {
		return fmt.Errorf("warm %s: %w", d, err)
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("warm %s: %w", d, err)
	}
	// Every byte read was verified; the swarm commits the blob to the cache just after
	// its last piece, so the stored copy may lag the read by a moment.
	for wait := time.Now().Add(commitWait); ; {
		if _, err := s.blobs.store.Stat(d); err == nil {
			return nil
		} else if time.Now().After(wait) || ctx.Err() != nil {
			return fmt.Errorf("warm %s: read whole but not stored after %s: %w", d, commitWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// commitWait bounds how long Warm waits for a blob read whole to be in the cache.
const commitWait = 30 * time.Second

// Handler lists every route of the agent.
func (s *Server) Handler(metrics http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(httpserver.AccessLog(s.log))
	httpserver.MountOps(r, metrics, s.ready)
	r.Group(func(r chi.Router) {
		r.Use(clientallow.Middleware("allowed_clients", s.allowed))
		r.Use(s.mirrorNS)
		s.registry.Routes(r)
	})
	return r
}

// mirrorNS serves containerd's mirror requests (?ns=<registry>): an upstream's
// repositories under its prefix, Shoal's own as they are, and a fast 404 for any
// other registry, the same for HEAD and GET, so containerd falls back to its next host.
func (s *Server) mirrorNS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns := r.URL.Query().Get("ns")
		path := strings.TrimPrefix(r.URL.Path, "/v2/")
		kind, mapped := s.mirror.Rewrite(ns, path)
		upstream := ns
		switch kind {
		case mirror.Local:
			upstream = "_local"
		case mirror.Unknown:
			upstream = "_other" // any registry a client names: not a label value each
		}
		s.scope.Tagged(map[string]string{"upstream": upstream, "result": kind.String()}).Counter("mirror_requests").Inc(1)
		switch kind {
		case mirror.Unknown:
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			oci.WriteError(w, mirror.NotFound(ns, path))
			return
		case mirror.Mirrored:
			if mapped != path {
				u := *r.URL // the caller's URL stays as sent (access log)
				u.Path, u.RawPath = "/v2/"+mapped, ""
				r2 := *r
				r2.URL = &u
				r = &r2
			}
		}
		next.ServeHTTP(w, r)
	})
}

// headStartWait bounds how long pulls wait for the client's first piece.
const headStartWait = time.Second

// blobSource serves blobs from the local cache, fetching misses: small ones over HTTP
// from the origins, the rest through the swarm (the pieces no peer holds pulled from
// the origins over HTTP, see lib/p2p pull), streamed from verified pieces (the first
// piece from an origin, see headFirstReader).
type blobSource struct {
	store       *blobstore.Store
	engine      *p2p.Engine
	trackers    *trackerclient.Trackers
	origins     *originset.Set
	directBelow int64
	// stallTimeout bounds a client's wait on a fetch that makes no progress.
	stallTimeout time.Duration
	log          *zap.Logger
	scope        tally.Scope
}

var _ registry.Blobs = (*blobSource)(nil)

// Stat answers from the cache, else from the blob's metainfo (cached by the tracker),
// so a stat never needs an origin.
func (b *blobSource) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if size, err := b.store.Stat(d); err == nil {
		return size, nil
	}
	info, err := b.info(ctx, d)
	if err != nil {
		return 0, err
	}
	return info.length, nil
}

// Open returns the cached blob, or starts fetching it and returns a reader that yields
// bytes as soon as their pieces are verified.
func (b *blobSource) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if f, size, err := b.openCached(d); err == nil {
		b.scope.Counter("cache_hits").Inc(1)
		return f, size, nil
	}
	b.scope.Counter("cache_misses").Inc(1)
	// Everything the client waits on from here is watched: stalled longer than
	// stall_timeout, it fails (before the body: an error answer; during it: a
	// closed connection), and docker or containerd retries.
	ctx, watch := stall.New(ctx, b.stallTimeout)
	watch.Busy()
	r, size, err := b.open(ctx, d, watch)
	watch.Idle()
	if err != nil {
		watch.Stop()
		if errors.Is(context.Cause(ctx), stall.ErrStalled) {
			b.scope.Counter("stalled").Inc(1)
			return nil, 0, oci.NewError(oci.CodeStalled, fmt.Sprintf("%s: no progress for %s (stall_timeout): try again", d, b.stallTimeout), err)
		}
		return nil, 0, err
	}
	return &stalledCount{ReadSeekCloser: watch.Reader(ctx, r), stalled: b.scope.Counter("stalled")}, size, nil
}

// stalledCount counts a stream cut off by the stall timeout.
type stalledCount struct {
	io.ReadSeekCloser
	stalled tally.Counter
	counted bool
}

func (s *stalledCount) Read(p []byte) (int, error) {
	n, err := s.ReadSeekCloser.Read(p)
	if err != nil && !s.counted && errors.Is(err, stall.ErrStalled) {
		s.counted = true
		s.stalled.Inc(1)
	}
	return n, err
}

// diskFull is the answer to a fetch of d (size bytes) that found no room in data_dir.
func (b *blobSource) diskFull(d digest.Digest, size int64, err error) error {
	b.scope.Counter("disk_full").Inc(1)
	return oci.NewError(oci.CodeStorageFull, fmt.Sprintf("the agent's data_dir has no room for %s (%d bytes): free disk space there, or lower eviction's watermarks", d, size), err)
}

// open fetches d (not cached) under watch.
func (b *blobSource) open(ctx context.Context, d digest.Digest, watch *stall.Watchdog) (io.ReadSeekCloser, int64, error) {
	info, err := b.info(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	if info.length < b.directBelow {
		if err := b.fetchDirect(ctx, d, watch); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil, 0, b.diskFull(d, info.length, err)
			}
			return nil, 0, err
		}
		return b.openCached(d)
	}
	// The swarm's pulls from the origins wait for the client's first piece (or a
	// second): requests queue at a busy origin, and in a flash crowd the pulls of the
	// agents whose heads were answered first delayed the others' first bytes past
	// one piece time (docs/BENCHMARKS.md). The origin is busy sending the heads
	// meanwhile.
	headDone := make(chan struct{})
	pull := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		select {
		case <-headDone:
		case <-time.After(headStartWait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return openOriginRange(ctx, b.origins, d, off, n)
	}
	head := prefetchHead(ctx, b.origins, d, min(info.pieceLength, info.length))
	t, err := b.engine.Fetch(ctx, d, info.raw, b.trackers, pull)
	if err != nil {
		head.drop()
		if errors.Is(err, blobstore.ErrNoSpace) || errors.Is(err, syscall.ENOSPC) {
			return nil, 0, b.diskFull(d, info.length, err)
		}
		return nil, 0, fmt.Errorf("agent fetch %s: %w", d, err)
	}
	watch.SetProgress(t.LastProgress)
	r := newHeadFirstReader(ctx, d, t, info.pieceLength, b.origins, b.log, b.scope.Counter("head_bytes"))
	r.headEnd = sync.OnceFunc(func() { close(headDone) })
	r.prefetch = head
	return r, t.Length(), nil
}

func (b *blobSource) openCached(d digest.Digest) (io.ReadSeekCloser, int64, error) {
	f, err := b.store.Open(d)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// fetchDirect downloads d over HTTP into the cache from the first of its origins (in
// placement order) that serves it whole; Ingest verifies the digest, so a bad copy
// moves on to the next origin too.
func (b *blobSource) fetchDirect(ctx context.Context, d digest.Digest, watch *stall.Watchdog) error {
	origins := b.origins.Owners(d)
	if len(origins) == 0 {
		return fmt.Errorf("agent fetch %s from origins: no origins known yet", d)
	}
	var errs []error
	for _, o := range origins {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(o.Download(ctx, d, pw)) }()
		_, err := b.store.Ingest(d, watch.Progressing(pr))
		pr.CloseWithError(err)
		if err == nil {
			b.scope.Counter("direct_fetches").Inc(1)
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, syscall.ENOSPC) {
			// Given up, or the local disk is full: no origin's fault, none would do better.
			return fmt.Errorf("agent fetch %s from origin: %w", d, err)
		}
		if !errors.Is(err, originclient.ErrNotFound) {
			b.origins.MarkFailed(o.Addr())
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("agent fetch %s from origins: %w", d, mapNotFound(errors.Join(errs...)))
}

type blobInfo struct {
	raw         []byte
	length      int64
	pieceLength int64
}

// info returns d's torrent metainfo: from the cache, else from the trackers (then
// kept), else, with no tracker answering, from d's origins.
func (b *blobSource) info(ctx context.Context, d digest.Digest) (blobInfo, error) {
	raw, err := b.store.Info(d)
	cached := err == nil
	if !cached {
		raw, err = b.trackers.Metainfo(ctx, d)
		if err != nil && !errors.Is(err, trackerclient.ErrNotFound) && ctx.Err() == nil {
			var oerr error
			if raw, oerr = b.originMetainfo(ctx, d); oerr == nil {
				b.scope.Counter("metainfo_from_origins").Inc(1)
				b.log.Warn("no tracker answered metainfo: asked the origins", zap.Stringer("digest", d), zap.Error(err))
				err = nil
			} else {
				err = fmt.Errorf("%w; from origins: %w", err, oerr)
			}
		}
		if err != nil {
			return blobInfo{}, fmt.Errorf("agent metainfo %s: %w", d, mapNotFound(err))
		}
	}
	info, _, err := metainfo.Parse(raw)
	if err != nil {
		return blobInfo{}, fmt.Errorf("agent metainfo %s: %w", d, err)
	}
	if got, err := metainfo.DigestOf(info); err != nil || got != d {
		return blobInfo{}, fmt.Errorf("agent metainfo %s: names another blob (%s)", d, got)
	}
	bi := blobInfo{raw: raw, length: info.TotalLength(), pieceLength: info.PieceLength}
	if cached {
		return bi, nil
	}
	if err := b.store.PutInfo(d, raw); err != nil {
		b.log.Warn("keep metainfo", zap.Stringer("digest", d), zap.Error(err))
	}
	return bi, nil
}

// originMetainfo asks d's origins in placement order for its metainfo (which also
// makes the one that answers seed d).
func (b *blobSource) originMetainfo(ctx context.Context, d digest.Digest) ([]byte, error) {
	var errs []error
	for _, o := range b.origins.Owners(d) {
		raw, err := o.Metainfo(ctx, d)
		if err == nil {
			return raw, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if !errors.Is(err, originclient.ErrNotFound) {
			b.origins.MarkFailed(o.Addr())
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no origins known yet")
	}
	return nil, errors.Join(errs...)
}

// mapNotFound turns the clients' misses into the registry's, so the API answers
// BLOB_UNKNOWN (a fast 404 lets containerd fall back to the next mirror).
func mapNotFound(err error) error {
	if errors.Is(err, trackerclient.ErrNotFound) || errors.Is(err, originclient.ErrNotFound) {
		return fmt.Errorf("%w: %w", registry.ErrNotFound, err)
	}
	return err
}
