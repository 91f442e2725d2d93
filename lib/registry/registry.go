// Package registry serves the Docker Registry v2 / OCI distribution API over three
// seams: Blobs (content by digest), Tags (tag -> digest) and Uploads (write sessions).
// The proxy serves it read-write over the origin and build-index; the agent serves it
// read-only (Uploads nil) over its P2P cache. Manifests are stored as blobs, so a
// manifest by digest is found wherever its bytes are.
package registry

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
)

// Sentinels the seams return; the API maps them to OCI error codes.
var (
	ErrNotFound       = errors.New("registry: not found")
	ErrDigestMismatch = errors.New("registry: digest mismatch")
	ErrUploadUnknown  = errors.New("registry: upload unknown")
	ErrOffsetMismatch = errors.New("registry: upload offset mismatch")
	// ErrUnavailable is a store that did not answer (the build-index down): 503, so
	// the client retries, rather than an unexplained 500.
	ErrUnavailable = errors.New("registry: store unavailable")
)

// Blobs reads content by digest. Implementations must be safe for concurrent use.
type Blobs interface {
	// Stat returns d's size, or ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns d's content and size, or ErrNotFound. The reader may yield bytes
	// while the blob is still arriving; it must support Seek for Range requests.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
}

// Tags maps tags to manifest digests. Implementations must be safe for concurrent use.
type Tags interface {
	// Get returns the digest tag points at, or ErrNotFound.
	Get(ctx context.Context, repo, tag string) (digest.Digest, error)
	// Put points tag at d durably before returning.
	Put(ctx context.Context, repo, tag string, d digest.Digest) error
	// List returns repo's tags sorted, or ErrNotFound when it has none.
	List(ctx context.Context, repo string) ([]string, error)
	// Repositories returns every repository with a tag, sorted.
	Repositories(ctx context.Context) ([]string, error)
}

// Uploads are blob write sessions. Commit verifies the content against d and makes it
// readable through Blobs; on ErrDigestMismatch nothing is stored.
type Uploads interface {
	Start(ctx context.Context) (id string, err error)
	// Append writes r at offset, which must equal the current size (else
	// ErrOffsetMismatch), and returns the new size. ErrUploadUnknown for a bad id.
	Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error)
	Size(ctx context.Context, id string) (int64, error)
	Commit(ctx context.Context, id string, d digest.Digest) error
	Cancel(ctx context.Context, id string) error
}

// Options configure a Registry.
type Options struct {
	Blobs Blobs
	Tags  Tags
	// Uploads is nil for a read-only registry: every write answers UNSUPPORTED.
	Uploads Uploads
	// ReadOnlyHint is the detail of the UNSUPPORTED answer, e.g. where to push instead.
	ReadOnlyHint string
	// Limits bound manifests, list pages and open upload sessions; zero fields take
	// DefaultLimits.
	Limits Limits
	// Now is the clock upload sessions expire by; nil is time.Now.
	Now   func() time.Time
	Log   *zap.Logger
	Scope tally.Scope
}

// Registry is the distribution API over the seams in Options.
type Registry struct {
	opts     Options
	sessions *sessions
}

// New returns a Registry; Log and Scope default to no-ops.
func New(o Options) *Registry {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Scope == nil {
		o.Scope = tally.NoopScope
	}
	if o.ReadOnlyHint == "" {
		o.ReadOnlyHint = "this registry is read only"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Limits = o.Limits.withDefaults()
	return &Registry{opts: o, sessions: newSessions(o.Limits)}
}

// Routes mounts the API under /v2/ on r.
func (g *Registry) Routes(r chi.Router) {
	r.Get("/v2", g.base)
	r.Get("/v2/", g.base)
	r.HandleFunc("/v2/*", g.serve)
}
