package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/originset"
)

// parseRoute splits a path into name, separator and argument and loses nothing: the
// parts put back together are the path, and an argument never holds a slash.
func FuzzParseRoute(f *testing.F) {
	f.Fuzz(func(t *testing.T, p string) {
		rt := parseRoute(p)
		var rebuilt []string
		switch rt.kind {
		case kindUnknown, kindCatalog:
			if rt.name != "" || rt.arg != "" {
				t.Fatalf("parseRoute(%q) = %+v: a name or argument without a resource", p, rt)
			}
			if rt.kind == kindCatalog && p != "_catalog" {
				t.Fatalf("parseRoute(%q) = catalog", p)
			}
			return
		case kindTags:
			rebuilt = []string{rt.name + "/tags/list"}
		case kindUploads:
			rebuilt = []string{rt.name + "/blobs/uploads/", rt.name + "/blobs/uploads"}
		case kindUpload:
			rebuilt = []string{rt.name + "/blobs/uploads/" + rt.arg}
		case kindManifest:
			rebuilt = []string{rt.name + "/manifests/" + rt.arg}
		case kindBlob:
			rebuilt = []string{rt.name + "/blobs/" + rt.arg}
		}
		found := false
		for _, r := range rebuilt {
			found = found || r == p
		}
		if !found {
			t.Fatalf("parseRoute(%q) = %+v, which rebuilds %q", p, rt, rebuilt)
		}
		if strings.Contains(rt.arg, "/") {
			t.Fatalf("parseRoute(%q) = %+v: an argument with a slash", p, rt)
		}
		if (rt.kind == kindUpload || rt.kind == kindManifest || rt.kind == kindBlob) && rt.arg == "" {
			t.Fatalf("parseRoute(%q) = %+v: no argument", p, rt)
		}
		if rt.checkName() == nil && (strings.Contains(rt.name, "..") || strings.HasPrefix(rt.name, "/")) {
			t.Fatalf("parseRoute(%q) = %+v: a traversing name passes checkName", p, rt)
		}
	})
}

// parseContentRange accepts only "start-end" with 0 <= start <= end, and reads what it
// accepts back from its canonical form.
func FuzzParseContentRange(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		start, end, ok := parseContentRange(s)
		if !ok {
			return
		}
		if start < 0 || end < start {
			t.Fatalf("parseContentRange(%q) = %d-%d", s, start, end)
		}
		if s2, e2, ok := parseContentRange(fmt.Sprintf("bytes %d-%d/*", start, end)); !ok || s2 != start || e2 != end {
			t.Fatalf("parseContentRange(%q) = %d-%d, whose canonical form reads %d-%d %v", s, start, end, s2, e2, ok)
		}
	})
}

// fuzzRegistry is a read-write registry over a Memory holding one blob.
func fuzzRegistry() (http.Handler, *Memory, []byte) {
	mem := NewMemory()
	blob := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	ctx := context.Background()
	id, _ := mem.Start(ctx)
	_, _ = mem.Append(ctx, id, 0, bytes.NewReader(blob))
	_ = mem.Commit(ctx, id, digest.FromBytes(blob))
	r := chi.NewRouter()
	New(Options{Blobs: mem, Tags: mem, Uploads: mem}).Routes(r)
	return r, mem, blob
}

// A blob read with any Range header is the whole blob (200), the bytes of the one
// range the answer's Content-Range names (206), several ranges (206 multipart), or
// RANGE_INVALID (416) in the OCI envelope.
func FuzzBlobRange(f *testing.F) {
	h, _, blob := fuzzRegistry()
	path := "/v2/fuzz/app/blobs/" + digest.FromBytes(blob).String()
	f.Fuzz(func(t *testing.T, rng string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Range", rng)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		switch rec.Code {
		case http.StatusOK:
			if !bytes.Equal(body, blob) {
				t.Fatalf("Range %q: 200 with %q", rng, body)
			}
		case http.StatusPartialContent:
			cr := rec.Header().Get("Content-Range")
			if cr == "" {
				if !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/byteranges") {
					t.Fatalf("Range %q: 206 without Content-Range or multipart", rng)
				}
				return
			}
			var start, end, size int64
			if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &size); err != nil {
				t.Fatalf("Range %q: Content-Range %q: %v", rng, cr, err)
			}
			if size != int64(len(blob)) || start < 0 || end >= size || start > end || !bytes.Equal(body, blob[start:end+1]) {
				t.Fatalf("Range %q: Content-Range %q with %q", rng, cr, body)
			}
		case http.StatusRequestedRangeNotSatisfiable:
			var env oci.Envelope
			if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) != 1 || env.Errors[0].Code != "RANGE_INVALID" {
				t.Fatalf("Range %q: 416 %q, want RANGE_INVALID", rng, body)
			}
		default:
			t.Fatalf("Range %q: %d %q", rng, rec.Code, body)
		}
	})
}

var fuzzMethods = []string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"}

// No request makes the registry fail (5xx) or panic over a store that does not fail,
// and a refused request stores nothing.
func FuzzRegistryAPI(f *testing.F) {
	h, mem, _ := fuzzRegistry()
	f.Fuzz(func(t *testing.T, method uint8, path, query, contentType, contentRange string, body []byte) {
		u := "/v2/" + strings.TrimPrefix(path, "/")
		req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], "http://registry"+u, bytes.NewReader(body))
		if err != nil {
			return // not a URL: no server sees it
		}
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", contentType)
		if contentRange != "" {
			req.Header.Set("Content-Range", contentRange)
		}
		blobs := mem.BlobCount()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s: %d %s", req.Method, req.URL.Path, query, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && mem.BlobCount() != blobs {
			t.Fatalf("%s %s?%s: refused (%d) and stored a blob", req.Method, req.URL.Path, query, rec.Code)
		}
	})
}

// A client-made upload id never selects an origin that is not a member: session
// either refuses it as ErrUploadUnknown or names the member and the id after the dot.
func FuzzUploadSession(f *testing.F) {
	const member = "http://origin.test:15200"
	cfg := originset.DefaultConfig()
	cfg.Static = []string{member}
	set, err := originset.New(cfg, nil, zap.NewNop(), tally.NoopScope)
	if err != nil {
		f.Fatal(err)
	}
	store := NewClusterStore(set, 0)
	f.Fuzz(func(t *testing.T, id string) {
		c, oid, err := store.session(id)
		if err != nil {
			if !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("session(%q): %v, want ErrUploadUnknown", id, err)
			}
			return
		}
		if c.Addr() != member || oid == "" || !strings.HasSuffix(id, "."+oid) {
			t.Fatalf("session(%q) = %s, %q", id, c.Addr(), oid)
		}
		enc := strings.TrimSuffix(id, "."+oid)
		if raw, err := base64.RawURLEncoding.DecodeString(enc); err != nil || string(raw) != member {
			t.Fatalf("session(%q) accepted origin part %q", id, enc)
		}
	})
}
