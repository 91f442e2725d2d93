package p2p

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/blobstore"
)

// SeedFrom shares blob d while its bytes arrive from r (an origin filling its store from
// the backend): the torrent is added over the blob's partial file, r is copied into it
// in order, and each piece is verified by the client as soon as it is whole, so peers
// can fetch it while later pieces are still on their way. The last piece commits the
// blob (whole-blob sha256) as a download from peers would. No piece is requested from
// peers and no announce loop runs: origins are handed out by the tracker.
//
// The fill runs in the background; the Transfer's Done and Err tell how it ended (an
// error wrapping blobstore.ErrDigestMismatch if r's bytes do not match the info). If the
// blob's torrent is already active, or the blob is committed, r is not read. Readers
// of the Transfer stop when the engine closes.
func (e *Engine) SeedFrom(d digest.Digest, infoBytes []byte, r io.Reader) (*Transfer, error) {
	res, err := checkInfo(d, infoBytes)
	if err != nil {
		return nil, fmt.Errorf("p2p seed %s from source: %w", d, err)
	}
	if res.Size == 0 {
		return e.fetchEmpty(e.ctx, d)
	}
	if _, err := e.store.Info(d); errors.Is(err, blobstore.ErrNotFound) {
		if err := e.store.PutInfo(d, infoBytes); err != nil {
			return nil, fmt.Errorf("p2p seed %s from source: %w", d, err)
		}
	}
	a, opened, err := e.add(res, nil, false, nil)
	if err != nil {
		return nil, fmt.Errorf("p2p seed %s from source: %w", d, err)
	}
	if opened {
		if done, _ := a.outcome(); !done {
			// Counted as a reader while filling, so the torrent is neither dropped as
			// idle nor evicted before it is whole.
			a.readers.Add(1)
			go e.fill(a, r)
		}
	}
	return &Transfer{a: a, ctx: e.ctx}, nil
}

// fill copies r into a's partial file piece by piece, verifying each; on failure the
// transfer fails and the torrent (with its partial file) is dropped.
func (e *Engine) fill(a *active, r io.Reader) {
	defer a.readers.Add(-1)
	defer a.touch(time.Now())
	if err := e.fillPieces(a, r); err != nil {
		e.log.Warn("seeding from source failed", zap.Stringer("digest", a.d), zap.Error(err))
		a.ct.finish(fmt.Errorf("p2p seed %s from source: %w", a.d, err), false)
		e.remove(a)
	}
}

func (e *Engine) fillPieces(a *active, r io.Reader) error {
	info := a.t.Info()
	n := a.t.NumPieces()
	pieceLen := info.PieceLength
	buf := make([]byte, pieceLen)
	for i := range n {
		off := int64(i) * pieceLen
		b := buf[:min(pieceLen, a.length-off)]
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("read piece %d: %w", i, err)
		}
		if _, err := a.ct.f.WriteAt(b, off); err != nil {
			return fmt.Errorf("write piece %d: %w", i, err)
		}
		before := a.ct.verifyCount(i)
		if err := a.t.Piece(i).VerifyData(); err != nil {
			return fmt.Errorf("verify piece %d: %w", i, err)
		}
		if !a.ct.waitVerified(e.ctx, i, before) {
			if a.ct.ended() {
				// Failed or dropped: the outcome is recorded.
				return a.ct.waitDone(e.ctx)
			}
			if err := e.ctx.Err(); err != nil {
				return fmt.Errorf("verify piece %d: %w", i, err)
			}
			return fmt.Errorf("piece %d does not match the info: %w", i, blobstore.ErrDigestMismatch)
		}
	}
	// The last piece's MarkComplete commits the blob (or fails to) after marking it.
	return a.ct.waitDone(e.ctx)
}
