//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/test/cluster"
)

func expectOCIError(t *testing.T, what string, status int, body []byte, wantStatus int, code string) {
	t.Helper()
	if status != wantStatus || !strings.Contains(string(body), `"`+code+`"`) {
		t.Fatalf("%s: got %d %s, want %d with code %s", what, status, body, wantStatus, code)
	}
}

func TestBadInputIsRejectedAndNothingStored(t *testing.T) {
	base := "http://" + cluster.ProxyAddr + "/v2/e2e/bad"
	data := []byte("some blob content that will never be stored")
	good := "sha256:" + sha256Hex(data)
	wrong := "sha256:" + sha256Hex([]byte("other"))

	t.Run("wrong digest on monolithic upload", func(t *testing.T) {
		st, _, body := httpDo(t, "POST", base+"/blobs/uploads/?digest="+wrong, bytes.NewReader(data), nil)
		expectOCIError(t, "upload", st, body, 400, "DIGEST_INVALID")
		for _, d := range []string{good, wrong} {
			if st, _, _ := httpDo(t, "HEAD", base+"/blobs/"+d, nil, nil); st != 404 {
				t.Fatalf("blob %s present after a rejected upload: %d", d, st)
			}
		}
	})
	t.Run("wrong digest on chunked upload", func(t *testing.T) {
		st, hdr, body := httpDo(t, "POST", base+"/blobs/uploads/", nil, nil)
		if st != 202 {
			t.Fatalf("start upload: %d %s", st, body)
		}
		loc := "http://" + cluster.ProxyAddr + hdr.Get("Location")
		st, _, body = httpDo(t, "PATCH", loc, bytes.NewReader(data), map[string]string{
			"Content-Range": fmt.Sprintf("0-%d", len(data)-1), "Content-Type": "application/octet-stream"})
		if st != 202 {
			t.Fatalf("patch: %d %s", st, body)
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		st, _, body = httpDo(t, "PUT", loc+sep+"digest="+wrong, nil, nil)
		expectOCIError(t, "commit", st, body, 400, "DIGEST_INVALID")
		if st, _, _ := httpDo(t, "HEAD", base+"/blobs/"+good, nil, nil); st != 404 {
			t.Fatalf("blob present after a rejected commit: %d", st)
		}
	})
	t.Run("bad Content-Range", func(t *testing.T) {
		_, hdr, _ := httpDo(t, "POST", base+"/blobs/uploads/", nil, nil)
		loc := "http://" + cluster.ProxyAddr + hdr.Get("Location")
		st, _, body := httpDo(t, "PATCH", loc, bytes.NewReader(data), map[string]string{
			"Content-Range": fmt.Sprintf("10-%d", len(data)+9)})
		expectOCIError(t, "patch at a gap", st, body, 416, "RANGE_INVALID")
	})
	t.Run("malformed manifest", func(t *testing.T) {
		st, _, body := httpDo(t, "PUT", base+"/manifests/broken", strings.NewReader(`{"schemaVersion":2,`),
			map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
		expectOCIError(t, "malformed manifest", st, body, 400, "MANIFEST_INVALID")
		if st, _, _ := httpDo(t, "GET", base+"/manifests/broken", nil, nil); st != 404 {
			t.Fatalf("tag exists after a rejected manifest: %d", st)
		}
	})
	t.Run("manifest referencing a missing blob", func(t *testing.T) {
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":5},"layers":[]}`, wrong)
		st, _, body := httpDo(t, "PUT", base+"/manifests/missing", strings.NewReader(m),
			map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
		expectOCIError(t, "dangling manifest", st, body, 400, "MANIFEST_BLOB_UNKNOWN")
		if st, _, _ := httpDo(t, "GET", base+"/manifests/missing", nil, nil); st != 404 {
			t.Fatalf("tag exists after a rejected manifest: %d", st)
		}
		if st, _, _ := httpDo(t, "GET", base+"/manifests/sha256:"+sha256Hex([]byte(m)), nil, nil); st != 404 {
			t.Fatalf("manifest stored after rejection: %d", st)
		}
	})
	t.Run("invalid repository name", func(t *testing.T) {
		st, _, body := httpDo(t, "GET", "http://"+cluster.ProxyAddr+"/v2/Bad_Name/manifests/v1", nil, nil)
		expectOCIError(t, "bad name", st, body, 400, "NAME_INVALID")
	})
	t.Run("invalid digest", func(t *testing.T) {
		st, _, body := httpDo(t, "GET", base+"/blobs/sha256:zzzz", nil, nil)
		expectOCIError(t, "bad digest", st, body, 400, "DIGEST_INVALID")
		st, _, body = httpDo(t, "GET", "http://"+dev.Agents[0].Registry+"/v2/e2e/bad/blobs/md5:abc", nil, nil)
		expectOCIError(t, "bad digest on agent", st, body, 400, "DIGEST_INVALID")
	})
}
