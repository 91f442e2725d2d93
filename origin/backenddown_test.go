package main

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/originclient"
)

// downBackend is a backend that cannot be reached.
type downBackend struct{ backend.Backend }

var errUnreachable = errors.New("dial tcp 127.0.0.1:7070: connect: connection refused")

func (downBackend) Stat(context.Context, string) (backend.Info, error) {
	return backend.Info{}, errUnreachable
}
func (downBackend) Download(context.Context, string, io.Writer) error { return errUnreachable }
func (downBackend) Upload(context.Context, string, io.Reader) error   { return errUnreachable }

// With the backend down, a HEAD of a blob not held here is a miss, so a pusher uploads
// it (accepted, queued for write-back) instead of failing; reads of it still fail, and
// are not misses.
func TestBackendDownHeadIsAMissAndPushIsAccepted(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	o.srv.backend = downBackend{o.be}
	ctx := t.Context()
	d := digest.FromString("maybe in the backend, which is down")
	if _, err := o.c.Stat(ctx, d); !errors.Is(err, originclient.ErrNotFound) {
		t.Errorf("HEAD with the backend down: %v, want ErrNotFound", err)
	}
	if err := o.c.Download(ctx, d, io.Discard); err == nil || errors.Is(err, originclient.ErrNotFound) {
		t.Errorf("GET with the backend down: %v, want an error other than ErrNotFound", err)
	}
	if _, err := o.c.Metainfo(ctx, d); err == nil || errors.Is(err, originclient.ErrNotFound) {
		t.Errorf("metainfo with the backend down: %v, want an error other than ErrNotFound", err)
	}

	data := randomBytes(40<<10, 11)
	pushed := o.upload(t, data)
	if size, err := o.c.Stat(ctx, pushed); err != nil || size != int64(len(data)) {
		t.Fatalf("HEAD of the pushed blob: %d, %v", size, err)
	}
	if n, err := o.srv.tasks.Len(); err != nil || n != 1 {
		t.Fatalf("%d tasks pending (%v), want the write-back", n, err)
	}
}
