package gcs

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

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
			*c = Config{Bucket: "b", Prefix: "shoal/", Endpoint: "http://127.0.0.1:4443",
				CredentialsFile: "/etc/shoal/gcs.json", ChunkSize: 8 << 20}
		}, ""},
		{"smallest chunk", func(c *Config) { c.ChunkSize = ChunkGranularity }, ""},
		{"no bucket", func(c *Config) { c.Bucket = "" }, "backend.gcs.bucket: empty (set backend.gcs.bucket: my-bucket)"},
		{"bucket with slash", func(c *Config) { c.Bucket = "b/p" }, "backend.gcs.bucket"},
		{"bucket URL", func(c *Config) { c.Bucket = "gs:b" }, "backend.gcs.bucket: \"gs:b\" is a URL (set the bucket name alone, e.g. backend.gcs.bucket: b)"},
		{"absolute prefix", func(c *Config) { c.Prefix = "/shoal/" }, "backend.gcs.prefix"},
		{"negative chunk", func(c *Config) { c.ChunkSize = -1 }, "backend.gcs.chunk_size"},
		{"odd chunk", func(c *Config) { c.ChunkSize = 1_000_000 }, "backend.gcs.chunk_size: 1000000 is not a positive multiple of 256 KiB"},
		{"endpoint without scheme", func(c *Config) { c.Endpoint = "127.0.0.1:4443" }, "backend.gcs.endpoint"},
		{"endpoint ftp", func(c *Config) { c.Endpoint = "ftp://x" }, "backend.gcs.endpoint"},
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

func TestAPIEndpoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:4443":                   "http://127.0.0.1:4443/storage/v1/",
		"http://127.0.0.1:4443/":                  "http://127.0.0.1:4443/storage/v1/",
		"https://storage.example.com/storage/v1/": "https://storage.example.com/storage/v1/",
	} {
		if got := apiEndpoint(in); got != want {
			t.Errorf("apiEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCredentialsType(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := credentialsType(write("sa.json", `{"type":"service_account","project_id":"p"}`)); err != nil || got != option.ServiceAccount {
		t.Errorf("service account file: %q, %v", got, err)
	}
	if got, err := credentialsType(write("wif.json", `{"type":"external_account"}`)); err != nil || got != option.ExternalAccount {
		t.Errorf("external account file: %q, %v", got, err)
	}
	for _, tc := range []struct{ path, substr string }{
		{filepath.Join(dir, "missing.json"), "backend.gcs.credentials_file: open"},
		{write("bad.json", "not json"), "is not JSON"},
		{write("odd.json", `{"type":"api_key"}`), `has type "api_key"`},
	} {
		if _, err := credentialsType(tc.path); err == nil || !strings.Contains(err.Error(), tc.substr) {
			t.Errorf("credentialsType(%s): %v, want an error naming %q", filepath.Base(tc.path), err, tc.substr)
		}
	}
	// New reports it, naming the key, before building any client.
	_, err := New(t.Context(), Config{Bucket: "b", CredentialsFile: filepath.Join(dir, "missing.json")})
	if err == nil || !strings.HasPrefix(err.Error(), "backend.gcs.credentials_file:") {
		t.Errorf("New with a missing credentials file: %v", err)
	}
}

func TestMapErr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err      error
		notFound bool
	}{
		{storage.ErrObjectNotExist, true},
		{fmt.Errorf("%w: %w", storage.ErrObjectNotExist, errors.New("googleapi: 404")), true},
		{storage.ErrBucketNotExist, false},
		{errors.New("connection refused"), false},
	} {
		got := mapErr(tc.err)
		if errors.Is(got, backend.ErrNotFound) != tc.notFound {
			t.Errorf("mapErr(%v) = %v, want not-found %v", tc.err, got, tc.notFound)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("mapErr(%v) lost the cause: %v", tc.err, got)
		}
	}
}

// The client talks to the endpoint without credentials, puts the prefix in front of
// names, and GCS's 404s (JSON for metadata, XML for reads) become backend.ErrNotFound.
func TestMissOverHTTP(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		reqs []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.Method+" "+r.URL.EscapedPath()+" auth="+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":404,"message":"No such object"}}`)
	}))
	defer srv.Close()
	b, err := New(t.Context(), Config{Bucket: "bkt", Prefix: "p/", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
	if err := b.DownloadRange(t.Context(), "a/b", 0, 0, &buf); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("empty DownloadRange: %v, want ErrNotFound", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "GET /storage/v1/b/bkt/o/p%2Fa%2Fb auth="; len(reqs) < 2 || reqs[0] != want {
		t.Errorf("requests %q, want first %q", reqs, want)
	}
	if want := "GET /bkt/p%2Fa%2Fb auth="; len(reqs) < 2 || reqs[1] != want {
		t.Errorf("requests %q, want second %q (an XML read)", reqs, want)
	}
}
