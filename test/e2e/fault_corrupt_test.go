//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/hashring"
	"github.com/shoal-p2p/shoal/test/cluster"
)

// fileSHA256 is the sha256 digest of the file at path.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// waitFor polls cond every 100 ms for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFaultCorruptOriginCopy flips bytes (same size) in the first owner origin's
// stored copy of a layer, in the middle of the blob, then pulls it through every
// agent: each gets the right digest, the corrupt copy is detected, quarantined (never
// served) and fetched again from the backend, and the origin then serves it right.
func TestFaultCorruptOriginCopy(t *testing.T) {
	repo := "e2e/fault-corrupt"
	tool(t, "crane", "append", "--insecure", "-f", randomLayerTar(t, 40<<20), "-t", proxyRef(repo+":v1"))
	m := parseManifest(t, tool(t, "crane", "manifest", "--insecure", proxyRef(repo+":v1")))
	layer := m.Layers[0].Digest
	d := digest.Digest(layer)

	var bases []string
	byBase := map[string]cluster.Origin{}
	for _, o := range dev.Origins {
		bases = append(bases, "http://"+o.Addr)
		byBase["http://"+o.Addr] = o
	}
	victim := byBase[hashring.Owners(layer, bases, 1)[0]]
	stored := filepath.Join(dev.State, victim.Name, "blobs", "sha256", d.Encoded())
	backendCopy := filepath.Join(dev.State, "backend", filepath.FromSlash(backend.BlobName(d)))
	waitFor(t, "the layer's write-back to the backend", func() bool {
		_, err := os.Stat(backendCopy)
		return err == nil
	})
	waitFor(t, victim.Name+" to hold the layer", func() bool {
		_, err := os.Stat(stored)
		return err == nil
	})

	f, err := os.OpenFile(stored, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	bad := make([]byte, 4096)
	if _, err := f.ReadAt(bad, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	for i := range bad {
		bad[i] ^= 0xff
	}
	if _, err := f.WriteAt(bad, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := fileSHA256(t, stored); got == layer {
		t.Fatal("the copy is not corrupt")
	}
	t.Logf("flipped 4 KiB in the middle of %s's copy of %s", victim.Name, layer)

	pullOnEveryAgent(t, repo, layer, nil)

	if n := metric(t, victim.Addr, "shoal_origin_corrupt_blobs", func(v float64) bool { return v >= 1 }); n < 1 {
		t.Errorf("%s counted %v corrupt blobs, want at least 1", victim.Name, n)
	}
	quarantine := filepath.Join(dev.State, victim.Name, "quarantine", "sha256")
	entries, err := os.ReadDir(quarantine)
	if err != nil || len(entries) == 0 || !strings.HasPrefix(entries[0].Name(), d.Encoded()+".") {
		t.Fatalf("quarantine of %s: %v, %v; want the corrupt copy there", victim.Name, entries, err)
	}
	waitFor(t, victim.Name+" to fetch a good copy again", func() bool {
		_, err := os.Stat(stored)
		return err == nil
	})
	if got := fileSHA256(t, stored); got != layer {
		t.Errorf("%s's copy after the refetch is %s, want %s", victim.Name, got, layer)
	}
	status, _, body := httpDo(t, "GET", "http://"+victim.Addr+"/blobs/"+layer, nil, nil)
	if status != 200 || "sha256:"+sha256Hex(body) != layer {
		t.Errorf("GET from %s after the refetch: %d, %d bytes", victim.Name, status, len(body))
	}
}
