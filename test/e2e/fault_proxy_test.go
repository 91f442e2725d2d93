//go:build e2e

package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/test/cluster"
)

// TestFaultProxyRestartDuringChunkedUpload drives a chunked upload through the proxy by
// hand while the proxy is restarted under it. Sessions live on an origin, so a restart
// between chunks loses nothing: the next chunk is accepted. A SIGKILL while a chunk is
// streaming leaves part of it on the origin, so the client's next PATCH at its own
// offset gets a clear OCI error (RANGE_INVALID, not a hang or a bare 500). The client
// gives that session up; a retried push of the same blob succeeds, and the origins
// remove the abandoned session after upload_ttl (20 s in config/devcluster/origin.yaml).
func TestFaultProxyRestartDuringChunkedUpload(t *testing.T) {
	const repo = "e2e/fault-proxy"
	const chunk = 1 << 20
	blob, d := faultRandomBlob(t, 3*chunk)
	base := "http://" + cluster.ProxyAddr
	down := newFaultDowned(t)

	st, hdr, body, err := faultDo(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil || st != http.StatusAccepted {
		t.Fatalf("start upload: %d %s %v", st, body, err)
	}
	loc := base + hdr.Get("Location")
	origin, uploadFile := uploadOnOrigin(t, hdr.Get("Location"))
	t.Logf("upload session on %s (%s)", origin, uploadFile)
	patch := func(from, to int, r io.Reader) (int, http.Header, []byte, error) {
		return faultDo(http.MethodPatch, loc, r, map[string]string{
			"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("%d-%d", from, to-1)})
	}

	// Chunk 1, then a restart between chunks: chunk 2 goes on where chunk 1 stopped.
	if st, _, body, err := patch(0, chunk, bytes.NewReader(blob[:chunk])); err != nil || st != http.StatusAccepted {
		t.Fatalf("PATCH chunk 1: %d %s %v", st, body, err)
	}
	down.kill("proxy")
	down.start("proxy")
	st, hdr, body, err = patch(chunk, 2*chunk, bytes.NewReader(blob[chunk:2*chunk]))
	if err != nil || st != http.StatusAccepted || hdr.Get("Range") != fmt.Sprintf("0-%d", 2*chunk-1) {
		t.Fatalf("PATCH chunk 2 after a proxy restart between chunks: %d Range %q %s %v", st, hdr.Get("Range"), body, err)
	}

	// Chunk 3 is streaming when the proxy is killed: part of it has reached the origin.
	pr, pw := io.Pipe()
	result := make(chan error, 1)
	go func() {
		st, _, body, err := faultDo(http.MethodPatch, loc, pr, map[string]string{
			"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("%d-%d", 2*chunk, 3*chunk-1)})
		if err == nil {
			err = fmt.Errorf("answered %d %s", st, body)
		}
		result <- err
	}()
	// The client sends a quarter of the chunk, then the rest once the proxy is gone
	// (a sender that stops sending never hears of the broken connection).
	killed := make(chan struct{})
	go func() {
		defer pw.Close()
		if _, err := pw.Write(blob[2*chunk : 2*chunk+chunk/4]); err != nil {
			return
		}
		<-killed
		_, _ = pw.Write(blob[2*chunk+chunk/4 : 3*chunk])
	}()
	if !faultWait(20*time.Second, func() bool { fi, err := os.Stat(uploadFile); return err == nil && fi.Size() > 2*chunk }) {
		t.Fatalf("the first quarter of chunk 3 did not reach %s in 20 s", uploadFile)
	}
	down.kill("proxy")
	close(killed)
	select {
	case err := <-result:
		t.Logf("PATCH chunk 3 cut by the SIGKILL: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("PATCH chunk 3 still hanging 30 s after the proxy was killed")
	}
	down.start("proxy")

	// The client's next PATCH, from the offset it last had acknowledged.
	st, hdr, body, err = patch(2*chunk, 3*chunk, bytes.NewReader(blob[2*chunk:]))
	if err != nil {
		t.Fatalf("PATCH chunk 3 again after the restart: %v", err)
	}
	code := ociErrorCode(body)
	t.Logf("PATCH chunk 3 again after the restart: %d %s", st, body)
	if st != http.StatusRequestedRangeNotSatisfiable || code != oci.CodeRangeInvalid.Name {
		t.Fatalf("PATCH chunk 3 again: %d %s (code %q), want 416 RANGE_INVALID: the origin kept part of the cut chunk", st, body, code)
	}
	st, hdr, body, err = faultDo(http.MethodGet, loc, nil, nil)
	if err != nil || st != http.StatusNoContent {
		t.Fatalf("GET upload status after the restart: %d %s %v", st, body, err)
	}
	t.Logf("the cut session holds %s; the client gives it up and pushes again", hdr.Get("Range"))

	// A retried push of the same blob, chunked through a new session.
	st, hdr, body, err = faultDo(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil || st != http.StatusAccepted {
		t.Fatalf("start the retried upload: %d %s %v", st, body, err)
	}
	retry := base + hdr.Get("Location")
	for off := 0; off < len(blob); off += chunk {
		st, _, body, err := faultDo(http.MethodPatch, retry, bytes.NewReader(blob[off:off+chunk]), map[string]string{
			"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("%d-%d", off, off+chunk-1)})
		if err != nil || st != http.StatusAccepted {
			t.Fatalf("retried upload: PATCH at %d: %d %s %v", off, st, body, err)
		}
	}
	sep := "?"
	if strings.Contains(retry, "?") {
		sep = "&"
	}
	st, hdr, body, err = faultDo(http.MethodPut, retry+sep+"digest="+d.String(), nil, nil)
	if err != nil || st != http.StatusCreated || hdr.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("retried upload: PUT: %d %s %v", st, body, err)
	}
	if got, err := faultPull(repo, d); err != nil || got != d {
		t.Fatalf("pull the retried blob: got %s, %v; want %s", got, err, d)
	}

	// The abandoned session goes after upload_ttl (20 s, checked every 5 s), and with it
	// every other left on the origins.
	var left []string
	faultWait(60*time.Second, func() bool {
		left = left[:0]
		for _, o := range dev.Origins {
			entries, err := os.ReadDir(filepath.Join(dev.State, o.Name, "uploads"))
			if err != nil {
				left = append(left, fmt.Sprintf("%s: %v", o.Name, err))
			}
			for _, e := range entries {
				left = append(left, o.Name+"/uploads/"+e.Name())
			}
		}
		return len(left) == 0
	})
	if _, err := os.Stat(uploadFile); err == nil {
		t.Fatalf("the abandoned session %s is still on %s 60 s later (upload_ttl 20 s)", uploadFile, origin)
	}
	if len(left) > 0 {
		t.Fatalf("upload sessions still on the origins 60 s later (upload_ttl 20 s): %v", left)
	}
	t.Logf("1 blob of %d bytes pushed again and pulled with its digest; the abandoned session removed, no upload left on any origin", len(blob))
}

// uploadOnOrigin returns the origin an upload Location names (its id is
// base64url(origin URL) "." origin's id) and the session's file in that origin's store.
func uploadOnOrigin(t *testing.T, location string) (string, string) {
	t.Helper()
	id := location[strings.LastIndex(location, "/")+1:]
	id, _, _ = strings.Cut(id, "?")
	enc, oid, ok := strings.Cut(id, ".")
	url, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil {
		t.Fatalf("upload id %q is not <base64url origin>.<id>: %v", id, err)
	}
	for _, o := range dev.Origins {
		if string(url) == "http://"+o.Addr {
			return o.Name, filepath.Join(dev.State, o.Name, "uploads", oid)
		}
	}
	t.Fatalf("upload id %q names %q, not a devcluster origin", id, url)
	return "", ""
}

// ociErrorCode returns the first code of an OCI error envelope, "" if body is none.
func ociErrorCode(body []byte) string {
	var env oci.Envelope
	if json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}
