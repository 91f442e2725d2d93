//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/test/cluster"
)

// pushBlob uploads b monolithically through the proxy and returns its digest.
func pushBlob(t *testing.T, repo string, b []byte) string {
	t.Helper()
	d := "sha256:" + sha256Hex(b)
	url := fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?digest=%s", cluster.ProxyAddr, repo, d)
	status, _, body := httpDo(t, "POST", url, bytes.NewReader(b), map[string]string{"Content-Type": "application/octet-stream"})
	if status != 201 {
		t.Fatalf("push blob: %d %s", status, body)
	}
	return d
}

func TestOCIArtifactPushAndPullThroughAgents(t *testing.T) {
	repo := "e2e/artifact"
	payload := make([]byte, 2<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	empty := []byte("{}")
	cfg := pushBlob(t, repo, empty)
	layer := pushBlob(t, repo, payload)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"artifactType":"application/vnd.shoal.test.report",`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},`+
		`"layers":[{"mediaType":"application/vnd.shoal.test.payload","digest":"%s","size":%d,`+
		`"annotations":{"org.opencontainers.image.title":"payload.bin"}}]}`, cfg, layer, len(payload))
	status, hdr, body := httpDo(t, "PUT", fmt.Sprintf("http://%s/v2/%s/manifests/v1", cluster.ProxyAddr, repo),
		strings.NewReader(manifest), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
	if status != 201 {
		t.Fatalf("put artifact manifest: %d %s", status, body)
	}
	md := "sha256:" + sha256Hex([]byte(manifest))
	if hdr.Get("Docker-Content-Digest") != md {
		t.Fatalf("manifest digest header %q, want %s", hdr.Get("Docker-Content-Digest"), md)
	}
	for _, i := range []int{0, 1} {
		base := "http://" + dev.Agents[i].Registry + "/v2/" + repo
		for _, ref := range []string{"v1", md} {
			status, hdr, body := httpDo(t, "GET", base+"/manifests/"+ref, nil, map[string]string{
				"Accept": "application/vnd.oci.image.manifest.v1+json"})
			if status != 200 || string(body) != manifest {
				t.Fatalf("agent %d manifest %s: %d %s", i, ref, status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/vnd.oci.image.manifest.v1+json" {
				t.Fatalf("agent %d manifest content type %q", i, ct)
			}
		}
		status, _, body := httpDo(t, "GET", base+"/blobs/"+layer, nil, nil)
		if status != 200 || "sha256:"+sha256Hex(body) != layer {
			t.Fatalf("agent %d artifact payload: %d, %d bytes", i, status, len(body))
		}
		// A range from the middle of the payload.
		status, _, body = httpDo(t, "GET", base+"/blobs/"+layer, nil, map[string]string{"Range": "bytes=1000-1999"})
		if status != 206 || !bytes.Equal(body, payload[1000:2000]) {
			t.Fatalf("agent %d range: %d, %d bytes", i, status, len(body))
		}
	}
}
