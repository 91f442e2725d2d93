package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

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
	d, res := putInBackend(t, o, data)

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
	waitStored(t, o, d, int64(len(data)))
}

// halfGatedBackend sends the first half of every blob download at once and holds the
// rest until gate is closed.
type halfGatedBackend struct {
	backend.Backend
	gate <-chan struct{}
}

func (g *halfGatedBackend) Download(ctx context.Context, name string, w io.Writer) error {
	if _, ok := backend.ParseBlobName(name); !ok {
		return g.Backend.Download(ctx, name, w)
	}
	var buf bytes.Buffer
	if err := g.Backend.Download(ctx, name, &buf); err != nil {
		return err
	}
	half := buf.Len() / 2
	if _, err := w.Write(buf.Bytes()[:half]); err != nil {
		return err
	}
	<-g.gate
	_, err := w.Write(buf.Bytes()[half:])
	return err
}

// A cold origin serves a range of a blob as soon as the fill from the backend has
// verified it, while the rest is still on its way (agents pull pieces of cold blobs
// this way), and the whole blob once the fill goes on.
func TestColdRangeServedWhileFilling(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	gb := &halfGatedBackend{gate: gate}
	o := newOriginWith(t, func(be backend.Backend) backend.Backend { gb.Backend = be; return gb })
	t.Cleanup(release) // runs before the origin's cleanups

	ctx := t.Context()
	data := randomBytes(4<<20+321, 23)
	d, _ := putInBackend(t, o, data)

	const n = 100 << 10
	got := make(chan []byte, 1)
	go func() {
		b, err := readRange(ctx, o, d, 1000, n)
		if err != nil {
			t.Errorf("range of the first half: %v", err)
		}
		got <- b
	}()
	select {
	case b := <-got:
		if !bytes.Equal(b, data[1000:1000+n]) {
			t.Fatal("range differs from the backend's bytes")
		}
	case <-time.After(fillTestTimeout): // a hang guard, not a timing assertion
		release()
		t.Fatal("range of the first half waited for the whole blob")
	}
	if _, err := o.store.Stat(d); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("blob committed before its second half was released: %v", err)
	}
	release()
	if b := o.download(t, d); !bytes.Equal(b, data) {
		t.Fatal("downloaded bytes differ from the backend's")
	}
	waitStored(t, o, d, int64(len(data)))
}

// putInBackend puts data and its info sidecar into o's backend only, as a blob the
// origin does not hold.
func putInBackend(t *testing.T, o *testOrigin, data []byte) (digest.Digest, metainfo.Result) {
	t.Helper()
	d := digest.FromBytes(data)
	res, err := metainfo.Generate(bytes.NewReader(data), metainfo.PieceLength(int64(len(data))))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.be.Upload(t.Context(), backend.BlobName(d), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := o.be.Upload(t.Context(), backend.BlobInfoName(d), bytes.NewReader(res.InfoBytes)); err != nil {
		t.Fatal(err)
	}
	return d, res
}

// fillTestTimeout bounds waits for fills; it is a hang guard, not an assertion.
const fillTestTimeout = 20 * time.Second

func readRange(ctx context.Context, o *testOrigin, d digest.Digest, off, n int64) ([]byte, error) {
	body, err := o.c.ReadRange(ctx, d, off, n)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

// waitStored waits for the fill of d to commit it: a download streamed from the fill
// ends with its last byte, the commit's whole-blob check just after.
func waitStored(t *testing.T, o *testOrigin, d digest.Digest, size int64) {
	t.Helper()
	deadline := time.Now().Add(fillTestTimeout)
	for {
		n, err := o.store.Stat(d)
		if err == nil && n == size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store stat after the fill: %d, %v", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
