package main

import (
	"bufio"
	"encoding/json"
	"fmt"
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

	"github.com/shoal-p2p/shoal/lib/buildindexclient"
)

// backendFiles lists every file under root, with its size and modification time.
func backendFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, fmt.Sprintf("%s %d bytes, modified %d", path, fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
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

// TestHostileInput sends the build-index API traversals in repositories and tags,
// malformed tag bodies and headers. Each answer must be the documented status and
// {"error": code} body, and the backend directory must not change.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	h := start(t, root)
	d := digest.FromString("manifest").String()
	if err := h.client.PutTag(t.Context(), "team/app", "v1", digest.Digest(d)); err != nil {
		t.Fatal(err)
	}
	bad, missing := buildindexclient.CodeBadRequest, buildindexclient.CodeNotFound
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     string // "" where the error edge is not reached
	}{
		{"dot-dot repository", "PUT", "/tags/../../etc/_tag/v1", d, nil, 400, bad},
		{"escaped dot-dot repository", "PUT", "/tags/%2e%2e/%2e%2e/etc/_tag/v1", d, nil, 400, bad},
		{"escaped slashes in repository", "PUT", "/tags/team%2F..%2F..%2Fx/_tag/v1", d, nil, 400, bad},
		{"dot-dot component", "PUT", "/tags/team/../app/_tag/v1", d, nil, 400, bad},
		{"escaped traversal tag", "PUT", "/tags/team/app/_tag/..%2F..%2F..%2Fx", d, nil, 400, bad},
		{"dot-dot tag", "PUT", "/tags/team/app/_tag/%2e%2e", d, nil, 400, bad},
		{"tag holding a separator", "PUT", "/tags/team/app/_tag/v1/_tag/v2", d, nil, 400, bad},
		{"empty repository", "PUT", "/tags//_tag/v1", d, nil, 400, bad},
		{"NUL in tag", "GET", "/tags/team/app/_tag/v1%00", "", nil, 400, bad},
		{"repository of 256 bytes", "GET", "/tags/" + strings.Repeat("a", 256) + "/_list", "", nil, 400, bad},
		{"backslash repository", "GET", "/tags/team%5C..%5Capp/_list", "", nil, 400, bad},
		{"no repository", "GET", "/tags/_tag/v1", "", nil, 404, missing},
		{"uppercase repository HEAD", "HEAD", "/tags/Team/app/_tag/v1", "", nil, 400, ""},
		{"body with trailing garbage", "PUT", "/tags/team/app/_tag/v2", d + "\nrm -rf /", nil, 400, bad},
		{"body of JSON", "PUT", "/tags/team/app/_tag/v2", `{"digest":"` + d + `"}`, map[string]string{"Content-Type": "application/json"}, 400, bad},
		{"body with NUL", "PUT", "/tags/team/app/_tag/v2", d + "\x00", nil, 400, bad},
		{"uppercase digest", "PUT", "/tags/team/app/_tag/v2", strings.ToUpper(d), nil, 400, bad},
		{"traversal digest", "PUT", "/tags/team/app/_tag/v2", "sha256:../../../../etc/passwd", nil, 400, bad},
		{"body one byte over", "PUT", "/tags/team/app/_tag/v2", d + strings.Repeat(" ", 1<<10), nil, 400, bad},
		{"empty body", "PUT", "/tags/team/app/_tag/v2", "", nil, 400, bad},
		{"overwrite with garbage", "PUT", "/tags/team/app/_tag/v1", "latest", nil, 400, bad},
		{"DELETE a tag", "DELETE", "/tags/team/app/_tag/v1", "", nil, 405, ""},
		{"huge header", "GET", "/tags/team/app/_tag/v1", "", map[string]string{"X-Pad": strings.Repeat("x", 2<<20)}, 431, ""},
	}
	before := backendFiles(t, root)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), c.method, h.url+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			resp, err := h.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var eb buildindexclient.ErrorBody
			if resp.StatusCode != c.status {
				t.Fatalf("%s %.80s: %d %s, want %d", c.method, c.path, resp.StatusCode, body, c.status)
			}
			if c.code != "" && (json.Unmarshal(body, &eb) != nil || eb.Error != c.code || eb.Message == "") {
				t.Fatalf("%s %.80s: %d %s, want {\"error\":%q,...}", c.method, c.path, resp.StatusCode, body, c.code)
			}
		})
	}
	for name, cl := range map[string]string{"negative length": "-1", "overflowing length": "99999999999999999999"} {
		if st := rawStatus(t, h.url, "PUT /tags/team/app/_tag/v3 HTTP/1.1\r\nHost: x\r\nContent-Length: "+cl+"\r\n\r\n"+d); st != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, st)
		}
	}
	if after := backendFiles(t, root); !slices.Equal(after, before) {
		t.Fatalf("bad input changed the backend:\n%q\nbefore\n%q", after, before)
	}
	if got, err := h.client.GetTag(t.Context(), "team/app", "v1"); err != nil || got.String() != d {
		t.Fatalf("tag after bad input: %s, %v", got, err)
	}
}
