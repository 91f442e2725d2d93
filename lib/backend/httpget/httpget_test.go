package httpget

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/goleak"

	"github.com/shoal-p2p/shoal/lib/backend"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg    Config
		substr string // "" means valid
	}{
		{Config{URLTemplate: "https://mirror.example.com/blobs/{digest}"}, ""},
		{Config{URLTemplate: "http://10.0.0.5:8080/{algorithm}/{hex}?x=1", Timeout: time.Second}, ""},
		{Config{URLTemplate: "https://cdn.example.com/{hex}"}, ""},
		{Config{}, "backend.http.url_template: empty"},
		{Config{URLTemplate: "https://mirror.example.com/blob"}, "neither {digest} nor {hex}"},
		{Config{URLTemplate: "https://mirror.example.com/{algorithm}"}, "neither {digest} nor {hex}"},
		{Config{URLTemplate: "https://mirror.example.com/{tag}/{digest}"}, "unknown placeholder"},
		{Config{URLTemplate: "mirror.example.com/{digest}"}, "not an http(s) URL"},
		{Config{URLTemplate: "ftp://mirror.example.com/{digest}"}, "not an http(s) URL"},
		{Config{URLTemplate: "https://m.example.com/{digest}", Timeout: -1}, "backend.http.timeout"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.substr == "" && err != nil:
			t.Errorf("%+v: %v, want valid", tc.cfg, err)
		case tc.substr != "" && (err == nil || !strings.Contains(err.Error(), tc.substr)):
			t.Errorf("%+v: %v, want an error with %q", tc.cfg, err, tc.substr)
		}
	}
}

// mirror serves blobs at /blobs/<algorithm>/<hex> and counts requests.
type mirror struct {
	srv   *httptest.Server
	blobs map[string][]byte // path -> bytes
	fail  atomic.Bool       // answer 500
	hits  atomic.Int64
}

func newMirror(t *testing.T, blobs ...[]byte) *mirror {
	t.Helper()
	m := &mirror{blobs: map[string][]byte{}}
	for _, b := range blobs {
		d := digest.FromBytes(b)
		m.blobs["/blobs/"+string(d.Algorithm())+"/"+d.Encoded()] = b
	}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		if m.fail.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		if r.URL.Path == "/gone" {
			http.Error(w, "gone", http.StatusGone)
			return
		}
		data, ok := m.blobs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func newBackend(t *testing.T, tmpl string) *Backend {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	b, err := New(Config{URLTemplate: tmpl}, WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStatDownload(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("shoal"), 300_000)
	m := newMirror(t, big, []byte{})
	b := newBackend(t, m.srv.URL+"/blobs/{algorithm}/{hex}")
	for _, data := range [][]byte{big, {}} {
		name := backend.BlobName(digest.FromBytes(data))
		info, err := b.Stat(t.Context(), name)
		if err != nil || info.Size != int64(len(data)) {
			t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(data))
		}
		var buf bytes.Buffer
		if err := b.Download(t.Context(), name, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("Download = %d bytes, %v; want %d", buf.Len(), err, len(data))
		}
	}
}

// {digest} expands to <algorithm>:<hex>.
func TestDigestPlaceholder(t *testing.T) {
	t.Parallel()
	data := []byte("blob")
	d := digest.FromBytes(data)
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Path)
		_, _ = w.Write(data)
	}))
	t.Cleanup(srv.Close)
	b := newBackend(t, srv.URL+"/v1/{digest}/data")
	if err := b.Download(t.Context(), backend.BlobName(d), io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := "/v1/" + d.String() + "/data"; got.Load() != want {
		t.Fatalf("requested %v, want %s", got.Load(), want)
	}
}

func TestMisses(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	b := newBackend(t, m.srv.URL+"/blobs/{algorithm}/{hex}")
	gone := newBackend(t, m.srv.URL+"/gone?d={digest}")
	missing := backend.BlobName(digest.FromString("missing"))
	for _, tc := range []struct {
		b    *Backend
		name string
	}{
		{b, missing},
		{gone, missing},
		{b, backend.TagName("app", "v1")}, // tags are not served, and never asked for
		{b, "docker/registry/v2/blobs/sha256/ab/xyz/data"},
	} {
		if _, err := tc.b.Stat(t.Context(), tc.name); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("Stat %s: %v, want ErrNotFound", tc.name, err)
		}
		var buf bytes.Buffer
		if err := tc.b.Download(t.Context(), tc.name, &buf); !errors.Is(err, backend.ErrNotFound) || buf.Len() != 0 {
			t.Errorf("Download %s: %v with %d bytes, want ErrNotFound and nothing written", tc.name, err, buf.Len())
		}
	}
	if n := m.hits.Load(); n != 4 {
		t.Errorf("%d requests to the server, want 4 (blob misses only)", n)
	}
}

// A server error is an error, not a miss.
func TestServerError(t *testing.T) {
	t.Parallel()
	data := []byte("blob")
	m := newMirror(t, data)
	m.fail.Store(true)
	b := newBackend(t, m.srv.URL+"/blobs/{algorithm}/{hex}")
	name := backend.BlobName(digest.FromBytes(data))
	if _, err := b.Stat(t.Context(), name); err == nil || errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "500") {
		t.Errorf("Stat with a 500: %v, want a non-miss error naming the status", err)
	}
	var buf bytes.Buffer
	if err := b.Download(t.Context(), name, &buf); err == nil || errors.Is(err, backend.ErrNotFound) || buf.Len() != 0 {
		t.Errorf("Download with a 500: %v with %d bytes, want a non-miss error and nothing written", err, buf.Len())
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	b := newBackend(t, m.srv.URL+"/{digest}")
	err := b.Upload(t.Context(), backend.BlobName(digest.FromString("x")), strings.NewReader("x"))
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "read-only backend") {
		t.Fatalf("Upload: %v, want ErrReadOnly", err)
	}
	for _, prefix := range []string{"", backend.RepositoriesPrefix, "docker/registry/v2/blobs/"} {
		if names, err := b.List(t.Context(), prefix); err != nil || names == nil || len(names) != 0 {
			t.Fatalf("List(%q) = %#v, %v; want an empty list", prefix, names, err)
		}
	}
	if n := m.hits.Load(); n != 0 {
		t.Fatalf("%d requests for Upload and List, want none", n)
	}
}
