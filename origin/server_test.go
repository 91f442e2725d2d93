package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/filesystem"
	"github.com/shoal-p2p/shoal/lib/backend/router"
	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/taskqueue"
)

// The server starts fetch goroutines, the P2P engine its client's, httptest its
// connections: all must be gone when the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testOrigin is a real origin (store, filesystem backend, P2P engine) served by
// httptest and driven through lib/originclient.
type testOrigin struct {
	c      *originclient.Client
	url    string
	hc     *http.Client
	store  *blobstore.Store
	be     *filesystem.Backend
	engine *p2p.Engine
	srv    *Server
}

func newOrigin(t *testing.T) *testOrigin {
	t.Helper()
	return newOriginWith(t, nil)
}

// newOriginWith is newOrigin with the server's backend wrap(filesystem backend), if
// wrap is given; testOrigin.be stays the filesystem backend underneath.
func newOriginWith(t *testing.T, wrap func(backend.Backend) backend.Backend) *testOrigin {
	t.Helper()
	store, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	be := newFS(t)
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.Lock(os.Stderr), zap.WarnLevel))
	engine, err := p2p.New(p2p.Config{ListenIP: "127.0.0.1"}, store, log.Named("p2p"), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := engine.Close(); err != nil {
			t.Errorf("engine close: %v", err)
		}
	})
	tasks, err := taskqueue.Open(filepath.Join(t.TempDir(), "tasks.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tasks.Close() })
	var sbe backend.Backend = be
	if wrap != nil {
		sbe = wrap(be)
	}
	srv := NewServer(store, sbe, engine, tasks, Cluster{}, log, tally.NoopScope)
	ts := httptest.NewServer(srv.Handler(nil))
	t.Cleanup(ts.Close) // runs before engine.Close
	return &testOrigin{
		c:   originclient.New(ts.URL, ts.Client()),
		url: ts.URL, hc: ts.Client(), store: store, be: be, engine: engine, srv: srv,
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// backendBytes reads d's object from the backend directly.
func (o *testOrigin) backendBytes(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	if err := o.srv.runner.RunDue(t.Context()); err != nil {
		t.Fatalf("write-back: %v", err)
	}
	var buf bytes.Buffer
	if err := o.be.Download(context.Background(), backend.BlobName(d), &buf); err != nil {
		t.Fatalf("backend download %s: %v", d, err)
	}
	return buf.Bytes()
}

func (o *testOrigin) download(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := o.c.Download(t.Context(), d, &buf); err != nil {
		t.Fatalf("download %s: %v", d, err)
	}
	return buf.Bytes()
}

// upload pushes data in one chunk and commits it.
func (o *testOrigin) upload(t *testing.T, data []byte) digest.Digest {
	t.Helper()
	return o.uploadIn(t.Context(), t, data)
}

// uploadIn uploads data with ctx's values (e.g. a namespace hint) on every request.
func (o *testOrigin) uploadIn(ctx context.Context, t *testing.T, data []byte) digest.Digest {
	t.Helper()
	id, err := o.c.StartUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.c.AppendUpload(ctx, id, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(data)
	if err := o.c.CommitUpload(ctx, id, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (o *testOrigin) storedDigests(t *testing.T) []digest.Digest {
	t.Helper()
	ds, err := o.store.List()
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestChunkedUploadIsServedAndWrittenBack(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	data := randomBytes(300<<10+7, 1)
	d := digest.FromBytes(data)
	half := int64(len(data) / 2)

	id, err := o.c.StartUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := o.c.AppendUpload(ctx, id, 0, bytes.NewReader(data[:half])); err != nil || n != half {
		t.Fatalf("first append: size %d, %v; want %d", n, err, half)
	}
	if n, err := o.c.AppendUpload(ctx, id, half, bytes.NewReader(data[half:])); err != nil || n != int64(len(data)) {
		t.Fatalf("second append: size %d, %v; want %d", n, err, len(data))
	}
	if n, err := o.c.UploadSize(ctx, id); err != nil || n != int64(len(data)) {
		t.Fatalf("upload size %d, %v; want %d", n, err, len(data))
	}
	if _, err := o.c.Stat(ctx, d); !errors.Is(err, originclient.ErrNotFound) {
		t.Fatalf("stat before commit: %v, want ErrNotFound", err)
	}
	if err := o.c.CommitUpload(ctx, id, d); err != nil {
		t.Fatal(err)
	}

	if n, err := o.c.Stat(ctx, d); err != nil || n != int64(len(data)) {
		t.Fatalf("stat: %d, %v; want %d", n, err, len(data))
	}
	if got := o.download(t, d); !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes differ from the %d uploaded", len(got), len(data))
	}
	if got := o.backendBytes(t, d); !bytes.Equal(got, data) {
		t.Fatalf("backend holds %d bytes that differ from the %d uploaded", len(got), len(data))
	}
	if _, err := o.c.UploadSize(ctx, id); !errors.Is(err, originclient.ErrUploadUnknown) {
		t.Fatalf("upload size after commit: %v, want ErrUploadUnknown", err)
	}
}

// The optional final body of PUT /uploads/{id} is appended before the commit.
func TestCommitWithFinalBody(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	data := randomBytes(10<<10, 2)
	d := digest.FromBytes(data)

	id, err := o.c.StartUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.c.AppendUpload(ctx, id, 0, bytes.NewReader(data[:100])); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, o.url+"/uploads/"+id+"?digest="+d.String(), bytes.NewReader(data[100:]))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := o.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("commit with body: %s, want 201", resp.Status)
	}
	if got := o.download(t, d); !bytes.Equal(got, data) {
		t.Fatal("downloaded bytes differ from the uploaded ones")
	}
	if got := o.backendBytes(t, d); !bytes.Equal(got, data) {
		t.Fatal("backend bytes differ from the uploaded ones")
	}
}

func TestAppendAtWrongOffset(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	id, err := o.c.StartUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.c.AppendUpload(ctx, id, 0, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 3, 6} {
		if _, err := o.c.AppendUpload(ctx, id, off, strings.NewReader("world")); !errors.Is(err, originclient.ErrOffsetMismatch) {
			t.Errorf("append at %d: %v, want ErrOffsetMismatch", off, err)
		}
	}
	if n, err := o.c.UploadSize(ctx, id); err != nil || n != 5 {
		t.Fatalf("size after bad appends: %d, %v; want 5", n, err)
	}
	// The session is still usable at the right offset.
	if n, err := o.c.AppendUpload(ctx, id, 5, strings.NewReader("world")); err != nil || n != 10 {
		t.Fatalf("append at 5: %d, %v; want 10", n, err)
	}
}

func TestCommitWithWrongDigestDiscardsEverything(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	data := randomBytes(50<<10, 3)
	right, wrong := digest.FromBytes(data), digest.FromString("something else")

	id, err := o.c.StartUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.c.AppendUpload(ctx, id, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := o.c.CommitUpload(ctx, id, wrong); !errors.Is(err, originclient.ErrDigestMismatch) {
		t.Fatalf("commit as %s: %v, want ErrDigestMismatch", wrong, err)
	}
	for _, d := range []digest.Digest{right, wrong} {
		if _, err := o.c.Stat(ctx, d); !errors.Is(err, originclient.ErrNotFound) {
			t.Errorf("stat %s: %v, want ErrNotFound", d, err)
		}
	}
	names, err := o.be.List(context.Background(), "docker/registry/v2/blobs/")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Errorf("backend holds %v after a failed commit", names)
	}
	if ds := o.storedDigests(t); len(ds) != 0 {
		t.Errorf("store holds %v after a failed commit", ds)
	}
	if _, err := o.c.UploadSize(ctx, id); !errors.Is(err, originclient.ErrUploadUnknown) {
		t.Fatalf("upload size after a failed commit: %v, want ErrUploadUnknown", err)
	}
	// A retry of the commit with the right digest finds no upload either.
	if err := o.c.CommitUpload(ctx, id, right); !errors.Is(err, originclient.ErrUploadUnknown) {
		t.Fatalf("commit after a failed commit: %v, want ErrUploadUnknown", err)
	}
}

func TestCancelUpload(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	id, err := o.c.StartUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.c.AppendUpload(ctx, id, 0, strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if err := o.c.CancelUpload(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := o.c.UploadSize(ctx, id); !errors.Is(err, originclient.ErrUploadUnknown) {
		t.Fatalf("size after cancel: %v, want ErrUploadUnknown", err)
	}
	if _, err := o.c.AppendUpload(ctx, id, 3, strings.NewReader("d")); !errors.Is(err, originclient.ErrUploadUnknown) {
		t.Fatalf("append after cancel: %v, want ErrUploadUnknown", err)
	}
	if err := o.c.CancelUpload(ctx, id); !errors.Is(err, originclient.ErrUploadUnknown) {
		t.Fatalf("second cancel: %v, want ErrUploadUnknown", err)
	}
}

func TestOpenSeeksThroughRanges(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	data := randomBytes(100<<10, 4)
	d := o.upload(t, data)

	r, size, err := o.c.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if size != int64(len(data)) {
		t.Fatalf("open: size %d, want %d", size, len(data))
	}
	mid := size / 2
	if pos, err := r.Seek(mid, io.SeekStart); err != nil || pos != mid {
		t.Fatalf("seek: %d, %v; want %d", pos, err, mid)
	}
	got := make([]byte, 1000)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[mid:mid+1000]) {
		t.Fatal("bytes read after Seek differ from the blob's")
	}
	// Back to a lower offset, then read to the end.
	if _, err := r.Seek(-2000, io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest, data[mid-1000:]) {
		t.Fatalf("read to end after seeking back: %d bytes, want %d equal ones", len(rest), len(data)-int(mid)+1000)
	}
	if pos, err := r.Seek(-10, io.SeekEnd); err != nil || pos != size-10 {
		t.Fatalf("seek from end: %d, %v", pos, err)
	}
	tail, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(tail, data[size-10:]) {
		t.Fatalf("tail: %q, %v", tail, err)
	}

	head, err := o.c.ReadRange(ctx, d, 100, 5000)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(head)
	head.Close()
	if err != nil || !bytes.Equal(got, data[100:5100]) {
		t.Fatalf("ReadRange: %d bytes, %v; want bytes 100-5099", len(got), err)
	}
	past, err := o.c.ReadRange(ctx, d, size-10, 20) // the origin sends the 10 there are
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(past); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadRange past the end: %v, want io.ErrUnexpectedEOF", err)
	}
	past.Close()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url+"/blobs/"+d.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", "bytes=10-19")
	resp, err := o.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[10:20]) {
		t.Fatalf("range GET: %s, %d bytes; want 206 and bytes 10-19", resp.Status, len(body))
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("Docker-Content-Digest %q, want %s", got, d)
	}
}

func TestMissIsFetchedFromBackend(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	data := randomBytes(70<<10, 5)
	d := digest.FromBytes(data)
	if err := o.be.Upload(ctx, backend.BlobName(d), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := o.store.Stat(d); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("store stat before: %v, want ErrNotFound", err)
	}
	if got := o.download(t, d); !bytes.Equal(got, data) {
		t.Fatal("downloaded bytes differ from the backend's")
	}
	if n, err := o.store.Stat(d); err != nil || n != int64(len(data)) {
		t.Fatalf("store stat after: %d, %v; want %d", n, err, len(data))
	}
}

// Concurrent misses of one digest all get the blob, whether they share a fetch or not.
func TestConcurrentMissesOfOneBlob(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	data := randomBytes(200<<10, 6)
	d := digest.FromBytes(data)
	if err := o.be.Upload(ctx, backend.BlobName(d), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			var buf bytes.Buffer
			if err := o.c.Download(ctx, d, &buf); err != nil {
				errs[i] = err
			} else if !bytes.Equal(buf.Bytes(), data) {
				errs[i] = errors.New("bytes differ from the backend's")
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("download %d: %v", i, err)
		}
	}
	if ds := o.storedDigests(t); len(ds) != 1 || ds[0] != d {
		t.Fatalf("store holds %v, want [%s]", ds, d)
	}
}

func TestMissEverywhereIsNotFound(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	d := digest.FromString("in neither store nor backend")
	if _, err := o.c.Stat(ctx, d); !errors.Is(err, originclient.ErrNotFound) {
		t.Errorf("stat: %v, want ErrNotFound", err)
	}
	if err := o.c.Download(ctx, d, io.Discard); !errors.Is(err, originclient.ErrNotFound) {
		t.Errorf("download: %v, want ErrNotFound", err)
	}
	if _, _, err := o.c.Open(ctx, d); !errors.Is(err, originclient.ErrNotFound) {
		t.Errorf("open: %v, want ErrNotFound", err)
	}
	if _, err := o.c.Metainfo(ctx, d); !errors.Is(err, originclient.ErrNotFound) {
		t.Errorf("metainfo: %v, want ErrNotFound", err)
	}
}

// A backend object whose bytes do not hash to its name is never served nor stored, and
// the failure is the origin's (5xx), not a digest error blamed on the caller.
func TestCorruptBackendObjectIsNotServed(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	data := randomBytes(30<<10, 7)
	d := digest.FromString("the name promises other bytes")
	if err := o.be.Upload(ctx, backend.BlobName(d), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := o.c.Download(ctx, d, &buf)
	if err == nil {
		t.Fatal("download of a corrupt backend object succeeded")
	}
	if buf.Len() != 0 {
		t.Errorf("download wrote %d bytes of the corrupt object", buf.Len())
	}
	for _, sentinel := range []error{originclient.ErrNotFound, originclient.ErrDigestMismatch} {
		if errors.Is(err, sentinel) {
			t.Errorf("download: %v, is %v", err, sentinel)
		}
	}
	if _, err := o.c.Metainfo(ctx, d); err == nil {
		t.Error("metainfo of a corrupt backend object succeeded")
	}
	resp, err := o.hc.Get(o.url + "/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 5 {
		t.Errorf("GET of a corrupt backend object: %s, want 5xx", resp.Status)
	}
	if ds := o.storedDigests(t); len(ds) != 0 {
		t.Fatalf("store holds %v", ds)
	}
	if _, err := o.store.Stat(digest.FromBytes(data)); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("store stat of the bytes' real digest: %v, want ErrNotFound", err)
	}
}

func TestMetainfoAndPeer(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	data := randomBytes(600<<10, 8)
	d := o.upload(t, data)

	b, err := o.c.Metainfo(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := metainfo.Parse(b)
	if err != nil {
		t.Fatalf("parse metainfo: %v", err)
	}
	if got, err := metainfo.DigestOf(info); err != nil || got != d {
		t.Fatalf("metainfo names %s, %v; want %s", got, err, d)
	}
	if info.Length != int64(len(data)) {
		t.Fatalf("metainfo length %d, want %d", info.Length, len(data))
	}
	want, err := metainfo.Generate(bytes.NewReader(data), info.PieceLength)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want.InfoBytes) {
		t.Fatal("metainfo differs from the one generated from the uploaded bytes")
	}

	// Metainfo of a backend-only blob fetches it first.
	other := randomBytes(1000, 9)
	od := digest.FromBytes(other)
	if err := o.be.Upload(ctx, backend.BlobName(od), bytes.NewReader(other)); err != nil {
		t.Fatal(err)
	}
	ob, err := o.c.Metainfo(ctx, od)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := metainfo.ResultOf(ob); err != nil || r.Digest != od || r.Size != int64(len(other)) {
		t.Fatalf("metainfo of a fetched blob: %+v, %v", r, err)
	}

	p, err := o.c.Peer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ip, port := o.engine.Addr()
	if p.IP != ip || p.Port != port || p.IP != "127.0.0.1" || p.Port == 0 {
		t.Fatalf("peer %+v, engine listens on %s:%d", p, ip, port)
	}
}

func TestInvalidDigestIsBadRequest(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	id, err := o.c.StartUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/blobs/nonsense"},
		{http.MethodGet, "/blobs/sha256:abc"},
		{http.MethodGet, "/blobs/sha256:" + strings.Repeat("G", 64)},
		{http.MethodGet, "/blobs/" + sha512},
		{http.MethodHead, "/blobs/nonsense"},
		{http.MethodGet, "/blobs/nonsense/metainfo"},
		{http.MethodPut, "/uploads/" + id + "?digest=nonsense"},
		{http.MethodPut, "/uploads/" + id + "?digest=" + sha512},
		{http.MethodPut, "/uploads/" + id},
	} {
		req, err := http.NewRequestWithContext(ctx, tc.method, o.url+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := o.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: %s, want 400", tc.method, tc.path, resp.Status)
		}
	}
	// None of the bad commits consumed the upload.
	if n, err := o.c.UploadSize(ctx, id); err != nil || n != 0 {
		t.Fatalf("upload after bad commits: %d, %v", n, err)
	}
}

func TestBadUploadOffsetHeaderIsBadRequest(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	id, err := o.c.StartUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"", "x", "-1"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, o.url+"/uploads/"+id, strings.NewReader("data"))
		if err != nil {
			t.Fatal(err)
		}
		if h != "" {
			req.Header.Set(originclient.HeaderUploadOffset, h)
		}
		resp, err := o.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("offset header %q: %s, want 400", h, resp.Status)
		}
	}
	if n, err := o.c.UploadSize(ctx, id); err != nil || n != 0 {
		t.Fatalf("size after bad appends: %d, %v; want 0", n, err)
	}
}

// flakyBackend fails every Upload while down is set: an object store that is away.
type flakyBackend struct {
	backend.Backend
	mu   sync.Mutex
	down bool
}

func (f *flakyBackend) Upload(ctx context.Context, name string, r io.Reader) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return errors.New("backend unreachable")
	}
	return f.Backend.Upload(ctx, name, r)
}

// A push acknowledged while the backend is down reaches the backend after the origin
// restarts and the backend comes back: the write-back queue is durable.
func TestAcknowledgedBlobReachesBackendAfterRestart(t *testing.T) {
	dataDir, backendDir := t.TempDir(), t.TempDir()
	fsb, err := filesystem.New(filesystem.Config{Root: backendDir})
	if err != nil {
		t.Fatal(err)
	}
	be := &flakyBackend{Backend: fsb, down: true}
	start := func() (*Server, *httptest.Server, func()) {
		store, err := blobstore.New(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		engine, err := p2p.New(p2p.Config{ListenIP: "127.0.0.1"}, store, zap.NewNop(), tally.NoopScope)
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := taskqueue.Open(filepath.Join(dataDir, "tasks.db"))
		if err != nil {
			t.Fatal(err)
		}
		srv := NewServer(store, be, engine, tasks, Cluster{}, zap.NewNop(), tally.NoopScope)
		ts := httptest.NewServer(srv.Handler(nil))
		return srv, ts, func() { ts.Close(); engine.Close(); tasks.Close() }
	}

	srv, ts, stop := start()
	data := randomBytes(300<<10, 7)
	d := digest.FromBytes(data)
	c := originclient.New(ts.URL, ts.Client())
	id, err := c.StartUpload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendUpload(t.Context(), id, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitUpload(t.Context(), id, d); err != nil {
		t.Fatalf("commit while the backend is down must be acknowledged: %v", err)
	}
	if err := srv.runner.RunDue(t.Context()); err == nil {
		t.Fatal("write-back succeeded while the backend is down")
	}
	stop() // the origin goes away with its write-back still pending

	be.mu.Lock()
	be.down = false
	be.mu.Unlock()
	srv, _, stop = start()
	defer stop()
	// The failed try was scheduled with backoff; run what is due once that passes.
	tasks, _ := srv.tasks.Due(time.Now().Add(time.Hour), 0)
	if len(tasks) != 1 || tasks[0].Digest != d || tasks[0].Attempts != 1 {
		t.Fatalf("pending tasks after restart: %+v", tasks)
	}
	if pinned, _ := srv.tasks.Pinned(d); !pinned {
		t.Fatal("blob awaiting write-back is not pinned")
	}
	if err := srv.runTask(t.Context(), tasks[0]); err != nil {
		t.Fatalf("write-back after restart: %v", err)
	}
	var buf bytes.Buffer
	if err := fsb.Download(t.Context(), backend.BlobName(d), &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("backend copy: %v, %d bytes", err, buf.Len())
	}
}

// Two origins, two replicas: a blob committed on one is copied to the other by the
// durable queue, and the copy is exact.
func TestCommitReplicatesToOtherOwner(t *testing.T) {
	a, b := httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil)
	urls := []string{"http://" + a.Listener.Addr().String(), "http://" + b.Listener.Addr().String()}
	cfg := originset.DefaultConfig()
	cfg.Static, cfg.Replicas = urls, 2
	srvs := make([]*Server, 2)
	for i, ts := range []*httptest.Server{a, b} {
		store, err := blobstore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fsb, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		engine, err := p2p.New(p2p.Config{ListenIP: "127.0.0.1"}, store, zap.NewNop(), tally.NoopScope)
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := taskqueue.Open(filepath.Join(t.TempDir(), "tasks.db"))
		if err != nil {
			t.Fatal(err)
		}
		set, err := originset.New(cfg, http.DefaultClient, zap.NewNop(), tally.NoopScope)
		if err != nil {
			t.Fatal(err)
		}
		srvs[i] = NewServer(store, fsb, engine, tasks, Cluster{Set: set, Self: urls[i]}, zap.NewNop(), tally.NoopScope)
		ts.Config.Handler = srvs[i].Handler(nil)
		ts.Start()
		t.Cleanup(func() { ts.Close(); engine.Close(); tasks.Close() })
	}
	data := randomBytes(200<<10, 11)
	d := digest.FromBytes(data)
	ca, cb := originclient.New(urls[0], nil), originclient.New(urls[1], nil)
	id, err := ca.StartUpload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AppendUpload(t.Context(), id, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := ca.CommitUpload(t.Context(), id, d); err != nil {
		t.Fatal(err)
	}
	if pinned, _ := srvs[0].tasks.Pinned(d); !pinned {
		t.Fatal("blob awaiting replication is not pinned")
	}
	if err := srvs[0].runner.RunDue(t.Context()); err != nil {
		t.Fatalf("replicate: %v", err)
	}
	var buf bytes.Buffer
	if err := cb.Download(t.Context(), d, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("replica on the second origin: %v, %d bytes", err, buf.Len())
	}
	if pinned, _ := srvs[0].tasks.Pinned(d); pinned {
		t.Fatal("blob still pinned after write-back and replication")
	}
}

// With backends routed per namespace, a blob pushed to library/* is written back to
// the library backend, and a miss for it is fetched from there.
func TestWriteBackFollowsNamespace(t *testing.T) {
	libBE := newFS(t)
	o := newOriginWith(t, func(def backend.Backend) backend.Backend {
		return router.New([]router.Route{{Match: regexp.MustCompile(`^library/`), Backend: libBE}}, def)
	})
	d := o.uploadIn(backend.WithNamespace(t.Context(), "library/busybox"), t, randomBytes(64<<10, 5))
	if err := o.srv.runner.RunDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := libBE.Stat(t.Context(), backend.BlobName(d)); err != nil {
		t.Fatalf("library backend lacks the blob: %v", err)
	}
	if _, err := o.be.Stat(t.Context(), backend.BlobName(d)); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("default backend got the library blob: %v", err)
	}
}

func newFS(t *testing.T) *filesystem.Backend {
	t.Helper()
	b, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
