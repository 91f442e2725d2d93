package blobstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
)

// Quarantine moves the committed blob d out of blobs/ into quarantine/, for an
// operator to inspect: its bytes were found not to match its metainfo (bit rot, a bad
// disk, a hand edit). d is then a miss, fetched again by whoever needs it; its
// metainfo stays, being what the bytes must match. Open files of d keep reading the
// quarantined copy, so callers stop serving from them. Only the file seen is moved
// (seen is its FileInfo, from Stat of an open file; nil: whatever d's file is), so a
// good copy committed since a reader found the bad one stays. A blob already gone is
// not an error.
func (s *Store) Quarantine(d digest.Digest, seen os.FileInfo) error {
	if err := checkDigest(d); err != nil {
		return fmt.Errorf("blobstore quarantine: %w", err)
	}
	if seen != nil {
		fi, err := os.Stat(s.BlobPath(d))
		if err != nil || !os.SameFile(fi, seen) {
			return nil // gone, or replaced by another copy
		}
	}
	dst := filepath.Join(s.root, quarantineDir, d.Encoded()+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := os.Rename(s.BlobPath(d), dst); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("blobstore quarantine %s: %w", d, err)
	}
	return syncDir(filepath.Dir(s.BlobPath(d)))
}

// Quarantined returns the paths of d's quarantined copies.
func (s *Store) Quarantined(d digest.Digest) ([]string, error) {
	if err := checkDigest(d); err != nil {
		return nil, fmt.Errorf("blobstore quarantined: %w", err)
	}
	return filepath.Glob(filepath.Join(s.root, quarantineDir, d.Encoded()+".*"))
}
