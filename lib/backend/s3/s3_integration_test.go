//go:build integration

package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/backendtest"
)

// The versitygw server every test here talks to; TestMain starts and stops it.
const (
	accessKey = "shoaltest"
	secretKey = "shoaltestsecret"
	region    = "us-east-1"
)

var (
	endpoint string        // http://127.0.0.1:<port>
	admin    *awss3.Client // raw client for bucket creation and inspection
	buckets  atomic.Int64  // bucket name counter
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3 integration tests need the versitygw S3 server on PATH: run `make tools` "+
			"(installs it into .tools/bin) and `make integration`, or add .tools/bin to PATH:", err)
		return 1
	}
	stop, err := startServer(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start versitygw:", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// startServer runs versitygw on a free loopback port over a temporary posix directory
// and waits until it answers S3 requests. stop ends it and removes the directory.
func startServer(bin string) (stop func(), err error) {
	dir, err := os.MkdirTemp("", "shoal-versitygw-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()

	var logs bytes.Buffer
	cmd := exec.Command(bin, "--port", addr, "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
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
		os.RemoveAll(dir)
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
		_, lerr := admin.ListBuckets(ctx, &awss3.ListBucketsInput{})
		if lerr == nil {
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
	return Config{Region: region, Bucket: bucket, Endpoint: endpoint, PathStyle: true,
		AccessKeyID: accessKey, SecretAccessKey: secretKey}
}

// newBucket creates an empty bucket for one test.
func newBucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("shoal-test-%d", buckets.Add(1))
	if _, err := admin.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("CreateBucket %s: %v", name, err)
	}
	return name
}

func newBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func putRaw(t *testing.T, bucket, key, data string) {
	t.Helper()
	if _, err := admin.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(data)}); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, testConfig(newBucket(t)))
	})
}

// With a prefix, keys outside it (decoys a registry or another cluster wrote) are
// invisible: the suite's exact List checks would see them otherwise.
func TestConformancePrefix(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		bucket := newBucket(t)
		// Not a key "shoal" too: versitygw's posix backend cannot hold both it and "shoal/…".
		for _, k := range []string{"shoalx/a", "other/shoal/x", "docker/registry/v2/blobs/sha256/ab/abcdef/data"} {
			putRaw(t, bucket, k, "decoy")
		}
		cfg := testConfig(bucket)
		cfg.Prefix = "shoal/"
		return newBackend(t, cfg)
	})
}

// Objects land at <prefix><name>, the key a docker/distribution registry uses for them.
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
	out, err := admin.ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != want {
		t.Fatalf("bucket holds %v, want only %s", out.Contents, want)
	}
	// And a registry's object, written under the same layout, is visible to Shoal.
	putRaw(t, bucket, "shoal/"+backend.TagName("library/busybox", "latest"), "sha256:abcdef0123")
	tags, err := b.List(t.Context(), backend.TagsPrefix("library/busybox"))
	if err != nil || !slices.Equal(tags, []string{backend.TagName("library/busybox", "latest")}) {
		t.Fatalf("List tags = %q, %v", tags, err)
	}
}

// multipartConfig makes 5 MiB parts so a 12 MiB object takes three.
func multipartConfig(t *testing.T) Config {
	cfg := testConfig(newBucket(t))
	cfg.PartSize = MinPartSize
	cfg.Concurrency = 2
	return cfg
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestMultipart(t *testing.T) {
	t.Parallel()
	b := newBackend(t, multipartConfig(t))
	data := randomBytes(t, 12<<20)
	name := backend.BlobName("sha256:0123abcd")
	// An io.Reader only (no Seek, no Len): the upload streams part by part.
	if err := b.Upload(t.Context(), name, io.MultiReader(bytes.NewReader(data))); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	head, err := admin.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: &b.bucket, Key: b.key(name)})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(head.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-3") {
		t.Errorf("ETag %s, want a 3-part multipart ETag", etag)
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

// A reader failing after two parts went up aborts the multipart upload: no object, and
// no parts left to pay for.
func TestMultipartFailureAborts(t *testing.T) {
	t.Parallel()
	b := newBackend(t, multipartConfig(t))
	errBoom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(randomBytes(t, 11<<20)), iotestErrReader(errBoom))
	if err := b.Upload(t.Context(), "big", r); !errors.Is(err, errBoom) {
		t.Fatalf("Upload of a failing reader: %v, want boom", err)
	}
	if _, err := b.Stat(t.Context(), "big"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat after a failed upload: %v, want ErrNotFound", err)
	}
	ups, err := admin.ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{Bucket: &b.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left after the failure, want none", len(ups.Uploads))
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func iotestErrReader(err error) io.Reader { return errReader{err} }

func TestDownloadRange(t *testing.T) {
	t.Parallel()
	b := newBackend(t, multipartConfig(t))
	data := randomBytes(t, 12<<20)
	if err := b.Upload(t.Context(), "obj", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	part := int64(MinPartSize)
	for _, r := range []struct{ offset, length int64 }{
		{0, 1},
		{0, int64(len(data))},
		{part - 10, 20},                  // across the first part boundary
		{part - 1, part},                 // a whole part's length spanning two parts
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

// A wrong secret is an error, and not a miss.
func TestBadCredentials(t *testing.T) {
	t.Parallel()
	cfg := testConfig(newBucket(t))
	cfg.SecretAccessKey = "wrong"
	b := newBackend(t, cfg)
	if err := b.Download(t.Context(), "x", io.Discard); err == nil || errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Download with a wrong secret: %v, want an error other than ErrNotFound", err)
	}
}
