package p2p

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	tmeta "github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/seekpos"
)

// active is a blob's torrent in the client.
type active struct {
	d      digest.Digest
	ih     tmeta.Hash
	length int64
	t      *torrent.Torrent // nil for the empty blob
	ct     *casTorrent

	stop        chan struct{} // closed when dropped: ends the announce loop
	stopOnce    sync.Once
	announcing  bool // guarded by Engine.mu
	downloading bool // DownloadAll was called; guarded by Engine.mu
	// originPeers lets the client connect to origins over BitTorrent: unless a pull
	// over HTTP gets the origins' share of the pieces, or once it gave up.
	originPeers atomic.Bool
	pokeCh      chan struct{} // wakes the announce loop to announce at once

	handedMu sync.Mutex
	handed   [][20]byte    // peer ids of the agents in the tracker's last hand-out
	answered chan struct{} // closed once the first announce is answered (or failed)
	answer   sync.Once
	readers  atomic.Int32
	used     atomic.Int64 // unix nanoseconds of the last use
}

// setHandedOut records the agents of the tracker's latest hand-out.
func (a *active) setHandedOut(ids [][20]byte) {
	a.handedMu.Lock()
	defer a.handedMu.Unlock()
	a.handed = ids
}

// announced marks the first announce as done.
func (a *active) announced() { a.answer.Do(func() { close(a.answered) }) }

// handedOut returns a copy of the agents of the tracker's latest hand-out.
func (a *active) handedOut() [][20]byte {
	a.handedMu.Lock()
	defer a.handedMu.Unlock()
	return append([][20]byte(nil), a.handed...)
}

// poke makes the announce loop announce at once.
func (a *active) poke() {
	select {
	case a.pokeCh <- struct{}{}:
	default:
	}
}

func (a *active) halt() { a.stopOnce.Do(func() { close(a.stop) }) }

func (a *active) touch(now time.Time) { a.used.Store(now.UnixNano()) }

func (a *active) lastUsed() time.Time { return time.Unix(0, a.used.Load()) }

// outcome returns whether the blob's storage is done, and its error.
func (a *active) outcome() (bool, error) {
	select {
	case <-a.ct.done:
		return true, a.ct.err
	default:
		return false, nil
	}
}

func (a *active) committed() bool {
	done, err := a.outcome()
	return done && err == nil
}

func (a *active) failed() bool {
	done, err := a.outcome()
	return done && err != nil
}

// Transfer is one caller's handle on a blob being fetched (or already held).
type Transfer struct {
	a   *active
	ctx context.Context
}

// Length returns the blob's size in bytes.
func (t *Transfer) Length() int64 { return t.a.length }

// Done is closed when the blob is committed to the store, or the transfer failed
// (see Err).
func (t *Transfer) Done() <-chan struct{} { return t.a.ct.done }

// LastProgress is when bytes of the blob last arrived, from a peer or an origin
// (zero if none yet): a reader waiting on a piece that arrives chunk by chunk is
// waiting on a transfer that works.
func (t *Transfer) LastProgress() time.Time {
	if t.a.ct == nil {
		return time.Time{}
	}
	if ns := t.a.ct.lastProgress.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Err returns nil until Done is closed; then nil if the blob was committed, else why
// not: an error wrapping blobstore.ErrDigestMismatch if the pieces did not hash to the
// digest, or ErrStopped.
func (t *Transfer) Err() error {
	_, err := t.a.outcome()
	return err
}

// NewReader returns a reader of the blob that yields only bytes of verified pieces,
// blocking until they arrive. Reads stop when the ctx given to Fetch is done. io.EOF
// comes once the blob is committed; a reader of a blob whose commit (the whole-blob
// sha256) failed gets the failure instead. Each reader is for one goroutine; Close it.
//
// Only the first piece a reader has to wait for is fetched first (for the time to
// first byte); the rest arrive in the swarm's order, rarest first and otherwise in a
// random order of each host's own, and the reader catches up from disk. Raising the priority of the
// pieces ahead of every reader, as the library's own reader does, made all agents of
// a flash crowd ask for the same pieces at once, mostly from the origin, which then
// sent 1.7x the blob (docs/BENCHMARKS.md).
func (t *Transfer) NewReader() io.ReadSeekCloser { return t.newReader(true) }

// NewPassiveReader is NewReader for a reader that needs no piece soon (its caller has
// the first bytes from elsewhere): it changes no piece's priority.
func (t *Transfer) NewPassiveReader() io.ReadSeekCloser { return t.newReader(false) }

func (t *Transfer) newReader(urgent bool) io.ReadSeekCloser {
	if t.a.t == nil {
		return nopCloser{bytes.NewReader(nil)}
	}
	t.a.readers.Add(1)
	return &pieceReader{a: t.a, ctx: t.ctx, prioritised: !urgent}
}

// pieceReader reads verified pieces from the blob's file as they arrive.
type pieceReader struct {
	a           *active
	ctx         context.Context
	pos         int64
	prioritised bool // no piece (more) to raise to the top priority
	once        sync.Once
}

func (r *pieceReader) Read(p []byte) (int, error) {
	ct := r.a.ct
	if r.pos >= ct.size {
		// Every byte was verified piece by piece; the end waits for the whole-blob
		// check, so a reader that reads to EOF learns of a blob that failed it.
		if err := ct.waitDone(r.ctx); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	i := int(r.pos / ct.pieceLen)
	if !r.prioritised && !ct.pieceComplete(i) {
		r.prioritised = true
		r.a.t.Piece(i).SetPriority(torrent.PiecePriorityNow)
	}
	if err := ct.waitPiece(r.ctx, i); err != nil {
		return 0, err
	}
	end := min(int64(i+1)*ct.pieceLen, ct.size)
	if int64(len(p)) > end-r.pos {
		p = p[:end-r.pos]
	}
	n, err := ct.f.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF {
		err = nil // the file is as long as the blob; n < len(p) is handled by the caller's next Read
	}
	return n, err
}

func (r *pieceReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := seekpos.Resolve(r.pos, r.a.ct.size, offset, whence)
	if err != nil {
		return r.pos, fmt.Errorf("p2p reader: %w", err)
	}
	r.pos = pos
	return pos, nil
}

func (r *pieceReader) Close() error {
	r.once.Do(func() {
		r.a.touch(time.Now())
		r.a.readers.Add(-1)
	})
	return nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }
