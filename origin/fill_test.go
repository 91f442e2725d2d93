package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// The write-back uploads the blob's torrent info next to it.
func TestWriteBackUploadsInfoSidecar(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	data := randomBytes(300<<10, 21)
	d := o.upload(t, data)
	if got := o.backendBytes(t, d); !bytes.Equal(got, data) {
		t.Fatal("backend blob differs")
	}
	want, err := o.store.Info(d)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := o.be.Download(t.Context(), backend.BlobInfoName(d), &buf); err != nil {
		t.Fatalf("info sidecar: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("info sidecar differs from the stored info")
	}
}

// gatedBackend holds every Download of a blob's data until gate is closed.
type gatedBackend struct {
	backend.Backend
	gate    <-chan struct{}
	started chan struct{} // receives once a blob download is waiting
}

func (g *gatedBackend) Download(ctx context.Context, name string, w io.Writer) error {
	if _, ok := backend.ParseBlobName(name); ok {
		select {
		case g.started <- struct{}{}:
		default:
		}
		<-g.gate
	}
	return g.Backend.Download(ctx, name, w)
}

// A cold origin answers metainfo from the backend's sidecar while the blob itself is
// still downloading, and holds the blob once the download goes on.
func TestColdMetainfoFromSidecar(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	gb := &gatedBackend{gate: gate, started: make(chan struct{}, 1)}
	o := newOriginWith(t, func(be backend.Backend) backend.Backend { gb.Backend = be; return gb })
	t.Cleanup(release) // runs before the origin's cleanups

	ctx := t.Context()
	data := randomBytes(3<<20+123, 22)
	d := digest.FromBytes(data)
	res, err := metainfo.Generate(bytes.NewReader(data), metainfo.PieceLength(int64(len(data))))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.be.Upload(ctx, backend.BlobName(d), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := o.be.Upload(ctx, backend.BlobInfoName(d), bytes.NewReader(res.InfoBytes)); err != nil {
		t.Fatal(err)
	}

	got, err := o.c.Metainfo(ctx, d)
	if err != nil {
		t.Fatalf("metainfo while the blob download is held: %v", err)
	}
	if !bytes.Equal(got, res.InfoBytes) {
		t.Fatal("metainfo differs from the sidecar")
	}
	<-gb.started // the fill is under way, held by the backend
	if _, err := o.store.Stat(d); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("blob committed before its download was released: %v", err)
	}

	release()
	if got := o.download(t, d); !bytes.Equal(got, data) {
		t.Fatal("downloaded bytes differ from the backend's")
	}
	if n, err := o.store.Stat(d); err != nil || n != int64(len(data)) {
		t.Fatalf("store stat after the fill: %d, %v", n, err)
	}
}
