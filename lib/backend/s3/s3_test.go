package s3

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/shoal-p2p/shoal/lib/backend"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Bucket: "b"}
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		substr string // "" means valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"full", func(c *Config) {
			*c = Config{Region: "eu-west-1", Bucket: "b", Prefix: "shoal/", Endpoint: "http://127.0.0.1:7070", PathStyle: true,
				AccessKeyID: "ak", SecretAccessKey: "sk", PartSize: MinPartSize, Concurrency: 2}
		}, ""},
		{"no bucket", func(c *Config) { c.Bucket = "" }, "backend.s3.bucket: empty (set backend.s3.bucket: my-bucket)"},
		{"bucket with slash", func(c *Config) { c.Bucket = "b/p" }, "backend.s3.bucket"},
		{"absolute prefix", func(c *Config) { c.Prefix = "/shoal/" }, "backend.s3.prefix"},
		{"key without secret", func(c *Config) { c.AccessKeyID = "ak" }, "backend.s3.access_key_id"},
		{"secret without key", func(c *Config) { c.SecretAccessKey = "sk" }, "backend.s3.secret_access_key"},
		{"small part", func(c *Config) { c.PartSize = 1 << 20 }, "backend.s3.part_size"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "backend.s3.concurrency"},
		{"endpoint without scheme", func(c *Config) { c.Endpoint = "127.0.0.1:7070" }, "backend.s3.endpoint"},
		{"endpoint ftp", func(c *Config) { c.Endpoint = "ftp://x" }, "backend.s3.endpoint"},
	} {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.substr == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.name, err)
		case tc.substr != "" && (err == nil || !strings.Contains(err.Error(), tc.substr)):
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.substr)
		}
	}
}

func TestMapErr(t *testing.T) {
	t.Parallel()
	status := func(code int) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("x")}
	}
	for _, tc := range []struct {
		err      error
		notFound bool
	}{
		{&types.NotFound{}, true},
		{&types.NoSuchKey{}, true},
		{fmt.Errorf("op: %w", &types.NoSuchKey{}), true},
		{status(404), true},
		{status(403), false},
		{&smithy.GenericAPIError{Code: "NoSuchBucket"}, false},
		{&types.NoSuchBucket{}, false},
		{errors.New("connection refused"), false},
	} {
		got := mapErr(tc.err)
		if errors.Is(got, backend.ErrNotFound) != tc.notFound {
			t.Errorf("mapErr(%T %v) = %v, want not-found %v", tc.err, tc.err, got, tc.notFound)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("mapErr(%v) lost the cause: %v", tc.err, got)
		}
	}
}

// The client talks path-style to the endpoint, and real S3 miss responses become
// backend.ErrNotFound while a missing bucket does not.
func TestMissOverHTTP(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		paths []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/xml")
		switch {
		case strings.HasPrefix(r.URL.Path, "/nobucket/"):
			w.WriteHeader(http.StatusNotFound)
			if r.Method != http.MethodHead {
				fmt.Fprint(w, `<Error><Code>NoSuchBucket</Code><Message>no bucket</Message></Error>`)
			}
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNotFound)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `<Error><Code>NoSuchKey</Code><Message>no key</Message></Error>`)
		}
	}))
	defer srv.Close()
	open := func(bucket string) *Backend {
		b, err := New(t.Context(), Config{Region: "us-east-1", Bucket: bucket, Prefix: "p/", Endpoint: srv.URL,
			PathStyle: true, AccessKeyID: "ak", SecretAccessKey: "sk"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open("bkt")
	if _, err := b.Stat(t.Context(), "a/b"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat: %v, want ErrNotFound", err)
	}
	var buf bytes.Buffer
	if err := b.Download(t.Context(), "a/b", &buf); !errors.Is(err, backend.ErrNotFound) || buf.Len() != 0 {
		t.Errorf("Download: %v (%d bytes), want ErrNotFound", err, buf.Len())
	}
	if err := b.DownloadRange(t.Context(), "a/b", 1, 2, &buf); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("DownloadRange: %v, want ErrNotFound", err)
	}
	if err := open("nobucket").Download(t.Context(), "a/b", &buf); err == nil || errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Download from a missing bucket: %v, want an error other than ErrNotFound", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if paths[0] != "HEAD /bkt/p/a/b" {
		t.Errorf("first request %q, want HEAD /bkt/p/a/b", paths[0])
	}
}
