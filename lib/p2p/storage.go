package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	tmeta "github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/piececheck"
)

// casStorage is the client's storage over the blob store, holding no second copy of
// any data. A committed blob opens read-only with every piece complete, so it seeds
// without a rehash. Otherwise pieces are written into the blob's partial file at their
// offsets and their completion kept in memory; when the last piece is verified, the
// file is committed (sha256 checked against the info's name, renamed into blobs/)
// while the open descriptor keeps seeding it.
type casStorage struct {
	store     *blobstore.Store
	log       *zap.Logger
	committed func() // called after each successful commit
	// corrupt is called once a committed blob's piece is found not to match its
	// hash, before the read returns, and must drop the torrent; seen is the file's
	// FileInfo.
	corrupt func(ct *casTorrent, seen os.FileInfo)

	mu   sync.Mutex
	open map[tmeta.Hash]*casTorrent
	errs map[tmeta.Hash]error // why the last OpenTorrent of a hash failed
}

var _ storage.ClientImpl = (*casStorage)(nil)

func newCASStorage(store *blobstore.Store, log *zap.Logger, committed func(), corrupt func(*casTorrent, os.FileInfo)) *casStorage {
	return &casStorage{
		store:     store,
		log:       log,
		committed: committed,
		corrupt:   corrupt,
		open:      map[tmeta.Hash]*casTorrent{},
		errs:      map[tmeta.Hash]error{},
	}
}

// OpenTorrent is called by the client, under its lock, when a torrent gets its info.
func (s *casStorage) OpenTorrent(_ context.Context, info *tmeta.Info, ih tmeta.Hash) (storage.TorrentImpl, error) {
	ct, err := s.openTorrent(info)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs[ih] = err
		return storage.TorrentImpl{}, err
	}
	s.open[ih] = ct
	return storage.TorrentImpl{
		Piece: ct.piece,
		Close: func() error {
			s.forget(ih, ct)
			return ct.close()
		},
	}, nil
}

// take returns the storage the client opened for ih, or why opening it failed.
func (s *casStorage) take(ih tmeta.Hash) (*casTorrent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ct, ok := s.open[ih]; ok {
		return ct, nil
	}
	if err, ok := s.errs[ih]; ok {
		delete(s.errs, ih)
		return nil, err
	}
	return nil, errors.New("storage not opened")
}

func (s *casStorage) forget(ih tmeta.Hash, ct *casTorrent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[ih] == ct {
		delete(s.open, ih)
	}
}

func (s *casStorage) openTorrent(info *tmeta.Info) (*casTorrent, error) {
	d, err := metainfo.DigestOf(*info)
	if err != nil {
		return nil, err
	}
	ct := &casTorrent{s: s, d: d, size: info.Length, pieceLen: info.PieceLength, done: make(chan struct{})}
	ct.changed = sync.NewCond(&ct.mu)
	if f, err := s.store.Open(d); err == nil {
		// Stored earlier (or by another process): its pieces are checked on their
		// first read for a peer (checkStored), so a copy corrupted on disk is never
		// seeded.
		if ct.hashes, err = piececheck.FromInfo(d, *info); err != nil {
			f.Close()
			return nil, err
		}
		ct.f = f
		ct.checked = make([]bool, info.NumPieces())
		ct.finish(nil, true)
		return ct, nil
	} else if !errors.Is(err, blobstore.ErrNotFound) {
		return nil, err
	}
	f, err := s.store.OpenPartial(d, info.Length)
	if err != nil {
		return nil, err
	}
	ct.f = f
	ct.have = make([]bool, info.NumPieces())
	ct.verifies = make([]int, info.NumPieces())
	ct.missing = len(ct.have)
	return ct, nil
}

// casTorrent is the storage of one blob.
type casTorrent struct {
	s        *casStorage
	d        digest.Digest
	size     int64
	pieceLen int64
	// f is the committed blob, or the partial file (which becomes the committed blob
	// by a rename, so f stays valid).
	f *os.File
	// hashes and checked guard a blob that was committed when opened: checked[i] once
	// piece i matched its hash. nil for a blob downloaded here (every piece verified
	// by the client on arrival).
	hashes      piececheck.Hashes
	checked     []bool // guarded by mu
	corruptOnce sync.Once
	reading     sync.RWMutex // held for reading by each ReadAt in flight; close takes it
	// lastProgress is when bytes last arrived (unix nanoseconds; 0 if none yet).
	lastProgress atomic.Int64

	mu         sync.Mutex
	changed    *sync.Cond // on mu: broadcast when a piece or the outcome changes
	have       []bool     // verified pieces, until committed
	verifies   []int      // per piece: how many verifications were reported (MarkComplete or MarkNotComplete)
	missing    int
	complete   bool // committed to the store: every piece is there
	closed     bool
	committing sync.Mutex // held during the commit; close waits for it

	done chan struct{} // closed once committed, failed or closed
	err  error         // set before done is closed
	once sync.Once
}

// finish records the outcome and closes done, once.
func (ct *casTorrent) finish(err error, complete bool) {
	ct.once.Do(func() {
		ct.mu.Lock()
		ct.complete = complete
		ct.err = err
		close(ct.done)
		if ct.changed != nil {
			ct.changed.Broadcast()
		}
		ct.mu.Unlock()
	})
}

func (ct *casTorrent) piece(p tmeta.Piece) storage.PieceImpl {
	return casPiece{ct: ct, index: p.Index(), off: p.Offset()}
}

func (ct *casTorrent) pieceComplete(i int) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.complete || ct.have[i]
}

// pieces returns which pieces are verified.
func (ct *casTorrent) pieces() []bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	out := make([]bool, len(ct.have))
	if ct.complete {
		for i := range out {
			out[i] = true
		}
		return out
	}
	copy(out, ct.have)
	return out
}

// held returns how many pieces are verified.
func (ct *casTorrent) held() int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.complete {
		return len(ct.have)
	}
	return len(ct.have) - ct.missing
}

// writeUnverified writes b at off, inside piece i, unless the piece is verified
// already (written is false then): bytes not yet checked must never overwrite a
// piece readers may be reading.
func (ct *casTorrent) writeUnverified(b []byte, off int64, i int) (written bool, err error) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.complete || ct.closed || ct.have[i] {
		return false, nil
	}
	_, err = ct.f.WriteAt(b, off)
	ct.progressed()
	return err == nil, err
}

// setPiece records the verification state of piece i and reports whether it was the
// last piece missing.
func (ct *casTorrent) setPiece(i int, ok bool) (last bool) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.verifies != nil {
		ct.verifies[i]++
		ct.changed.Broadcast()
	}
	if ct.complete || ct.closed || ct.have[i] == ok {
		return false
	}
	ct.have[i] = ok
	ct.changed.Broadcast()
	if ok {
		ct.missing--
	} else {
		ct.missing++
	}
	return ct.missing == 0
}

// commit moves the finished partial file into the store. A sha256 mismatch means the
// info's pieces describe other bytes than its name: the file is deleted, the pieces
// marked missing and the transfer fails with blobstore.ErrDigestMismatch. The hash and
// fsync run at the lowest CPU priority: readers don't wait for them, and at the end of
// a flash crowd they took the CPU that streamed the last bytes to clients (1.5-2 s
// later, docs/BENCHMARKS.md).
func (ct *casTorrent) commit() {
	ct.committing.Lock()
	defer ct.committing.Unlock()
	ct.mu.Lock()
	closed := ct.closed
	ct.mu.Unlock()
	if closed {
		return
	}
	start := time.Now()
	if err := inBackground(func() error { return ct.s.store.CommitPartial(ct.d) }); err != nil {
		ct.s.log.Error("commit failed", zap.Stringer("digest", ct.d), zap.Error(err))
		ct.mu.Lock()
		clear(ct.have)
		ct.missing = len(ct.have)
		ct.mu.Unlock()
		ct.finish(fmt.Errorf("p2p commit %s: %w", ct.d, err), false)
		return
	}
	ct.finish(nil, true)
	ct.s.committed()
	ct.s.log.Info("blob committed", zap.Stringer("digest", ct.d), zap.Int64("bytes", ct.size), zap.Duration("took", time.Since(start)))
}

// close releases the file; a blob that never completed leaves no partial file behind.
func (ct *casTorrent) close() error {
	ct.committing.Lock()
	defer ct.committing.Unlock()
	ct.reading.Lock()
	defer ct.reading.Unlock()
	ct.mu.Lock()
	ct.closed = true
	complete := ct.complete
	ct.mu.Unlock()
	ct.finish(ErrStopped, false)
	err := ct.f.Close()
	if !complete {
		err = errors.Join(err, ct.s.store.RemovePartial(ct.d))
	}
	return err
}

// casPiece is one piece of a casTorrent; offsets are relative to the piece.
type casPiece struct {
	ct    *casTorrent
	index int
	off   int64
}

var _ storage.PieceImpl = casPiece{}

// ReadAt serves a piece to a peer. anacrolix/torrent v1.61 panics when a read for a
// peer fails after the torrent was dropped (peerconn.go servePeerRequest leaves the
// request queued), so a read never fails once the torrent is closed or being closed:
// in-flight reads finish before close releases the file (reading), and later reads
// and reads of a corrupt copy answer a zeroed buffer once the torrent is dropped:
// its connections are closed by then, so those bytes are never sent.
func (p casPiece) ReadAt(b []byte, off int64) (int, error) {
	ct := p.ct
	ct.reading.RLock()
	if ct.isClosed() {
		ct.reading.RUnlock()
		return droppedRead(b)
	}
	err := ct.checkStored(p.index)
	if err == nil {
		n, err := ct.f.ReadAt(b, p.off+off)
		ct.reading.RUnlock()
		return n, err
	}
	ct.reading.RUnlock()
	if !errors.Is(err, piececheck.ErrCorrupt) {
		return 0, fmt.Errorf("p2p storage: %w", err)
	}
	// Quarantine drops the torrent before any read of this copy returns; concurrent
	// readers of other corrupt pieces wait in the Once.
	ct.corruptOnce.Do(func() {
		ct.s.log.Error("stored blob corrupt: seeding stopped, blob quarantined", zap.Stringer("digest", ct.d), zap.Error(err))
		if fi, serr := ct.f.Stat(); serr == nil && ct.s.corrupt != nil {
			ct.s.corrupt(ct, fi)
		}
	})
	return droppedRead(b)
}

// droppedRead is what a read of a dropped torrent answers (see ReadAt): b, cleared.
func droppedRead(b []byte) (int, error) {
	clear(b)
	return len(b), io.EOF
}

func (ct *casTorrent) isClosed() bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.closed
}

// checkStored verifies piece i of a blob committed before it was opened, once.
func (ct *casTorrent) checkStored(i int) error {
	ct.mu.Lock()
	done := ct.checked == nil || ct.checked[i]
	ct.mu.Unlock()
	if done {
		return nil
	}
	if err := ct.hashes.Check(ct.f, i); err != nil {
		return err
	}
	ct.mu.Lock()
	ct.checked[i] = true
	ct.mu.Unlock()
	return nil
}

// errPieceComplete refuses a chunk for a piece already verified: its bytes are never
// overwritten. A peer's chunk can arrive after the HTTP pull completed the piece.
var errPieceComplete = errors.New("piece already complete")

func (p casPiece) WriteAt(b []byte, off int64) (int, error) {
	if p.ct.pieceComplete(p.index) {
		return 0, fmt.Errorf("p2p storage %s: write to piece %d: %w", p.ct.d, p.index, errPieceComplete)
	}
	n, err := p.ct.f.WriteAt(b, p.off+off)
	p.ct.progressed()
	return n, err
}

// progressed records that bytes of the blob arrived (see Transfer.LastProgress).
func (ct *casTorrent) progressed() { ct.lastProgress.Store(time.Now().UnixNano()) }

// MarkComplete is called by the client, without its lock, once the piece's SHA-1 is
// verified. Completing the last piece commits the blob before returning.
func (p casPiece) MarkComplete() error {
	// Start writing the piece to disk now: left to the commit's fsync, the dirty pages
	// of ten agents' blobs were flushed at once and stalled the writes of the last
	// pieces (docs/BENCHMARKS.md).
	startWriteback(p.ct.f, p.off, min(p.ct.pieceLen, p.ct.size-p.off))
	if p.ct.setPiece(p.index, true) {
		p.ct.commit()
	}
	return nil
}

func (p casPiece) MarkNotComplete() error {
	p.ct.setPiece(p.index, false)
	return nil
}

// Completion is always known: the storage never needs the client to hash a piece to
// learn whether it has it.
func (p casPiece) Completion() storage.Completion {
	return storage.Completion{Ok: true, Complete: p.ct.pieceComplete(p.index)}
}

// verifyCount returns how many verifications of piece i were reported so far.
func (ct *casTorrent) verifyCount(i int) int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.verifies == nil {
		return 0
	}
	return ct.verifies[i]
}

// waitVerified waits until a verification of piece i after the first `after` ones is
// reported (the client counts a verification done before it tells the storage) and
// returns whether the piece is verified; false too if the transfer ended or ctx is
// done.
func (ct *casTorrent) waitVerified(ctx context.Context, i, after int) bool {
	verified := false
	err := ct.await(ctx, func() bool {
		if ct.complete || ct.have[i] {
			verified = true
			return true
		}
		return ct.verifies[i] > after || ct.ended()
	})
	return err == nil && verified
}

// waitDone blocks until the blob is committed (nil), the transfer ended without it
// (its error), or ctx is done.
func (ct *casTorrent) waitDone(ctx context.Context) error {
	select {
	case <-ct.done:
		ct.mu.Lock()
		defer ct.mu.Unlock()
		if ct.complete {
			return nil
		}
		if ct.err != nil {
			return ct.err
		}
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitPiece blocks until piece i is verified or the blob committed (nil), the transfer
// ended without the blob (its error), or ctx is done. It does not wait for the commit:
// hashing and syncing a whole blob took 1.4-2.1 s per agent at the end of a flash
// crowd (docs/BENCHMARKS.md), and every piece is verified against the info already.
func (ct *casTorrent) waitPiece(ctx context.Context, i int) error {
	var err error
	if cerr := ct.await(ctx, func() bool {
		switch {
		case ct.complete || ct.have[i]:
			return true
		case ct.ended():
			err = ct.err
			if err == nil {
				err = ErrStopped
			}
			return true
		}
		return false
	}); cerr != nil {
		return cerr
	}
	return err
}

// await blocks until ready, called with ct.mu held whenever a piece, a verification or
// the outcome changes, returns true (nil), or ctx is done (its error).
func (ct *casTorrent) await(ctx context.Context, ready func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		ct.mu.Lock()
		ct.changed.Broadcast()
		ct.mu.Unlock()
	})
	defer stop()
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for !ready() {
		if err := ctx.Err(); err != nil {
			return err
		}
		ct.changed.Wait()
	}
	return nil
}

// ended reports whether the transfer's outcome is recorded (done is closed).
func (ct *casTorrent) ended() bool {
	select {
	case <-ct.done:
		return true
	default:
		return false
	}
}
