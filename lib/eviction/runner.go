package eviction

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/blobstore"
)

// Store is the cache being evicted from.
type Store interface {
	Entries() ([]blobstore.Entry, error)
	Remove(d digest.Digest) error
}

// Runner applies Plan every Interval.
type Runner struct {
	cfg   Config
	store Store
	// pinned says whether a blob must stay (nil: none are pinned).
	pinned func(digest.Digest) (bool, error)
	// evict removes one blob, e.g. through p2p.Engine.Evict so its torrent goes first;
	// an error skips the blob this round.
	evict func(digest.Digest) error
	log   *zap.Logger
	scope tally.Scope
}

// NewRunner returns a Runner; evict nil means store.Remove.
func NewRunner(cfg Config, store Store, pinned func(digest.Digest) (bool, error), evict func(digest.Digest) error, log *zap.Logger, scope tally.Scope) *Runner {
	if evict == nil {
		evict = store.Remove
	}
	return &Runner{cfg: cfg.WithDefaults(), store: store, pinned: pinned, evict: evict, log: log, scope: scope}
}

// Run checks the cache every Interval until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if _, err := r.Once(now); err != nil {
				r.log.Warn("eviction round failed", zap.Error(err))
			}
		}
	}
}

// Once runs one eviction round at now and returns what it removed.
func (r *Runner) Once(now time.Time) ([]digest.Digest, error) {
	entries, err := r.store.Entries()
	if err != nil {
		return nil, err
	}
	cands := make([]Candidate, len(entries))
	var total int64
	for i, e := range entries {
		cands[i] = Candidate{Entry: e}
		total += e.Size
		if r.pinned != nil {
			p, err := r.pinned(e.Digest)
			if err != nil {
				return nil, err
			}
			cands[i].Pinned = p
		}
	}
	r.scope.Gauge("cache_bytes").Update(float64(total))
	var removed []digest.Digest
	var errs []error
	for _, d := range Plan(now, cands, r.cfg) {
		if err := r.evict(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, d)
		r.scope.Counter("evicted").Inc(1)
		r.log.Info("evicted", zap.Stringer("digest", d))
	}
	return removed, errors.Join(errs...)
}
