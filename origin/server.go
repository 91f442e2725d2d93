package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/hashring"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/piececheck"
	"github.com/shoal-p2p/shoal/lib/taskqueue"
)

// Server is the origin's HTTP API over its store, backend and P2P engine.
type Server struct {
	store   *blobstore.Store
	backend backend.Backend
	engine  *p2p.Engine
	log     *zap.Logger
	scope   tally.Scope
	fetches singleflight.Group
	fillOps singleflight.Group // starts of fills, by digest
	fillMu  sync.Mutex
	fills   map[digest.Digest]*p2p.Transfer // fills from the backend still running
	tasks   *taskqueue.Queue
	runner  *taskqueue.Runner
	cluster Cluster
	// verified remembers the pieces of stored blobs checked before serving.
	verified *piececheck.Verified
}

// Cluster is this origin's place among its peers; the zero value is a lone origin.
type Cluster struct {
	// Set is every origin; nil for a lone origin.
	Set *originset.Set
	// Self is this origin's base URL as Set lists it.
	Self string
}

// Task kinds in the origin's durable queue.
const (
	taskWriteBack = "writeback"
	taskReplicate = "replicate" // Target: the owner's base URL
)

// NewServer wires the origin API. tasks is the durable queue of write-backs; Run
// works it off.
func NewServer(store *blobstore.Store, be backend.Backend, engine *p2p.Engine, tasks *taskqueue.Queue, cluster Cluster, log *zap.Logger, scope tally.Scope) *Server {
	s := &Server{store: store, backend: be, engine: engine, tasks: tasks, cluster: cluster, log: log, scope: scope,
		fills: map[digest.Digest]*p2p.Transfer{}, verified: piececheck.NewVerified(verifiedBlobs)}
	s.runner = taskqueue.NewRunner(tasks, s.runTask, 4, time.Second, log.Named("tasks"), scope.SubScope("tasks"))
	return s
}

// Run works off queued tasks (also those left by a crash) until ctx ends.
func (s *Server) Run(ctx context.Context) error { return s.runner.Run(ctx) }

func (s *Server) runTask(ctx context.Context, t taskqueue.Task) error {
	ctx = backend.WithNamespace(ctx, t.Namespace)
	switch t.Kind {
	case taskWriteBack:
		return s.writeBack(ctx, t.Digest)
	case taskReplicate:
		return s.replicate(ctx, t.Digest, t.Target)
	}
	return fmt.Errorf("unknown task kind %q", t.Kind)
}

// Handler lists every route of the origin.
func (s *Server) Handler(metrics http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(httpserver.AccessLog(s.log), backend.NamespaceMiddleware)
	httpserver.MountOps(r, metrics, nil)
	r.Post("/uploads", s.handle(s.startUpload))
	r.Patch("/uploads/{id}", s.handle(s.appendUpload))
	r.Get("/uploads/{id}", s.handle(s.uploadStatus))
	r.Put("/uploads/{id}", s.handle(s.commitUpload))
	r.Delete("/uploads/{id}", s.handle(s.cancelUpload))
	r.Head("/blobs/{digest}", s.handle(s.getBlob))
	r.Get("/blobs/{digest}", s.handle(s.getBlob))
	r.Get("/blobs/{digest}/metainfo", s.handle(s.getMetainfo))
	r.Get("/peer", s.handle(s.getPeer))
	return r
}

// handle is the one error edge: it maps store sentinels to statuses and codes.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		status, code := http.StatusInternalServerError, "internal"
		switch {
		case errors.Is(err, errBackendCorrupt): // before ErrDigestMismatch, which it wraps
			status, code = http.StatusBadGateway, "backend_corrupt"
		case errors.Is(err, errStoredCorrupt):
			status, code = http.StatusBadGateway, "stored_corrupt"
		case errors.Is(err, blobstore.ErrNotFound), errors.Is(err, backend.ErrNotFound):
			status, code = http.StatusNotFound, originclient.CodeNotFound
		case errors.Is(err, blobstore.ErrUploadUnknown):
			status, code = http.StatusNotFound, originclient.CodeUploadUnknown
		case errors.Is(err, blobstore.ErrDigestMismatch):
			status, code = http.StatusBadRequest, originclient.CodeDigestMismatch
		case errors.Is(err, blobstore.ErrOffsetMismatch):
			status, code = http.StatusRequestedRangeNotSatisfiable, originclient.CodeOffsetMismatch
		case errors.Is(err, errBadRequest):
			status, code = http.StatusBadRequest, "bad_request"
		}
		if status >= http.StatusInternalServerError {
			s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		}
		writeJSON(w, status, originclient.ErrorBody{Error: code, Message: err.Error()})
	}
}

var errBadRequest = errors.New("bad request")

// errBackendCorrupt marks a backend object that does not hash to its name: the origin's
// fault (502), not a digest mismatch blamed on the caller.
var errBackendCorrupt = errors.New("backend object does not match its digest")

// errBackendDown marks a miss whose backend lookup failed (not a miss there).
var errBackendDown = errors.New("backend unavailable")

func (s *Server) startUpload(w http.ResponseWriter, _ *http.Request) error {
	id, err := s.store.StartUpload()
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/uploads/"+id)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	return nil
}

func (s *Server) appendUpload(w http.ResponseWriter, r *http.Request) error {
	offset, err := strconv.ParseInt(r.Header.Get(originclient.HeaderUploadOffset), 10, 64)
	if err != nil || offset < 0 {
		return fmt.Errorf("%w: header %s must be a byte offset", errBadRequest, originclient.HeaderUploadOffset)
	}
	size, err := s.store.AppendUpload(chi.URLParam(r, "id"), offset, r.Body)
	if err != nil {
		return err
	}
	s.scope.Counter("upload_bytes").Inc(size - offset)
	w.Header().Set(originclient.HeaderUploadSize, strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request) error {
	size, err := s.store.UploadSize(chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	w.Header().Set(originclient.HeaderUploadSize, strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// commitUpload verifies and stores the blob, queues its write-back and replication
// durably, and copies it to its other owners before acknowledging: an acknowledged
// blob is on the disks of its owners (or queued for those that were unreachable) and
// will reach the backend even across a crash; until then it is pinned.
func (s *Server) commitUpload(w http.ResponseWriter, r *http.Request) error {
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	id := chi.URLParam(r, "id")
	if r.ContentLength != 0 {
		size, err := s.store.UploadSize(id)
		if err != nil {
			return err
		}
		if _, err := s.store.AppendUpload(id, size, r.Body); err != nil {
			return err
		}
	}
	if _, err := s.store.CommitUpload(id, d); err != nil {
		return err
	}
	tasks := s.commitTasks(r.Context(), d)
	if err := s.tasks.Add(tasks...); err != nil {
		return fmt.Errorf("origin commit %s: queue write-back: %w", d, err)
	}
	s.replicateNow(r.Context(), tasks)
	s.runner.Notify()
	s.scope.Counter("blobs_committed").Inc(1)
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.CancelUpload(chi.URLParam(r, "id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) error {
	d, err := parseDigest(chi.URLParam(r, "digest"))
	if err != nil {
		return err
	}
	if r.Method == http.MethodGet {
		if rc := s.openFilling(r.Context(), d); rc != nil {
			defer rc.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Docker-Content-Digest", d.String())
			http.ServeContent(w, r, "", time.Time{}, rc)
			return nil
		}
	}
	if err := s.ensureLocal(r.Context(), d); err != nil {
		if r.Method == http.MethodHead && errors.Is(err, errBackendDown) {
			// A HEAD is how a pusher (through the proxy) asks whether to upload: with the
			// backend down, a blob not held here is a miss, so the push goes on and its
			// upload is queued durably for write-back, rather than failing until the
			// backend is back. Reads (GET, metainfo) still fail.
			s.log.Warn("HEAD of a blob not held here answered as a miss: backend unavailable", zap.Stringer("digest", d), zap.Error(err))
			return fmt.Errorf("%w: %w", backend.ErrNotFound, err)
		}
		return err
	}
	f, err := s.store.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", d.String())
	if r.Method == http.MethodHead {
		http.ServeContent(w, r, "", time.Time{}, f)
		return nil
	}
	body, fi, err := s.checkedReader(d, f, r.Header.Get("Range"))
	if err != nil {
		return err
	}
	http.ServeContent(w, r, "", time.Time{}, body)
	if err := body.Err(); errors.Is(err, piececheck.ErrCorrupt) {
		// Found past the first piece: the answer stops short of its Content-Length,
		// so the connection closes and the client retries (at another origin).
		s.quarantine(d, fi, err)
	}
	return nil
}

// openFilling returns a reader of d while d is filled from the backend piece by piece
// (see fill), nil if d is held already or can't be filled that way. Its reads wait for
// verified pieces, so agents pulling pieces of a cold blob get the first ones while
// the rest are still on their way from the backend.
func (s *Server) openFilling(ctx context.Context, d digest.Digest) io.ReadSeekCloser {
	if _, err := s.store.Stat(d); !errors.Is(err, blobstore.ErrNotFound) {
		return nil
	}
	tr, err := s.fill(ctx, d)
	if err != nil || tr == nil || fillFailed(tr) {
		return nil
	}
	return tr.NewPassiveReader()
}

// getMetainfo answers the torrent info of d and starts seeding it: the tracker asks
// for metainfo exactly when a swarm for d is forming. On a miss with the info's sidecar
// in the backend, it answers as soon as the fill from the backend has started: the
// engine seeds pieces as they land.
func (s *Server) getMetainfo(w http.ResponseWriter, r *http.Request) error {
	d, err := parseDigest(chi.URLParam(r, "digest"))
	if err != nil {
		return err
	}
	filling := false
	if _, err := s.store.Stat(d); errors.Is(err, blobstore.ErrNotFound) {
		tr, err := s.fill(r.Context(), d)
		if err != nil {
			return err
		}
		// A fill that already failed leaves the miss to ensureLocal's whole fetch.
		filling = tr != nil && !fillFailed(tr)
	}
	if !filling {
		if err := s.ensureLocal(r.Context(), d); err != nil {
			return err
		}
	}
	info, err := s.store.Info(d)
	if err != nil {
		return err
	}
	if !filling {
		if err := s.engine.Seed(d, info); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Header().Set("Content-Length", strconv.Itoa(len(info)))
	_, _ = w.Write(info)
	return nil
}

func (s *Server) getPeer(w http.ResponseWriter, _ *http.Request) error {
	ip, port := s.engine.Addr()
	writeJSON(w, http.StatusOK, originclient.PeerAddr{IP: ip, Port: port})
	return nil
}

// ensureLocal makes d present in the store, fetching it from the backend on a miss.
// Concurrent misses of one digest share a single fetch.
func (s *Server) ensureLocal(ctx context.Context, d digest.Digest) error {
	if _, err := s.store.Stat(d); err == nil {
		return nil
	} else if !errors.Is(err, blobstore.ErrNotFound) {
		return err
	}
	_, err, _ := s.fetches.Do(d.String(), func() (any, error) {
		// Detached from the request: a client hanging up must not waste a half-done fetch.
		return nil, s.fetch(context.WithoutCancel(ctx), d)
	})
	return err
}

// fetch brings d from the backend into the store: through a fill (seeding as it
// goes) if the backend holds d's info, else by downloading and hashing it whole.
func (s *Server) fetch(ctx context.Context, d digest.Digest) error {
	tr, err := s.fill(ctx, d)
	if err != nil {
		return err
	}
	if tr != nil {
		<-tr.Done()
		if err := tr.Err(); err == nil {
			return nil
		} else if _, serr := s.store.Stat(d); serr == nil {
			return nil
		} else {
			s.log.Warn("fill from backend failed; fetching the blob whole", zap.Stringer("digest", d), zap.Error(err))
		}
	}
	name := backend.BlobName(d)
	if _, err := s.backend.Stat(ctx, name); err != nil {
		if !errors.Is(err, backend.ErrNotFound) {
			err = fmt.Errorf("%w: %w", errBackendDown, err)
		}
		return fmt.Errorf("origin fetch %s: %w", d, err)
	}
	start := time.Now()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.backend.Download(ctx, name, pw)) }()
	_, err = s.store.Ingest(d, pr)
	pr.CloseWithError(err)
	if errors.Is(err, blobstore.ErrDigestMismatch) {
		return fmt.Errorf("origin fetch %s from backend: %w: %w", d, errBackendCorrupt, err)
	}
	if err != nil {
		return fmt.Errorf("origin fetch %s from backend: %w", d, err)
	}
	s.scope.Counter("backend_fetches").Inc(1)
	s.log.Info("fetched from backend", zap.Stringer("digest", d), zap.Duration("took", time.Since(start)))
	return nil
}

// fill returns the running fill of d from the backend, starting one if the backend
// holds d's info sidecar; nil (and no error) if it does not, or the sidecar is not
// usable: the caller fetches the blob whole.
func (s *Server) fill(ctx context.Context, d digest.Digest) (*p2p.Transfer, error) {
	v, err, _ := s.fillOps.Do(d.String(), func() (any, error) {
		s.fillMu.Lock()
		running := s.fills[d]
		s.fillMu.Unlock()
		if running != nil {
			return running, nil
		}
		// Detached from the request: the fill outlives it.
		tr, err := s.startFill(context.WithoutCancel(ctx), d)
		if err != nil || tr == nil {
			return (*p2p.Transfer)(nil), err
		}
		s.fillMu.Lock()
		s.fills[d] = tr
		s.fillMu.Unlock()
		go func() {
			<-tr.Done()
			s.fillMu.Lock()
			delete(s.fills, d)
			s.fillMu.Unlock()
		}()
		return tr, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*p2p.Transfer), nil
}

func fillFailed(tr *p2p.Transfer) bool {
	select {
	case <-tr.Done():
		return tr.Err() != nil
	default:
		return false
	}
}

// maxInfoSize bounds an info sidecar: ~100 KiB for 20 GB at 4 MiB pieces.
const maxInfoSize = 16 << 20

// startFill reads d's info sidecar from the backend and, if it names d, starts
// downloading the blob into the engine, which verifies and seeds each piece as it lands.
func (s *Server) startFill(ctx context.Context, d digest.Digest) (*p2p.Transfer, error) {
	var buf bytes.Buffer
	if err := s.backend.Download(ctx, backend.BlobInfoName(d), &limitedWriter{w: &buf, n: maxInfoSize}); err != nil {
		if !errors.Is(err, backend.ErrNotFound) {
			s.log.Warn("reading info sidecar failed", zap.Stringer("digest", d), zap.Error(err))
		}
		return nil, nil
	}
	info := buf.Bytes()
	res, err := metainfo.ResultOf(info)
	if err != nil || res.Digest != d {
		s.log.Warn("ignoring an info sidecar that does not describe its blob", zap.Stringer("digest", d),
			zap.Stringer("names", res.Digest), zap.Error(err))
		return nil, nil
	}
	if err := s.store.PutInfo(d, info); err != nil {
		return nil, fmt.Errorf("origin fill %s: %w", d, err)
	}
	pr, pw := io.Pipe()
	tr, err := s.engine.SeedFrom(d, info, pr)
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("origin fill %s: %w", d, err)
	}
	start := time.Now()
	go func() { pw.CloseWithError(s.backend.Download(ctx, backend.BlobName(d), pw)) }()
	go func() {
		<-tr.Done()
		err := tr.Err()
		pr.CloseWithError(cmp.Or(err, io.ErrClosedPipe)) // ends the download if cut short
		if err != nil {
			s.log.Warn("fill from backend failed", zap.Stringer("digest", d), zap.Error(err))
			return
		}
		// Every blob read from the backend counts in backend_fetches; backend_fills are
		// those that were seeded while they arrived.
		s.scope.Counter("backend_fetches").Inc(1)
		s.scope.Counter("backend_fills").Inc(1)
		s.log.Info("filled from backend", zap.Stringer("digest", d), zap.Duration("took", time.Since(start)))
	}()
	return tr, nil
}

// limitedWriter fails once more than n bytes were written.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, fmt.Errorf("object larger than %d bytes", maxInfoSize)
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// commitTasks is the durable work a commit of d owes: the write-back, and a copy on
// each other owner of d.
// The write-back's Target is the namespace (repository) pushed to, which picks the
// backend when backends are routed per namespace.
func (s *Server) commitTasks(ctx context.Context, d digest.Digest) []taskqueue.Task {
	ns, _ := backend.NamespaceFrom(ctx)
	tasks := []taskqueue.Task{{Kind: taskWriteBack, Digest: d, Target: ns, Namespace: ns}}
	for _, owner := range s.owners(d) {
		if owner != s.cluster.Self {
			tasks = append(tasks, taskqueue.Task{Kind: taskReplicate, Digest: d, Target: owner, Namespace: ns})
		}
	}
	return tasks
}

// replicateNow copies the blob to its other owners before the commit is acknowledged,
// so losing this origin right after a push loses no availability. An owner that
// cannot be reached in replicateWait keeps its task queued for the runner.
func (s *Server) replicateNow(ctx context.Context, tasks []taskqueue.Task) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replicateWait)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range tasks {
		if t.Kind != taskReplicate {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.replicate(backend.WithNamespace(ctx, t.Namespace), t.Digest, t.Target); err != nil {
				s.log.Warn("replicate before acknowledging failed; queued", zap.Stringer("digest", t.Digest),
					zap.String("target", t.Target), zap.Error(err))
				return
			}
			if err := s.tasks.Done(t); err != nil {
				s.log.Warn("finish replication task", zap.Error(err))
			}
		}()
	}
	wg.Wait()
}

// replicateWait bounds the synchronous replication of a commit.
const replicateWait = 2 * time.Minute

// owners returns the base URLs of d's owners in rendezvous order.
func (s *Server) owners(d digest.Digest) []string {
	if s.cluster.Set == nil {
		return nil
	}
	var bases []string
	for _, c := range s.cluster.Set.Members() {
		bases = append(bases, c.Addr())
	}
	return hashring.Owners(d.String(), bases, s.cluster.Set.Replicas())
}

// replicate copies d to the origin at target unless it has it already. A target that
// is no longer an owner (membership changed) is skipped: owners fetch lazily.
func (s *Server) replicate(ctx context.Context, d digest.Digest, target string) error {
	if !slices.Contains(s.owners(d), target) {
		return nil
	}
	c, ok := s.cluster.Set.Member(target)
	if !ok {
		return nil
	}
	if _, err := c.Stat(ctx, d); err == nil {
		return nil
	}
	f, err := s.store.Open(d)
	if err != nil {
		return fmt.Errorf("origin replicate %s to %s: %w", d, target, err)
	}
	defer f.Close()
	id, err := c.StartUpload(ctx)
	if err != nil {
		return fmt.Errorf("origin replicate %s to %s: %w", d, target, err)
	}
	if _, err := c.AppendUpload(ctx, id, 0, f); err != nil {
		_ = c.CancelUpload(ctx, id)
		return fmt.Errorf("origin replicate %s to %s: %w", d, target, err)
	}
	if err := c.CommitUpload(ctx, id, d); err != nil {
		return fmt.Errorf("origin replicate %s to %s: %w", d, target, err)
	}
	s.scope.Counter("replicated").Inc(1)
	return nil
}

// writeBack copies d to the backend unless it is there already, then its torrent info
// as a sidecar (BlobInfoName): an origin missing d later answers metainfo from it at
// once and seeds while it downloads the blob.
func (s *Server) writeBack(ctx context.Context, d digest.Digest) error {
	name := backend.BlobName(d)
	if _, err := s.backend.Stat(ctx, name); err != nil {
		f, err := s.store.Open(d)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := s.backend.Upload(ctx, name, f); err != nil {
			return fmt.Errorf("origin write-back %s: %w", d, err)
		}
		s.scope.Counter("backend_writebacks").Inc(1)
	}
	infoName := backend.BlobInfoName(d)
	if _, err := s.backend.Stat(ctx, infoName); err == nil {
		return nil
	}
	info, err := s.store.Info(d)
	if err != nil {
		return fmt.Errorf("origin write-back %s info: %w", d, err)
	}
	if err := s.backend.Upload(ctx, infoName, bytes.NewReader(info)); err != nil {
		return fmt.Errorf("origin write-back %s info: %w", d, err)
	}
	return nil
}

func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("%w: digest %q is not a sha256 digest", errBadRequest, s)
	}
	return d, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
