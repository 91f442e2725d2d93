package blobstore

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// dirEntries lists the files under dir of the store (recursively), for "nothing left" checks.
func dirEntries(t *testing.T, s *Store, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(s.root, dir), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkCommitted(t *testing.T, s *Store, data []byte, res metainfo.Result) {
	t.Helper()
	d := digest.FromBytes(data)
	if res.Digest != d || res.Size != int64(len(data)) {
		t.Fatalf("result %s size %d, want %s size %d", res.Digest, res.Size, d, len(data))
	}
	f, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored blob differs (%v)", err)
	}
	if size, err := s.Stat(d); err != nil || size != int64(len(data)) {
		t.Fatalf("Stat = %d, %v", size, err)
	}
	info, err := s.Info(d)
	if err != nil || !bytes.Equal(info, res.InfoBytes) {
		t.Fatalf("Info differs from the result's (%v)", err)
	}
	want, _ := metainfo.Generate(bytes.NewReader(data), metainfo.PieceLength(int64(len(data))))
	if res.InfoHash != want.InfoHash {
		t.Fatal("infohash differs from metainfo.Generate's")
	}
}

func TestUploadInChunks(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randomBytes(3<<20+5, 1)
	id, err := s.StartUpload()
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for _, chunk := range [][]byte{data[:1], data[1 : 1<<20], data[1<<20:]} {
		size, err := s.AppendUpload(id, off, bytes.NewReader(chunk))
		if err != nil {
			t.Fatal(err)
		}
		off += int64(len(chunk))
		if size != off {
			t.Fatalf("size %d, want %d", size, off)
		}
		if got, err := s.UploadSize(id); err != nil || got != off {
			t.Fatalf("UploadSize = %d, %v", got, err)
		}
	}
	res, err := s.CommitUpload(id, digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	checkCommitted(t, s, data, res)
	if _, err := s.UploadSize(id); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("upload still there after commit: %v", err)
	}
	if left := dirEntries(t, s, uploadsDir); len(left) != 0 {
		t.Fatalf("uploads left: %v", left)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0] != digest.FromBytes(data) {
		t.Fatalf("List = %v, %v", list, err)
	}
}

func TestAppendWrongOffset(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	id, _ := s.StartUpload()
	if _, err := s.AppendUpload(id, 0, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 4, 6} {
		size, err := s.AppendUpload(id, off, strings.NewReader("world"))
		if !errors.Is(err, ErrOffsetMismatch) {
			t.Fatalf("offset %d: %v, want ErrOffsetMismatch", off, err)
		}
		if size != 5 {
			t.Fatalf("offset %d: size %d, want 5", off, size)
		}
	}
	if size, _ := s.UploadSize(id); size != 5 {
		t.Fatalf("a refused append wrote: size %d", size)
	}
}

func TestAppendKeepsBytesBeforeAReadError(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	id, _ := s.StartUpload()
	r := io.MultiReader(strings.NewReader("hello"), iotest.ErrReader(errors.New("client went away")))
	size, err := s.AppendUpload(id, 0, r)
	if err == nil || size != 5 {
		t.Fatalf("AppendUpload = %d, %v; want 5 and an error", size, err)
	}
	if got, _ := s.UploadSize(id); got != 5 {
		t.Fatalf("UploadSize = %d, want 5", got)
	}
}

func TestUnknownUpload(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for _, id := range []string{"0123456789abcdef0123456789abcdef", "../../etc/passwd", "", "ABCDEF"} {
		if _, err := s.UploadSize(id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("UploadSize(%q): %v", id, err)
		}
		if _, err := s.AppendUpload(id, 0, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("AppendUpload(%q): %v", id, err)
		}
		if err := s.CancelUpload(id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("CancelUpload(%q): %v", id, err)
		}
		if _, err := s.CommitUpload(id, digest.FromString("x")); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("CommitUpload(%q): %v", id, err)
		}
	}
}

func TestCancelUpload(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	id, _ := s.StartUpload()
	_, _ = s.AppendUpload(id, 0, strings.NewReader("hello"))
	if err := s.CancelUpload(id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadSize(id); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestExpireUploads: sessions nothing was written to for the TTL go; a live one stays
// and can still be committed.
func TestExpireUploads(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var abandoned []string
	for range 3 {
		id, _ := s.StartUpload()
		abandoned = append(abandoned, id)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, id := range abandoned {
		if err := os.Chtimes(filepath.Join(s.root, uploadsDir, id), old, old); err != nil {
			t.Fatal(err)
		}
	}
	live, _ := s.StartUpload()
	if _, err := s.AppendUpload(live, 0, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	n, err := s.ExpireUploads(time.Now().Add(-time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("ExpireUploads = %d, %v; want the 3 abandoned", n, err)
	}
	for _, id := range abandoned {
		if _, err := s.UploadSize(id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("abandoned upload %s: %v, want unknown", id, err)
		}
	}
	if _, err := s.CommitUpload(live, digest.FromString("hello")); err != nil {
		t.Errorf("the live upload was touched: %v", err)
	}
	if n, err := s.ExpireUploads(time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("second ExpireUploads = %d, %v", n, err)
	}
}

func TestWrongDigestLeavesNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	id, _ := s.StartUpload()
	_, _ = s.AppendUpload(id, 0, strings.NewReader("hello"))
	wrong := digest.FromString("world")
	_, err := s.CommitUpload(id, wrong)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("CommitUpload: %v, want ErrDigestMismatch", err)
	}
	for _, d := range []digest.Digest{wrong, digest.FromString("hello")} {
		if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat(%s): %v, want ErrNotFound", d, err)
		}
		if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
			t.Errorf("Info(%s): %v, want ErrNotFound", d, err)
		}
	}
	for _, dir := range []string{uploadsDir, blobsDir, infoDir} {
		if left := dirEntries(t, s, dir); len(left) != 0 {
			t.Errorf("%s holds %v", dir, left)
		}
	}
	if _, err := s.UploadSize(id); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("upload kept after a mismatch: %v", err)
	}
}

func TestCommitIdempotent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := []byte("the same blob twice")
	d := digest.FromBytes(data)
	var results []metainfo.Result
	for range 2 {
		id, _ := s.StartUpload()
		_, _ = s.AppendUpload(id, 0, bytes.NewReader(data))
		res, err := s.CommitUpload(id, d)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	if results[0].InfoHash != results[1].InfoHash {
		t.Fatal("second commit returned another info")
	}
	checkCommitted(t, s, data, results[1])
	if left := dirEntries(t, s, uploadsDir); len(left) != 0 {
		t.Fatalf("uploads left: %v", left)
	}
	if _, err := s.CommitUpload("0123456789abcdef0123456789abcdef", d); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("commit of an unknown upload: %v", err)
	}
}

func TestIngest(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randomBytes(70<<20, 2)
	res, err := s.Ingest(digest.FromBytes(data), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	checkCommitted(t, s, data, res)
	info, _, _ := metainfo.Parse(res.InfoBytes)
	if info.PieceLength != metainfo.PieceLength(int64(len(data))) {
		t.Fatalf("piece length %d", info.PieceLength)
	}
	// Already there: the stream is not read, the same info comes back.
	again, err := s.Ingest(digest.FromBytes(data), iotest.ErrReader(errors.New("must not be read")))
	if err != nil || again.InfoHash != res.InfoHash {
		t.Fatalf("second Ingest = %v", err)
	}
}

func TestIngestMismatchAndReadError(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	if _, err := s.Ingest(digest.FromString("b"), strings.NewReader("a")); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Ingest: %v, want ErrDigestMismatch", err)
	}
	r := io.MultiReader(strings.NewReader("a"), iotest.ErrReader(errors.New("backend broke")))
	if _, err := s.Ingest(digest.FromString("a"), r); err == nil {
		t.Fatal("Ingest of a broken stream succeeded")
	}
	for _, dir := range []string{uploadsDir, blobsDir, infoDir} {
		if left := dirEntries(t, s, dir); len(left) != 0 {
			t.Errorf("%s holds %v", dir, left)
		}
	}
}

func TestConcurrentCommitsOfOneDigest(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randomBytes(2<<20, 3)
	d := digest.FromBytes(data)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	results := make([]metainfo.Result, n)
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				results[i], errs[i] = s.Ingest(d, bytes.NewReader(data))
				return
			}
			id, err := s.StartUpload()
			if err == nil {
				_, err = s.AppendUpload(id, 0, bytes.NewReader(data))
			}
			if err == nil {
				results[i], err = s.CommitUpload(id, d)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		if results[i].InfoHash != results[0].InfoHash {
			t.Fatalf("commit %d: other info", i)
		}
	}
	checkCommitted(t, s, data, results[0])
	if left := dirEntries(t, s, uploadsDir); len(left) != 0 {
		t.Fatalf("uploads left: %v", left)
	}
}

func TestConcurrentAppendsToOneUpload(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	id, _ := s.StartUpload()
	const n = 16
	var wg sync.WaitGroup
	ok := make(chan struct{}, n)
	for range n {
		wg.Go(func() {
			if _, err := s.AppendUpload(id, 0, strings.NewReader("abc")); err == nil {
				ok <- struct{}{}
			}
		})
	}
	wg.Wait()
	if len(ok) != 1 {
		t.Fatalf("%d appends at offset 0 succeeded, want 1", len(ok))
	}
	if size, _ := s.UploadSize(id); size != 3 {
		t.Fatalf("size %d, want 3", size)
	}
}

func TestPartial(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randomBytes(1<<20, 4)
	d := digest.FromBytes(data)
	f, err := s.OpenPartial(d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Written out of order, as pieces arrive.
	half := len(data) / 2
	if _, err := f.WriteAt(data[half:], int64(half)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a partial blob is visible: %v", err)
	}
	if _, err := f.WriteAt(data[:half], 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitPartial(d); err != nil {
		t.Fatal(err)
	}
	if size, err := s.Stat(d); err != nil || size != int64(len(data)) {
		t.Fatalf("Stat = %d, %v", size, err)
	}
	// The open descriptor keeps reading the committed data.
	got := make([]byte, 10)
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data[:10]) {
		t.Fatalf("read through the partial descriptor: %v", err)
	}
	if left := dirEntries(t, s, partialDir); len(left) != 0 {
		t.Fatalf("partial left: %v", left)
	}
}

func TestPartialMismatch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	d := digest.FromString("expected")
	f, err := s.OpenPartial(d, 8)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteAt([]byte("received"), 0)
	f.Close()
	if err := s.CommitPartial(d); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("CommitPartial: %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat: %v", err)
	}
	if left := dirEntries(t, s, partialDir); len(left) != 0 {
		t.Fatalf("partial left: %v", left)
	}
	if err := s.CommitPartial(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CommitPartial without a partial: %v", err)
	}
	if err := s.RemovePartial(d); err != nil {
		t.Fatalf("RemovePartial of nothing: %v", err)
	}
}

func TestInfo(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	res, _ := metainfo.Generate(strings.NewReader("blob"), metainfo.PieceLength(4))
	if _, err := s.Info(res.Digest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Info: %v", err)
	}
	if err := s.PutInfo(digest.FromString("other"), res.InfoBytes); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("PutInfo under another digest: %v", err)
	}
	if err := s.PutInfo(res.Digest, []byte("garbage")); !errors.Is(err, metainfo.ErrInvalid) {
		t.Fatalf("PutInfo of garbage: %v", err)
	}
	if err := s.PutInfo(res.Digest, res.InfoBytes); err != nil {
		t.Fatal(err)
	}
	got, err := s.Info(res.Digest)
	if err != nil || !bytes.Equal(got, res.InfoBytes) {
		t.Fatalf("Info = %v", err)
	}
}

func TestInvalidDigests(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for _, d := range []digest.Digest{"", "sha256:../../../etc/passwd", "sha512:" + digest.Digest(strings.Repeat("a", 128)), "sha256:ABC"} {
		if s.BlobPath(d) != "" {
			t.Errorf("BlobPath(%q) = %q", d, s.BlobPath(d))
		}
		if _, err := s.Stat(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Stat(%q): %v", d, err)
		}
		if _, err := s.Open(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Open(%q): %v", d, err)
		}
		if _, err := s.OpenPartial(d, 1); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("OpenPartial(%q): %v", d, err)
		}
	}
}

func TestExistingInfoRegenerated(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := []byte("lost info")
	d := digest.FromBytes(data)
	res, err := s.Ingest(d, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.infoPath(d)); err != nil {
		t.Fatal(err)
	}
	again, err := s.Ingest(d, bytes.NewReader(data))
	if err != nil || again.InfoHash != res.InfoHash {
		t.Fatalf("Ingest = %v", err)
	}
	if _, err := s.Info(d); err != nil {
		t.Fatalf("info not rewritten: %v", err)
	}
}
