package blobstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// An upload id is 32 lowercase hex characters, so it is safe as a path component.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (s *Store) uploadPath(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("upload %q: %w", id, ErrUploadUnknown)
	}
	return filepath.Join(s.root, uploadsDir, id), nil
}

// StartUpload creates an empty upload and returns its id.
func (s *Store) StartUpload() (string, error) {
	id, err := randomID()
	if err != nil {
		return "", fmt.Errorf("blobstore start upload: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.root, uploadsDir, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("blobstore start upload: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("blobstore start upload: %w", err)
	}
	return id, nil
}

// UploadSize returns how many bytes upload id holds, or ErrUploadUnknown.
func (s *Store) UploadSize(id string) (int64, error) {
	path, err := s.uploadPath(id)
	if err != nil {
		return 0, fmt.Errorf("blobstore upload size: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("blobstore upload size %s: %w", id, unknownUpload(err))
	}
	return fi.Size(), nil
}

// AppendUpload writes r at offset, which must be the upload's current size (else
// ErrOffsetMismatch and nothing is written), and returns the new size. If r fails
// midway, the bytes received so far are kept and counted in the returned size, so a
// client can resume from UploadSize.
func (s *Store) AppendUpload(id string, offset int64, r io.Reader) (int64, error) {
	path, err := s.uploadPath(id)
	if err != nil {
		return 0, fmt.Errorf("blobstore append: %w", err)
	}
	defer s.lockUpload(id)()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("blobstore append %s: %w", id, unknownUpload(err))
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("blobstore append %s: %w", id, err)
	}
	if size != offset {
		return size, fmt.Errorf("blobstore append %s: offset %d, upload holds %d bytes: %w", id, offset, size, ErrOffsetMismatch)
	}
	n, err := io.Copy(f, r)
	if err != nil {
		return size + n, fmt.Errorf("blobstore append %s: %w", id, err)
	}
	return size + n, nil
}

// CancelUpload discards upload id, or returns ErrUploadUnknown.
func (s *Store) CancelUpload(id string) error {
	path, err := s.uploadPath(id)
	if err != nil {
		return fmt.Errorf("blobstore cancel: %w", err)
	}
	defer s.lockUpload(id)()
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("blobstore cancel %s: %w", id, unknownUpload(err))
	}
	return nil
}

// CommitUpload checks that upload id hashes to want and commits it as blob want, with
// its torrent info, in one pass over the data. On a mismatch the upload is deleted,
// nothing is stored and the error wraps ErrDigestMismatch. If want is already
// committed, the upload is dropped and the existing blob's info returned.
func (s *Store) CommitUpload(id string, want digest.Digest) (metainfo.Result, error) {
	if err := checkDigest(want); err != nil {
		return metainfo.Result{}, fmt.Errorf("blobstore commit %s: %w", id, err)
	}
	path, err := s.claim(id)
	if err != nil {
		return metainfo.Result{}, fmt.Errorf("blobstore commit %s: %w", id, err)
	}
	res, err := s.commitFile(path, want)
	if err != nil {
		return metainfo.Result{}, fmt.Errorf("blobstore commit %s as %s: %w", id, want, err)
	}
	return res, nil
}

// claim renames upload id out of reach of appends and other commits, so the long hash
// pass runs without holding the upload's lock.
func (s *Store) claim(id string) (string, error) {
	path, err := s.uploadPath(id)
	if err != nil {
		return "", err
	}
	defer s.lockUpload(id)()
	claimed := path + ".committing"
	if err := os.Rename(path, claimed); err != nil {
		return "", unknownUpload(err)
	}
	return claimed, nil
}

// commitFile verifies the file at path against want and commits it, deleting it on any
// failure.
func (s *Store) commitFile(path string, want digest.Digest) (metainfo.Result, error) {
	res, err := hashFile(path)
	if err != nil {
		_ = os.Remove(path)
		return metainfo.Result{}, err
	}
	if res.Digest != want {
		_ = os.Remove(path)
		return metainfo.Result{}, fmt.Errorf("data hashes to %s: %w", res.Digest, ErrDigestMismatch)
	}
	res, err = s.commit(path, res)
	if err != nil {
		_ = os.Remove(path)
		return metainfo.Result{}, err
	}
	return res, nil
}

func hashFile(path string) (metainfo.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return metainfo.Result{}, err
	}
	defer f.Close()
	return generate(f)
}

// Ingest stores the blob read from r as want, like an upload committed in one go (used
// when fetching from a backend or an origin). On a mismatch nothing is stored and the
// error wraps ErrDigestMismatch. If want is already committed, r is not read.
func (s *Store) Ingest(want digest.Digest, r io.Reader) (metainfo.Result, error) {
	if err := checkDigest(want); err != nil {
		return metainfo.Result{}, fmt.Errorf("blobstore ingest: %w", err)
	}
	if _, err := s.Stat(want); err == nil {
		return s.existing(want) // r is not read
	}
	id, err := s.StartUpload()
	if err != nil {
		return metainfo.Result{}, fmt.Errorf("blobstore ingest %s: %w", want, err)
	}
	if _, err := s.AppendUpload(id, 0, r); err != nil {
		_ = s.CancelUpload(id)
		return metainfo.Result{}, fmt.Errorf("blobstore ingest %s: %w", want, err)
	}
	res, err := s.CommitUpload(id, want)
	if err != nil {
		return metainfo.Result{}, fmt.Errorf("blobstore ingest: %w", err)
	}
	return res, nil
}

func unknownUpload(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrUploadUnknown
	}
	return err
}

// ExpireUploads removes the uploads nothing was written to since before, abandoned
// sessions (a client that started a push and went away), and returns how many. An
// upload being appended to or committed is never removed: each is checked again
// under its lock.
func (s *Store) ExpireUploads(before time.Time) (int, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, uploadsDir))
	if err != nil {
		return 0, fmt.Errorf("blobstore expire uploads: %w", err)
	}
	removed := 0
	for _, e := range entries {
		id := e.Name()
		if !validID(id) {
			continue
		}
		ok, err := s.expireUpload(id, before)
		if err != nil {
			return removed, fmt.Errorf("blobstore expire upload %s: %w", id, err)
		}
		if ok {
			removed++
		}
	}
	return removed, nil
}

func (s *Store) expireUpload(id string, before time.Time) (bool, error) {
	defer s.lockUpload(id)()
	path := filepath.Join(s.root, uploadsDir, id)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // committed or cancelled meanwhile
	} else if err != nil {
		return false, err
	}
	if !fi.ModTime().Before(before) {
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}
