package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/blobstore"
)

// TestExpireUploads: an upload session left alone for upload_ttl is removed by the
// origin's loop and counted; the loop stops with its context.
func TestExpireUploads(t *testing.T) {
	dir := t.TempDir()
	store, err := blobstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := store.StartUpload()
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "uploads", id), old, old); err != nil {
		t.Fatal(err)
	}
	scope := tally.NewTestScope("", nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- expireUploads(ctx, store, 40*time.Millisecond, zap.NewNop(), scope) }()
	deadline := time.Now().Add(10 * time.Second) // a hang guard, not a speed target
	for {
		if _, err := store.UploadSize(id); errors.Is(err, blobstore.ErrUploadUnknown) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("abandoned upload still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := scope.Snapshot().Counters()["uploads_expired+"]; c == nil || c.Value() != 1 {
		t.Errorf("uploads_expired = %v, want 1", c)
	}
}

func TestUploadTTLValidated(t *testing.T) {
	c := DefaultConfig()
	c.UploadTTL = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "upload_ttl") {
		t.Errorf("Validate = %v, want upload_ttl named", err)
	}
}
