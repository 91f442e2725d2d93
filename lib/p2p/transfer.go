package p2p

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	tmeta "github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
)

// readahead is how far past a reader's position pieces are prioritised: just the next
// piece or so. Every agent of a flash crowd reads the blob from its start; a long
// readahead (it was 32 MiB) made them all ask the origin for the same pieces at once,
// with little left to trade. Past the readahead the library fetches the rarest pieces
// first, in a random order of its own per torrent, so agents fetch different pieces and
// trade them; the reader catches up from local storage.
const readahead = 1 << 20

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
	readers     atomic.Int32
	used        atomic.Int64 // unix nanoseconds of the last use
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

// Err returns nil until Done is closed; then nil if the blob was committed, else why
// not: an error wrapping blobstore.ErrDigestMismatch if the pieces did not hash to the
// digest, or ErrStopped.
func (t *Transfer) Err() error {
	_, err := t.a.outcome()
	return err
}

// NewReader returns a reader of the blob that yields only bytes of verified pieces,
// blocking until they arrive, and prioritises the pieces ahead of it. Reads stop when
// the ctx given to Fetch is done. A reader of a blob whose commit failed returns the
// failure instead of io.EOF. Each reader is for one goroutine; Close it.
func (t *Transfer) NewReader() io.ReadSeekCloser {
	if t.a.t == nil {
		return nopCloser{bytes.NewReader(nil)}
	}
	r := t.a.t.NewReader()
	r.SetReadahead(readahead)
	r.SetContext(t.ctx)
	t.a.readers.Add(1)
	return &reader{r: r, a: t.a}
}

type reader struct {
	r    torrent.Reader
	a    *active
	once sync.Once
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil {
		if _, ferr := r.a.outcome(); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	return r.r.Seek(offset, whence)
}

func (r *reader) Close() error {
	var err error
	r.once.Do(func() {
		err = r.r.Close()
		r.a.touch(time.Now())
		r.a.readers.Add(-1)
	})
	return err
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }
