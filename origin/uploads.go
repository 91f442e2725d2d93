package main

import (
	"context"
	"time"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/blobstore"
)

// expireUploads removes upload sessions nothing was written to for ttl (a client that
// started a push and went away), checking every ttl/4 but at least once a minute,
// until ctx ends. Counted in uploads_expired.
func expireUploads(ctx context.Context, store *blobstore.Store, ttl time.Duration, log *zap.Logger, scope tally.Scope) error {
	every := min(ttl/4, time.Minute)
	expired := scope.Counter("uploads_expired")
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			n, err := store.ExpireUploads(now.Add(-ttl))
			expired.Inc(int64(n))
			if err != nil {
				log.Warn("expire abandoned uploads", zap.Error(err))
			} else if n > 0 {
				log.Info("removed abandoned uploads", zap.Int("uploads", n), zap.Duration("upload_ttl", ttl))
			}
		}
	}
}
