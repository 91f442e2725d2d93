package piececheck

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	tmeta "github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	b []byte
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r := bytes.NewReader(c.b)
	n, err := r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func blob(t *testing.T, size int) ([]byte, Hashes) {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*31 + i>>9)
	}
	res, err := metainfo.Generate(bytes.NewReader(b), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := metainfo.Parse(res.InfoBytes)
	if err != nil {
		t.Fatal(err)
	}
	h, err := FromInfo(res.Digest, info)
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

func TestReaderServesVerifiedBytes(t *testing.T) {
	t.Parallel()
	b, h := blob(t, 5*64<<10+123)
	if h.NumPieces() != 6 {
		t.Fatalf("%d pieces", h.NumPieces())
	}
	src := &countingReaderAt{b: b}
	vs := NewVerified(10)
	v := Version{Size: int64(len(b)), ModTime: time.Unix(1, 0)}
	got, err := io.ReadAll(NewReader(src, h, v, vs))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	first := src.n.Load() // each piece hashed, then read
	if first != 2*int64(len(b)) {
		t.Errorf("first read took %d bytes from disk, want %d (hash + read)", first, 2*len(b))
	}
	// Verified pieces are not hashed again.
	r := NewReader(src, h, v, vs)
	if _, err := r.Seek(3*64<<10+5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(r)
	if !bytes.Equal(got, b[3*64<<10+5:]) {
		t.Fatal("ranged read differs")
	}
	if extra := src.n.Load() - first; extra != int64(len(got)) {
		t.Errorf("second read took %d bytes from disk, want %d (no rehash)", extra, len(got))
	}
	// Another version of the file is verified afresh.
	before := src.n.Load()
	if _, err := io.ReadAll(NewReader(src, h, Version{Size: v.Size, ModTime: time.Unix(2, 0)}, vs)); err != nil {
		t.Fatal(err)
	}
	if src.n.Load()-before != 2*int64(len(b)) {
		t.Error("a new file version was not rehashed")
	}
}

func TestReaderRefusesCorruptPiece(t *testing.T) {
	t.Parallel()
	b, h := blob(t, 4*64<<10)
	bad := bytes.Clone(b)
	bad[2*64<<10+77] ^= 0x40 // same size, one bit flipped in piece 2
	vs := NewVerified(10)
	r := NewReader(bytes.NewReader(bad), h, Version{Size: int64(len(b))}, vs)
	got, err := io.ReadAll(r)
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Piece != 2 || ce.Digest != h.Digest {
		t.Fatalf("got %v, want a CorruptError for piece 2", err)
	}
	if !bytes.Equal(got, b[:2*64<<10]) {
		t.Errorf("served %d bytes before the bad piece, want exactly the 2 good pieces", len(got))
	}
	// The last piece alone is fine; the bad one stays bad.
	if err := vs.Ensure(h, Version{Size: int64(len(b))}, bytes.NewReader(bad), 3); err != nil {
		t.Errorf("piece 3: %v", err)
	}
	if err := vs.Ensure(h, Version{Size: int64(len(b))}, bytes.NewReader(bad), 2); !errors.Is(err, ErrCorrupt) {
		t.Errorf("piece 2 again: %v", err)
	}
}

func TestFromInfoRejectsInconsistentInfo(t *testing.T) {
	t.Parallel()
	_, h := blob(t, 3*64<<10)
	for name, info := range map[string]tmeta.Info{
		"a piece hash missing": {PieceLength: 64 << 10, Length: 3 * 64 << 10, Pieces: h.sums[:40]},
		"no piece length":      {Length: 3 * 64 << 10, Pieces: h.sums},
		"ragged hashes":        {PieceLength: 64 << 10, Length: 3 * 64 << 10, Pieces: h.sums[:59]},
	} {
		if _, err := FromInfo(digest.FromString("x"), info); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVerifiedIsBounded(t *testing.T) {
	t.Parallel()
	vs := NewVerified(2)
	for i := range 5 {
		vs.mark(digest.FromString(string(rune('a'+i))), Version{}, 1, 0)
	}
	if n := len(vs.blobs); n > 2 {
		t.Errorf("%d blobs remembered, want at most 2", n)
	}
}

func TestRangeStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header string
		want   int64
	}{
		{"", 0},
		{"bytes=0-99", 0},
		{"bytes=400-799", 400},
		{"bytes=400-", 400},
		{"bytes=-100", 900},
		{"bytes=-5000", 0},
		{"bytes=10-20, 30-40", 10},
		{"bytes=1000-", 0}, // past the end: ServeContent answers 416
		{"bytes=-0", 0},
		{"bytes=x-1", 0},
		{"items=5-6", 0},
		{"bytes=-", 0},
		{"bytes=-9223372036854775808", 0},
	} {
		if got := RangeStart(tc.header, 1000); got != tc.want {
			t.Errorf("RangeStart(%q) = %d, want %d", tc.header, got, tc.want)
		}
	}
}
