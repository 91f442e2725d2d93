package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/piececheck"
)

// errStoredCorrupt marks a stored blob found not to match its metainfo: the origin's
// fault (502), so a reader moves on to the blob's next origin. The copy is
// quarantined and fetched again from the backend.
var errStoredCorrupt = errors.New("stored copy corrupt")

// verifiedBlobs bounds the origin's record of verified pieces (see piececheck).
const verifiedBlobs = 4096

// checkedReader returns a reader of the open blob f (d's committed file) that serves
// each piece only once it matches d's metainfo, having checked the first piece the
// Range header asks for already, so a bad first piece fails before an answer starts.
// It returns f's FileInfo too.
func (s *Server) checkedReader(d digest.Digest, f *os.File, rangeHeader string) (*piececheck.Reader, os.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("origin serve %s: %w", d, err)
	}
	raw, err := s.store.Info(d)
	if err != nil {
		return nil, nil, fmt.Errorf("origin serve %s: metainfo: %w", d, err)
	}
	info, _, err := metainfo.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("origin serve %s: %w", d, err)
	}
	h, err := piececheck.FromInfo(d, info)
	if err != nil {
		return nil, nil, fmt.Errorf("origin serve %s: %w", d, err)
	}
	if fi.Size() != h.Length {
		err := fmt.Errorf("blob %s: %d bytes stored, metainfo says %d: %w", d, fi.Size(), h.Length, piececheck.ErrCorrupt)
		s.quarantine(d, fi, err)
		return nil, nil, fmt.Errorf("origin serve %s: %w: %w", d, errStoredCorrupt, err)
	}
	v := piececheck.Version{Size: fi.Size(), ModTime: fi.ModTime()}
	if start := piececheck.RangeStart(rangeHeader, h.Length); start < h.Length {
		if err := s.verified.Ensure(h, v, f, h.Piece(start)); err != nil {
			if errors.Is(err, piececheck.ErrCorrupt) {
				s.quarantine(d, fi, err)
				return nil, nil, fmt.Errorf("origin serve %s: %w: %w", d, errStoredCorrupt, err)
			}
			return nil, nil, fmt.Errorf("origin serve %s: %w", d, err)
		}
	}
	return piececheck.NewReader(f, h, v, s.verified), fi, nil
}

// quarantine takes d's corrupt copy (the file seen) out of service: the engine stops
// seeding it, the file moves to the store's quarantine, and a fetch from the backend
// brings a good copy back (in the background; meanwhile d is a miss here, filled on
// demand, and readers use its other origins).
func (s *Server) quarantine(d digest.Digest, seen os.FileInfo, cause error) {
	s.verified.Forget(d)
	s.scope.Counter("corrupt_blobs").Inc(1)
	if err := s.engine.Quarantine(d, seen); err != nil {
		s.log.Error("quarantine corrupt blob", zap.Stringer("digest", d), zap.Error(err))
		return
	}
	s.log.Error("stored blob corrupt: quarantined, fetching it again from the backend", zap.Stringer("digest", d), zap.Error(cause))
	go func() {
		if err := s.ensureLocal(context.Background(), d); err != nil {
			s.log.Warn("refetch of a quarantined blob failed; the next read fetches it again", zap.Stringer("digest", d), zap.Error(err))
		}
	}()
}
