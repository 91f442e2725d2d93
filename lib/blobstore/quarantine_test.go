package blobstore

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestQuarantine(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randomBytes(1<<20, 7)
	res, err := s.Ingest(digest.FromBytes(data), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	d := res.Digest
	f, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := f.Stat()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Quarantine(d, seen); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("quarantined blob: Stat %v, want ErrNotFound", err)
	}
	if _, err := s.Info(d); err != nil {
		t.Errorf("metainfo gone with the quarantined blob: %v", err)
	}
	paths, err := s.Quarantined(d)
	if err != nil || len(paths) != 1 {
		t.Fatalf("quarantined copies %v, %v", paths, err)
	}
	if b, err := os.ReadFile(paths[0]); err != nil || !bytes.Equal(b, data) {
		t.Error("quarantined copy differs")
	}
	if err := s.Quarantine(d, nil); err != nil {
		t.Errorf("quarantine of a missing blob: %v", err)
	}
	// Fetched again, the blob is served as before, and a late report about the bad
	// copy leaves the good one alone.
	if _, err := s.Ingest(d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Quarantine(d, seen); err != nil {
		t.Fatal(err)
	}
	checkCommitted(t, s, data, res)
}
