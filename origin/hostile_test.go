package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/originclient"
)

// snapshot maps every file under dirs to its size.
func snapshot(t *testing.T, dirs ...string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files[path] = fi.Size()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// leftBehind lists the files of after that before did not hold at that size: what a
// request created or wrote to. Files it removed (a discarded upload) are not listed.
func leftBehind(before, after map[string]int64) []string {
	var out []string
	for p, n := range after {
		if m, ok := before[p]; !ok || m != n {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// storeRoot is the directory of o's blobstore.
func (o *testOrigin) storeRoot() string {
	// <root>/blobs/sha256/<hex>
	return filepath.Dir(filepath.Dir(filepath.Dir(o.store.BlobPath(digest.FromString("")))))
}

// backendObjects lists every object in o's backend.
func (o *testOrigin) backendObjects(t *testing.T) []string {
	t.Helper()
	names, err := o.be.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// rawStatus sends req as written, for what http.Client refuses to send, and returns
// the answer's status.
func rawStatus(t *testing.T, baseURL, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw request %.60q: %v", req, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHostileInput sends the origin API malformed upload ids, offsets, digests, ranges
// and headers. Each answer must be the documented status and {"error": code} body, and
// neither the store nor the backend may gain a file (the write-back queue is run to
// be sure nothing was queued either).
func TestHostileInput(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	ctx := t.Context()
	blob := randomBytes(1000, 7)
	d := o.upload(t, blob)
	if err := o.srv.runner.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	wrong := digest.FromString("not the content")
	hdr := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	off := func(v string) map[string]string { return hdr(originclient.HeaderUploadOffset, v) }
	rng := func(v string) map[string]string { return hdr("Range", v) }
	cases := []struct {
		name         string
		method, path string // {id}: a fresh upload session of its own
		body         string
		hdr          map[string]string
		status       int
		code         string // "" where the error edge is not reached (router, Go's server, HEAD)
	}{
		{"dot-dot upload id", "PATCH", "/uploads/%2e%2e", "data", off("0"), 404, originclient.CodeUploadUnknown},
		{"traversal upload id", "PATCH", "/uploads/..%2F..%2Fblobs%2Fsha256%2Fx", "data", off("0"), 404, originclient.CodeUploadUnknown},
		{"traversal after an id", "GET", "/uploads/{id}%2F..%2F..", "", nil, 404, originclient.CodeUploadUnknown},
		{"uppercase id", "DELETE", "/uploads/" + strings.Repeat("A", 32), "", nil, 404, originclient.CodeUploadUnknown},
		{"id of 33 characters", "PUT", "/uploads/" + strings.Repeat("a", 33) + "?digest=" + d.String(), "", nil, 404, originclient.CodeUploadUnknown},
		{"unescaped traversal", "PUT", "/uploads/../../x?digest=" + d.String(), "", nil, 404, ""},
		{"offset not a number", "PATCH", "/uploads/{id}", "data", off("zero"), 400, "bad_request"},
		{"no offset", "PATCH", "/uploads/{id}", "data", nil, 400, "bad_request"},
		{"negative offset", "PATCH", "/uploads/{id}", "data", off("-5"), 400, "bad_request"},
		{"overflowing offset", "PATCH", "/uploads/{id}", "data", off("99999999999999999999"), 400, "bad_request"},
		{"hex offset", "PATCH", "/uploads/{id}", "data", off("0x0"), 400, "bad_request"},
		{"exponent offset", "PATCH", "/uploads/{id}", "data", off("1e3"), 400, "bad_request"},
		{"offset past the end", "PATCH", "/uploads/{id}", "data", off("5"), 416, originclient.CodeOffsetMismatch},
		{"offset at MaxInt64", "PATCH", "/uploads/{id}", "data", off("9223372036854775807"), 416, originclient.CodeOffsetMismatch},
		{"commit short digest", "PUT", "/uploads/{id}?digest=sha256:abc", "data", nil, 400, "bad_request"},
		{"commit sha512", "PUT", "/uploads/{id}?digest=" + sha512, "data", nil, 400, "bad_request"},
		{"commit traversal digest", "PUT", "/uploads/{id}?digest=..%2F..%2Fetc", "data", nil, 400, "bad_request"},
		{"commit wrong digest", "PUT", "/uploads/{id}?digest=" + wrong.String(), "data", nil, 400, originclient.CodeDigestMismatch},
		{"commit wrong digest, namespaced", "PUT", "/uploads/{id}?digest=" + wrong.String() + "&repository=..%2F..%2Fetc", "x", nil, 400, originclient.CodeDigestMismatch},
		{"dot-dot digest", "GET", "/blobs/%2e%2e", "", nil, 400, "bad_request"},
		{"traversal digest", "GET", "/blobs/sha256:..%2F..%2Fuploads", "", nil, 400, "bad_request"},
		{"uppercase digest metainfo", "GET", "/blobs/sha256:" + strings.ToUpper(d.Encoded()) + "/metainfo", "", nil, 400, "bad_request"},
		{"md5 HEAD", "HEAD", "/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", "", nil, 400, ""},
		{"range past the end", "GET", "/blobs/" + d.String(), "", rng("bytes=5000-6000"), 416, ""},
		{"overflowing range", "GET", "/blobs/" + d.String(), "", rng("bytes=0-99999999999999999999"), 416, ""},
		{"range end before start", "GET", "/blobs/" + d.String(), "", rng("bytes=10-5"), 416, ""},
		{"huge header", "GET", "/blobs/" + d.String(), "", hdr("X-Pad", strings.Repeat("x", 2<<20)), 431, ""},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		if strings.Contains(c.path, "{id}") {
			id, err := o.c.StartUpload(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = id
		}
	}
	dirs := []string{o.storeRoot()}
	before, objects := snapshot(t, dirs...), o.backendObjects(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, c.method, o.url+strings.ReplaceAll(c.path, "{id}", ids[i]), strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			resp, err := o.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var eb originclient.ErrorBody
			if resp.StatusCode != c.status {
				t.Fatalf("%s %.80s: %d %s, want %d", c.method, c.path, resp.StatusCode, body, c.status)
			}
			if c.code != "" && (json.Unmarshal(body, &eb) != nil || eb.Error != c.code || eb.Message == "") {
				t.Fatalf("%s %.80s: %d %s, want {\"error\":%q,...}", c.method, c.path, resp.StatusCode, body, c.code)
			}
		})
	}
	for name, cl := range map[string]string{"negative length": "-1", "overflowing length": "99999999999999999999"} {
		if st := rawStatus(t, o.url, "PATCH /uploads/"+ids[6]+" HTTP/1.1\r\nHost: x\r\n"+originclient.HeaderUploadOffset+": 0\r\nContent-Length: "+cl+"\r\n\r\ndata"); st != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, st)
		}
	}
	if err := o.srv.runner.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if left := leftBehind(before, snapshot(t, dirs...)); len(left) > 0 {
		t.Fatalf("bad input left files in the store: %q", left)
	}
	if after := o.backendObjects(t); !slices.Equal(after, objects) {
		t.Fatalf("bad input reached the backend: %q, before %q", after, objects)
	}
	if got := o.storedDigests(t); len(got) != 1 || got[0] != d {
		t.Fatalf("store holds %v, want only %s", got, d)
	}
	// The sessions the bad requests named are intact.
	if n, err := o.c.AppendUpload(ctx, ids[6], 0, bytes.NewReader(blob)); err != nil || n != int64(len(blob)) {
		t.Fatalf("append after bad requests: %d, %v", n, err)
	}
}
