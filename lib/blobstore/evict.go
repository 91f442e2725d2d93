package blobstore

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// Entry describes a committed blob for eviction decisions.
type Entry struct {
	Digest digest.Digest
	Size   int64
	// Created is when the blob was committed (its file's modification time).
	Created time.Time
	// LastAccess is when it was last opened for reading (its file's access time,
	// which Open sets explicitly, so noatime mounts do not matter).
	LastAccess time.Time
}

// Entries lists every committed blob with its size and times.
func (s *Store) Entries() ([]Entry, error) {
	ds, err := s.List()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(ds))
	for _, d := range ds {
		fi, err := os.Stat(s.BlobPath(d))
		if err != nil {
			continue // removed meanwhile
		}
		e := Entry{Digest: d, Size: fi.Size(), Created: fi.ModTime(), LastAccess: fi.ModTime()}
		if at, ok := accessTime(fi); ok && at.After(e.LastAccess) {
			e.LastAccess = at
		}
		out = append(out, e)
	}
	return out, nil
}

// touch records a read of d's file: its access time becomes now, its modification
// time (the commit time) stays.
func (s *Store) touch(path string, fi os.FileInfo) {
	_ = os.Chtimes(path, time.Now(), fi.ModTime())
}

// Remove deletes the committed blob d and its metainfo. Removing a missing blob is
// not an error. The caller makes sure nothing serves d meanwhile.
func (s *Store) Remove(d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return fmt.Errorf("blobstore remove: %w", err)
	}
	for _, p := range []string{s.BlobPath(d), s.infoPath(d)} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("blobstore remove %s: %w", d, err)
		}
	}
	return syncDir(filepath.Dir(s.BlobPath(d)))
}
