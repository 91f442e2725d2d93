package blobstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/opencontainers/go-digest"
)

// Partial files are written at random offsets by the P2P engine, piece by piece, while
// it tracks which pieces are verified. The store does not track pieces: it only gives
// the file out and commits it once the engine says it is whole.

// ErrNoSpace marks a partial file whose disk space could not be reserved.
var ErrNoSpace = errors.New("not enough free disk space for the blob")

// OpenPartial creates (or truncates) the partial file of blob d at size bytes and opens
// it for reading and writing. Its blocks are reserved at once (fallocate where the
// filesystem has it): a disk too full for the blob fails here, with an error wrapping
// ErrNoSpace and nothing left behind, not halfway through a download whose client
// already has its answer's headers. The caller must use one partial file per digest
// at a time.
func (s *Store) OpenPartial(d digest.Digest, size int64) (*os.File, error) {
	if err := checkDigest(d); err != nil {
		return nil, fmt.Errorf("blobstore open partial: %w", err)
	}
	if size < 0 {
		return nil, fmt.Errorf("blobstore open partial %s: negative size %d", d, size)
	}
	f, err := os.OpenFile(s.partialPath(d), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("blobstore open partial %s: %w", d, err)
	}
	if err := reserve(f, size); err != nil {
		f.Close()
		_ = os.Remove(s.partialPath(d))
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w (%d bytes under %s): %w", ErrNoSpace, size, s.root, err)
		}
		return nil, fmt.Errorf("blobstore open partial %s: %w", d, err)
	}
	return f, nil
}

// CommitPartial hashes the partial file of blob d and, if it matches d, syncs it and
// renames it into blobs/. On a mismatch the partial file is deleted and the error wraps
// ErrDigestMismatch. If d is already committed, the partial file is dropped. File
// descriptors open on the partial file stay valid either way.
func (s *Store) CommitPartial(d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return fmt.Errorf("blobstore commit partial: %w", err)
	}
	path := s.partialPath(d)
	got, err := sha256File(path)
	if err != nil {
		return fmt.Errorf("blobstore commit partial %s: %w", d, notFound(err))
	}
	if got != d {
		_ = os.Remove(path)
		return fmt.Errorf("blobstore commit partial %s: data hashes to %s: %w", d, got, ErrDigestMismatch)
	}
	if err := s.commitPartial(path, d); err != nil {
		return fmt.Errorf("blobstore commit partial %s: %w", d, err)
	}
	return nil
}

func (s *Store) commitPartial(path string, d digest.Digest) error {
	if _, err := os.Stat(s.BlobPath(d)); err == nil {
		return os.Remove(path)
	}
	if err := syncFile(path); err != nil {
		return err
	}
	if err := os.Rename(path, s.BlobPath(d)); err != nil {
		return err
	}
	return syncDir(filepath.Join(s.root, blobsDir))
}

// RemovePartial deletes the partial file of blob d, if any.
func (s *Store) RemovePartial(d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return fmt.Errorf("blobstore remove partial: %w", err)
	}
	if err := os.Remove(s.partialPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobstore remove partial %s: %w", d, err)
	}
	return nil
}

func sha256File(path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))), nil
}
