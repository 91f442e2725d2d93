// Package piececheck keeps a stored blob's bytes from being served before they are
// checked: a read inside a piece first hashes the whole piece and compares it with the
// SHA-1 its torrent metainfo lists. A copy corrupted on disk (a flipped bit, a bad
// sector, an operator's mistake) is then refused with ErrCorrupt instead of being sent
// with a correct Docker-Content-Digest header, which made every pull of it hang at the
// bad piece (issue 12).
//
// Each piece is hashed once per version of the file (size and modification time) and
// process: Verified remembers what passed. The core (Hashes) is pure; Reader is the
// shell over an io.ReaderAt.
package piececheck

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	tmeta "github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/seekpos"
)

// ErrCorrupt marks stored bytes that do not hash to their metainfo's piece.
var ErrCorrupt = errors.New("stored blob does not match its metainfo")

// CorruptError names the blob and the piece that failed. It wraps ErrCorrupt.
type CorruptError struct {
	Digest digest.Digest
	Piece  int
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("blob %s: piece %d: %s", e.Digest, e.Piece, ErrCorrupt)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Hashes is what a blob's pieces must hash to.
type Hashes struct {
	Digest      digest.Digest
	Length      int64
	PieceLength int64
	sums        []byte // 20 bytes per piece
}

// FromInfo returns the piece hashes of d's torrent info.
func FromInfo(d digest.Digest, info tmeta.Info) (Hashes, error) {
	n := info.NumPieces()
	if info.PieceLength <= 0 || len(info.Pieces) != 20*n || int64(n) != (info.TotalLength()+info.PieceLength-1)/info.PieceLength {
		return Hashes{}, fmt.Errorf("piececheck %s: info with %d piece hash bytes for %d bytes in pieces of %d", d, len(info.Pieces), info.TotalLength(), info.PieceLength)
	}
	return Hashes{Digest: d, Length: info.TotalLength(), PieceLength: info.PieceLength, sums: info.Pieces}, nil
}

// NumPieces is how many pieces the blob has.
func (h Hashes) NumPieces() int { return len(h.sums) / 20 }

// Bounds returns piece i's offset and length.
func (h Hashes) Bounds(i int) (off, n int64) {
	off = int64(i) * h.PieceLength
	return off, min(h.PieceLength, h.Length-off)
}

// Piece returns the index of the piece holding byte off.
func (h Hashes) Piece(off int64) int { return int(off / h.PieceLength) }

// Matches reports whether sum is piece i's SHA-1.
func (h Hashes) Matches(i int, sum [20]byte) bool {
	return i >= 0 && i < h.NumPieces() && bytes.Equal(h.sums[20*i:20*i+20], sum[:])
}

// hashBuf is the size of the reads that hash a piece: pieces are up to 16 MiB and
// many are checked at once on a busy origin, so a piece is never held whole.
const hashBuf = 256 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, hashBuf); return &b }}

// Check hashes piece i of r and returns a *CorruptError if it does not match, or the
// read's error.
func (h Hashes) Check(r io.ReaderAt, i int) error {
	off, n := h.Bounds(i)
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	sum := sha1.New()
	if _, err := io.CopyBuffer(sum, io.NewSectionReader(r, off, n), *bp); err != nil {
		return fmt.Errorf("piececheck %s: read piece %d: %w", h.Digest, i, err)
	}
	var got [20]byte
	sum.Sum(got[:0])
	if !h.Matches(i, got) {
		return &CorruptError{Digest: h.Digest, Piece: i}
	}
	return nil
}

// Version identifies one version of a stored file: a file rewritten in place (or
// replaced) has another.
type Version struct {
	Size    int64
	ModTime time.Time
}

// Verified remembers which pieces of which blob versions passed Check, so each is
// hashed once. It holds at most a bounded number of blobs, dropping an arbitrary one
// when full (it is re-verified on its next read). Safe for concurrent use.
type Verified struct {
	mu    sync.Mutex
	max   int
	blobs map[digest.Digest]*verifiedBlob
}

type verifiedBlob struct {
	v      Version
	pieces []bool
}

// NewVerified returns a record of at most maxBlobs blobs.
func NewVerified(maxBlobs int) *Verified {
	return &Verified{max: max(maxBlobs, 1), blobs: map[digest.Digest]*verifiedBlob{}}
}

func (vs *Verified) has(d digest.Digest, v Version, i int) bool {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	b := vs.blobs[d]
	return b != nil && b.v == v && i < len(b.pieces) && b.pieces[i]
}

func (vs *Verified) mark(d digest.Digest, v Version, n, i int) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	b := vs.blobs[d]
	if b == nil || b.v != v || len(b.pieces) != n {
		if b == nil && len(vs.blobs) >= vs.max {
			for victim := range vs.blobs {
				delete(vs.blobs, victim)
				break
			}
		}
		b = &verifiedBlob{v: v, pieces: make([]bool, n)}
		vs.blobs[d] = b
	}
	b.pieces[i] = true
}

// Forget drops what is known of d (its file was quarantined or removed).
func (vs *Verified) Forget(d digest.Digest) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	delete(vs.blobs, d)
}

// Ensure checks piece i of r (version v of the blob) unless it passed before.
func (vs *Verified) Ensure(h Hashes, v Version, r io.ReaderAt, i int) error {
	if vs.has(h.Digest, v, i) {
		return nil
	}
	if err := h.Check(r, i); err != nil {
		return err
	}
	vs.mark(h.Digest, v, h.NumPieces(), i)
	return nil
}

// Reader reads a stored blob, each piece only once it is verified. Not safe for
// concurrent use.
type Reader struct {
	r   io.ReaderAt
	h   Hashes
	v   Version
	vs  *Verified
	pos int64
	err error // the first read error, io.EOF aside
}

// NewReader returns a reader of version v of the blob in r, verified against h, with
// vs remembering the pieces that passed.
func NewReader(r io.ReaderAt, h Hashes, v Version, vs *Verified) *Reader {
	return &Reader{r: r, h: h, v: v, vs: vs}
}

// Read reads from the current piece after verifying it; a piece that fails returns a
// *CorruptError and nothing of it.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.h.Length {
		return 0, io.EOF
	}
	i := r.h.Piece(r.pos)
	if err := r.vs.Ensure(r.h, r.v, r.r, i); err != nil {
		if r.err == nil {
			r.err = err
		}
		return 0, err
	}
	off, n := r.h.Bounds(i)
	p = p[:min(int64(len(p)), off+n-r.pos)]
	m, err := r.r.ReadAt(p, r.pos)
	r.pos += int64(m)
	if err == io.EOF && m > 0 {
		err = nil
	}
	return m, err
}

// Err returns the first error a Read returned, other than io.EOF (a *CorruptError
// when a piece failed), for a caller whose copy loop (http.ServeContent) drops it.
func (r *Reader) Err() error { return r.err }

// RangeStart is the first byte an HTTP Range header asks of a blob of size bytes (0
// for no header or one that is not a plain byte range): the piece to check before the
// answer's headers go out.
func RangeStart(header string, size int64) int64 {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return 0
	}
	first, _, _ := strings.Cut(spec, ",")
	from, to, ok := strings.Cut(strings.TrimSpace(first), "-")
	if !ok {
		return 0
	}
	if from == "" { // the last n bytes
		n, err := strconv.ParseInt(to, 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		return max(size-n, 0)
	}
	off, err := strconv.ParseInt(from, 10, 64)
	if err != nil || off < 0 || off >= size {
		return 0
	}
	return off
}

// Seek sets the position for the next Read.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	pos, err := seekpos.Resolve(r.pos, r.h.Length, offset, whence)
	if err != nil {
		return r.pos, fmt.Errorf("piececheck reader: %w", err)
	}
	r.pos = pos
	return pos, nil
}
