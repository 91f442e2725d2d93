// Package blobstore is the content-addressed store on disk that origins upload into
// and agents download into.
//
// Layout:
//
//	<root>/
//	  blobs/sha256/<hex>    committed blob, immutable, named by digest
//	  info/sha256/<hex>     bencoded torrent info dictionary for the blob
//	  uploads/<id>          upload in progress (origin)
//	  partial/sha256/<hex>  P2P download in progress (agent)
//	  quarantine/sha256/<hex>.<unix nanoseconds>
//	                        a committed blob found corrupt on disk (Quarantine), kept
//	                        for inspection, never served
//
// Invariants: a file appears in blobs/ only by an atomic rename, after its sha256 was
// checked against its name and its data was synced, so a committed blob is always
// complete and correct. Commits of uploads write the info file before the blob; a P2P
// download has its info stored (PutInfo) before it starts. Files in uploads/ and
// partial/ are never served; leftovers of a crash there are kept.
//
// Every method is safe for concurrent use. Digests must be sha256; any other digest is
// rejected with an error wrapping ErrInvalidDigest.
package blobstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// Sentinel errors; errors returned by Store wrap them with the operation and object.
var (
	// ErrNotFound: no committed blob (or info) for the digest.
	ErrNotFound = errors.New("blob not found")
	// ErrDigestMismatch: the bytes do not hash to the digest they were committed as.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrUploadUnknown: no upload in progress with that id.
	ErrUploadUnknown = errors.New("upload unknown")
	// ErrOffsetMismatch: an append did not start at the upload's current size.
	ErrOffsetMismatch = errors.New("upload offset mismatch")
	// ErrInvalidDigest: the digest is malformed or not sha256.
	ErrInvalidDigest = errors.New("invalid digest")
)

const (
	blobsDir   = "blobs/sha256"
	infoDir    = "info/sha256"
	uploadsDir = "uploads"
	partialDir = "partial/sha256"
	// quarantineDir holds committed blobs found not to match their metainfo.
	quarantineDir = "quarantine/sha256"
)

// Store is a content-addressed blob store rooted at a directory.
type Store struct {
	root string
	// uploadLocks serialize appends, size checks and the commit claim of one upload.
	// Striped by id: bounded memory, and unrelated uploads rarely share a stripe.
	uploadLocks [64]sync.Mutex
}

// New opens the store at root, creating its directories.
func New(root string) (*Store, error) {
	for _, dir := range []string{blobsDir, infoDir, uploadsDir, partialDir, quarantineDir} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return nil, fmt.Errorf("blobstore open %s: %w", root, err)
		}
	}
	return &Store{root: root}, nil
}

func checkDigest(d digest.Digest) error {
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("%w: %q is not a sha256 digest", ErrInvalidDigest, d)
	}
	return nil
}

// BlobPath returns where the committed blob d lives (or would live), or "" if d is not
// a valid sha256 digest.
func (s *Store) BlobPath(d digest.Digest) string {
	if checkDigest(d) != nil {
		return ""
	}
	return filepath.Join(s.root, blobsDir, d.Encoded())
}

func (s *Store) infoPath(d digest.Digest) string {
	return filepath.Join(s.root, infoDir, d.Encoded())
}

func (s *Store) partialPath(d digest.Digest) string {
	return filepath.Join(s.root, partialDir, d.Encoded())
}

// Stat returns the size of the committed blob d, or ErrNotFound.
func (s *Store) Stat(d digest.Digest) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, fmt.Errorf("blobstore stat: %w", err)
	}
	fi, err := os.Stat(s.BlobPath(d))
	if err != nil {
		return 0, fmt.Errorf("blobstore stat %s: %w", d, notFound(err))
	}
	return fi.Size(), nil
}

// Open opens the committed blob d for reading, or returns ErrNotFound.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	if err := checkDigest(d); err != nil {
		return nil, fmt.Errorf("blobstore open: %w", err)
	}
	f, err := os.Open(s.BlobPath(d))
	if err != nil {
		return nil, fmt.Errorf("blobstore open %s: %w", d, notFound(err))
	}
	if fi, err := f.Stat(); err == nil {
		s.touch(f.Name(), fi)
	}
	return f, nil
}

// List returns the digests of all committed blobs, sorted.
func (s *Store) List() ([]digest.Digest, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, blobsDir))
	if err != nil {
		return nil, fmt.Errorf("blobstore list: %w", err)
	}
	var out []digest.Digest
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if e.Type().IsRegular() && checkDigest(d) == nil {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Info returns the bencoded torrent info of blob d, or ErrNotFound.
func (s *Store) Info(d digest.Digest) ([]byte, error) {
	if err := checkDigest(d); err != nil {
		return nil, fmt.Errorf("blobstore info: %w", err)
	}
	b, err := os.ReadFile(s.infoPath(d))
	if err != nil {
		return nil, fmt.Errorf("blobstore info %s: %w", d, notFound(err))
	}
	return b, nil
}

// PutInfo stores the torrent info of blob d (e.g. as handed out by the tracker), after
// checking that it is a blob's info naming d. The blob itself need not be present.
func (s *Store) PutInfo(d digest.Digest, infoBytes []byte) error {
	if err := checkDigest(d); err != nil {
		return fmt.Errorf("blobstore put info: %w", err)
	}
	info, _, err := metainfo.Parse(infoBytes)
	if err != nil {
		return fmt.Errorf("blobstore put info %s: %w", d, err)
	}
	if got, _ := metainfo.DigestOf(info); got != d {
		return fmt.Errorf("blobstore put info %s: info names %s: %w", d, got, ErrDigestMismatch)
	}
	if err := writeFileAtomic(s.infoPath(d), infoBytes); err != nil {
		return fmt.Errorf("blobstore put info %s: %w", d, err)
	}
	return nil
}

// commit moves the verified file at path into blobs/ as d, after writing d's info.
// If d is already committed, path is removed and the existing blob kept.
func (s *Store) commit(path string, res metainfo.Result) (metainfo.Result, error) {
	d := res.Digest
	if _, err := os.Stat(s.BlobPath(d)); err == nil {
		_ = os.Remove(path)
		return s.existing(d)
	}
	if err := syncFile(path); err != nil {
		return metainfo.Result{}, err
	}
	if err := writeFileAtomic(s.infoPath(d), res.InfoBytes); err != nil {
		return metainfo.Result{}, err
	}
	if err := os.Rename(path, s.BlobPath(d)); err != nil {
		return metainfo.Result{}, err
	}
	if err := syncDir(filepath.Join(s.root, blobsDir)); err != nil {
		return metainfo.Result{}, err
	}
	return res, nil
}

// existing returns the Result of committed blob d from its info file, regenerating the
// info if it is missing or unreadable.
func (s *Store) existing(d digest.Digest) (metainfo.Result, error) {
	if b, err := os.ReadFile(s.infoPath(d)); err == nil {
		if res, err := metainfo.ResultOf(b); err == nil && res.Digest == d {
			return res, nil
		}
	}
	f, err := s.Open(d)
	if err != nil {
		return metainfo.Result{}, err
	}
	defer f.Close()
	res, err := generate(f)
	if err != nil {
		return metainfo.Result{}, err
	}
	if err := writeFileAtomic(s.infoPath(d), res.InfoBytes); err != nil {
		return metainfo.Result{}, err
	}
	return res, nil
}

// generate hashes f from its start, with the piece length its size calls for.
func generate(f *os.File) (metainfo.Result, error) {
	fi, err := f.Stat()
	if err != nil {
		return metainfo.Result{}, err
	}
	return metainfo.Generate(io.NewSectionReader(f, 0, fi.Size()), metainfo.PieceLength(fi.Size()))
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (s *Store) lockUpload(id string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	mu := &s.uploadLocks[h.Sum32()%uint32(len(s.uploadLocks))]
	mu.Lock()
	return mu.Unlock
}

// writeFileAtomic writes b to path through a synced temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
