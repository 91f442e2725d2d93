//go:build integration

package gcs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/backendtest"
)

// The fake-gcs-server every test here talks to; TestMain starts and stops it.
const project = "shoal-test"

var (
	endpoint string          // http://127.0.0.1:<port>
	admin    *storage.Client // raw client for bucket creation and inspection
	buckets  atomic.Int64    // bucket name counter
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	bin, err := exec.LookPath("fake-gcs-server")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gcs integration tests need fake-gcs-server on PATH: run `make tools` "+
			"(installs it into .tools/bin) and `make integration`, or add .tools/bin to PATH:", err)
		return 1
	}
	stop, err := startServer(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start fake-gcs-server:", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// startServer runs fake-gcs-server in memory on a free loopback port and waits until it
// answers the JSON API. stop ends it.
func startServer(bin string) (stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)

	var logs bytes.Buffer
	// Its defaults are https and 0.0.0.0; the external URL and public host make the
	// upload and XML read URLs it hands out point back at this address.
	cmd := exec.Command(bin, "-scheme", "http", "-host", "127.0.0.1", "-port", port, "-backend", "memory",
		"-external-url", "http://"+addr, "-public-host", addr, "-log-level", "warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	endpoint = "http://" + addr
	b, err := New(context.Background(), testConfig("ready"))
	if err != nil {
		stop()
		return nil, err
	}
	admin = b.client
	// Poll: the server is a separate process, so there is no event to wait on.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, lerr := admin.Buckets(ctx, project).Next()
		if lerr == nil || errors.Is(lerr, iterator.Done) {
			return stop, nil
		}
		select {
		case werr := <-exited:
			exited <- werr
			stop()
			return nil, fmt.Errorf("exited (%v):\n%s", werr, logs.String())
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("not answering on %s after 30s (%v):\n%s", addr, lerr, logs.String())
		case <-tick.C:
		}
	}
}

func testConfig(bucket string) Config {
	return Config{Bucket: bucket, Endpoint: endpoint}
}

// newBucket creates an empty bucket for one test.
func newBucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("shoal-test-%d", buckets.Add(1))
	if err := admin.Bucket(name).Create(t.Context(), project, nil); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

func newBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func putRaw(t *testing.T, bucket, name, data string) {
	t.Helper()
	w := admin.Bucket(bucket).Object(name).NewWriter(t.Context())
	if _, err := io.WriteString(w, data); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

func listRaw(t *testing.T, bucket string) []string {
	t.Helper()
	var names []string
	it := admin.Bucket(bucket).Objects(t.Context(), nil)
	for {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names
		}
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		names = append(names, o.Name)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, testConfig(newBucket(t)))
	})
}

// With a prefix, objects outside it (decoys a registry or another cluster wrote) are
// invisible: the suite's exact List checks would see them otherwise.
func TestConformancePrefix(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		bucket := newBucket(t)
		for _, k := range []string{"shoal", "shoalx/a", "other/shoal/x", "docker/registry/v2/blobs/sha256/ab/abcdef/data"} {
			putRaw(t, bucket, k, "decoy")
		}
		cfg := testConfig(bucket)
		cfg.Prefix = "shoal/"
		return newBackend(t, cfg)
	})
}

// Objects land at <prefix><name>, the name a docker/distribution registry uses for them.
func TestLayout(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	cfg := testConfig(bucket)
	cfg.Prefix = "shoal/"
	b := newBackend(t, cfg)
	name := backend.BlobName("sha256:abcdef0123")
	if err := b.Upload(t.Context(), name, strings.NewReader("blob")); err != nil {
		t.Fatal(err)
	}
	want := "shoal/docker/registry/v2/blobs/sha256/ab/abcdef0123/data"
	if got := listRaw(t, bucket); !slices.Equal(got, []string{want}) {
		t.Fatalf("bucket holds %q, want only %s", got, want)
	}
	// And a registry's object, written under the same layout, is visible to Shoal.
	putRaw(t, bucket, "shoal/"+backend.TagName("library/busybox", "latest"), "sha256:abcdef0123")
	tags, err := b.List(t.Context(), backend.TagsPrefix("library/busybox"))
	if err != nil || !slices.Equal(tags, []string{backend.TagName("library/busybox", "latest")}) {
		t.Fatalf("List tags = %q, %v", tags, err)
	}
}

// countingTransport counts the chunk requests of resumable uploads: requests to the
// upload session carrying a Content-Range (PUT on GCS; fake-gcs-server's session URL
// takes POST).
type countingTransport struct{ chunks atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/upload/") && r.Header.Get("Content-Range") != "" {
		c.chunks.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// newCountingBackend is New with the client's HTTP requests counted.
func newCountingBackend(t *testing.T, cfg Config) (*Backend, *countingTransport) {
	t.Helper()
	b := newBackend(t, cfg) // closes b.client, the counting one, at cleanup
	ct := &countingTransport{}
	client, err := storage.NewClient(t.Context(), option.WithEndpoint(apiEndpoint(cfg.Endpoint)),
		option.WithoutAuthentication(), option.WithHTTPClient(&http.Client{Transport: ct}))
	if err != nil {
		t.Fatal(err)
	}
	b.client.Close()
	b.client, b.bucket = client, client.Bucket(cfg.Bucket)
	return b, ct
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	return data
}

// A 40 MiB object with 16 MiB chunks goes up as a resumable upload of three chunks and
// comes back byte for byte.
func TestLargeResumable(t *testing.T) {
	t.Parallel()
	cfg := testConfig(newBucket(t))
	cfg.ChunkSize = 16 << 20
	b, ct := newCountingBackend(t, cfg)
	data := randomBytes(t, 40<<20)
	name := backend.BlobName("sha256:0123abcd")
	// An io.Reader only (no Seek, no Len): the upload streams chunk by chunk.
	if err := b.Upload(t.Context(), name, io.MultiReader(bytes.NewReader(data))); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if n := ct.chunks.Load(); n != 3 {
		t.Errorf("%d chunk requests, want 3 (16+16+8 MiB)", n)
	}
	if info, err := b.Stat(t.Context(), name); err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(data))
	}
	h := sha256.New()
	if err := b.Download(t.Context(), name, h); err != nil {
		t.Fatalf("Download: %v", err)
	}
	if got, want := h.Sum(nil), sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		t.Fatalf("downloaded sha256 %x, uploaded %x", got, want)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// A reader failing after the first chunk went up leaves no object: the resumable upload
// is never finalized.
func TestResumableFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(newBucket(t))
	cfg.ChunkSize = 1 << 20
	b, ct := newCountingBackend(t, cfg)
	errBoom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(randomBytes(t, 3<<20+5)), errReader{errBoom})
	if err := b.Upload(t.Context(), "big", r); !errors.Is(err, errBoom) {
		t.Fatalf("Upload of a failing reader: %v, want boom", err)
	}
	if ct.chunks.Load() == 0 {
		t.Errorf("no chunk went up before the failure; the test proves nothing")
	}
	if _, err := b.Stat(t.Context(), "big"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat after a failed upload: %v, want ErrNotFound", err)
	}
	if got := listRaw(t, cfg.Bucket); len(got) != 0 {
		t.Fatalf("bucket holds %q after a failed upload, want nothing", got)
	}
}

func TestDownloadRange(t *testing.T) {
	t.Parallel()
	cfg := testConfig(newBucket(t))
	cfg.ChunkSize = 4 << 20
	b := newBackend(t, cfg)
	data := randomBytes(t, 10<<20)
	if err := b.Upload(t.Context(), "obj", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	chunk := int64(cfg.ChunkSize)
	for _, r := range []struct{ offset, length int64 }{
		{0, 1},
		{0, int64(len(data))},
		{chunk - 10, 20},                 // across the first chunk boundary
		{chunk - 1, chunk},               // a whole chunk's length spanning two chunks
		{int64(len(data)) - 7, 7},        // the tail
		{123_456, 0},                     // empty
		{int64(len(data)) / 2, 64 << 10}, // a lazy-fetch sized piece
	} {
		var buf bytes.Buffer
		if err := b.DownloadRange(t.Context(), "obj", r.offset, r.length, &buf); err != nil {
			t.Errorf("DownloadRange(%d, %d): %v", r.offset, r.length, err)
			continue
		}
		if !bytes.Equal(buf.Bytes(), data[r.offset:r.offset+r.length]) {
			t.Errorf("DownloadRange(%d, %d): %d bytes differ from the object's", r.offset, r.length, buf.Len())
		}
	}
	for _, r := range []struct{ offset, length int64 }{
		{int64(len(data)) - 7, 8}, // runs past the end
		{int64(len(data)), 1},     // starts at the end
		{-1, 5},
	} {
		var buf bytes.Buffer
		if err := b.DownloadRange(t.Context(), "obj", r.offset, r.length, &buf); err == nil || buf.Len() != 0 {
			t.Errorf("DownloadRange(%d, %d) = %v with %d bytes, want an error and nothing written", r.offset, r.length, err, buf.Len())
		}
	}
	for _, length := range []int64{0, 10} {
		if err := b.DownloadRange(t.Context(), "missing", 0, length, io.Discard); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("DownloadRange of a missing object, length %d: %v, want ErrNotFound", length, err)
		}
	}
}

// Listing a bucket that does not exist is an error, and not an empty list.
func TestMissingBucket(t *testing.T) {
	t.Parallel()
	b := newBackend(t, testConfig("no-such-bucket"))
	if names, err := b.List(t.Context(), ""); err == nil {
		t.Fatalf("List of a missing bucket = %q, want an error", names)
	}
}
