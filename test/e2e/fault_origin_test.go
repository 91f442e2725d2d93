//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/test/cluster"
)

// faultClient bounds every request of the fault tests: a hang fails the test with the
// request named instead of stalling the suite.
var faultClient = &http.Client{Timeout: 60 * time.Second}

// faultDo sends one request and returns its status, headers and body, or the
// transport error (a process killed under it).
func faultDo(method, url string, body io.Reader, hdr map[string]string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := faultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// faultRandomBlob returns n random bytes and their digest.
func faultRandomBlob(t *testing.T, n int) ([]byte, digest.Digest) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, digest.FromBytes(b)
}

// faultPush uploads data monolithically through the proxy (POST ?digest=); nil once
// the proxy acknowledged it with 201.
func faultPush(repo string, data []byte) error {
	d := digest.FromBytes(data)
	url := fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?digest=%s", cluster.ProxyAddr, repo, d)
	st, _, body, err := faultDo(http.MethodPost, url, bytes.NewReader(data), map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("push %s: %w", d, err)
	}
	if st != http.StatusCreated {
		return fmt.Errorf("push %s: %d %s", d, st, body)
	}
	return nil
}

// faultPull reads a blob through the proxy and returns the digest of what came.
func faultPull(repo string, d digest.Digest) (digest.Digest, error) {
	st, _, body, err := faultDo(http.MethodGet, fmt.Sprintf("http://%s/v2/%s/blobs/%s", cluster.ProxyAddr, repo, d), nil, nil)
	if err != nil {
		return "", err
	}
	if st != http.StatusOK {
		return "", fmt.Errorf("GET blob %s: %d %.200s", d, st, body)
	}
	return digest.FromBytes(body), nil
}

// faultBackendPath is where the devcluster's filesystem backend keeps object name.
func faultBackendPath(name string) string {
	return filepath.Join(dev.State, "backend", filepath.FromSlash(name))
}

// faultInBackend reports whether blob d is in the backend with the right content.
func faultInBackend(d digest.Digest) bool {
	f, err := os.Open(faultBackendPath(backend.BlobName(d)))
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil)) == d.String()
}

// faultDowned tracks processes a fault test killed, so whatever the test's outcome they
// are started again and later tests find the whole cluster.
type faultDowned struct {
	t     *testing.T
	mu    sync.Mutex
	names map[string]bool
}

func newFaultDowned(t *testing.T) *faultDowned {
	k := &faultDowned{t: t, names: map[string]bool{}}
	t.Cleanup(func() {
		for name := range k.names {
			k.start(name)
		}
	})
	return k
}

// kill SIGKILLs the named processes at once and waits for each to exit.
func (k *faultDowned) kill(names ...string) {
	k.t.Helper()
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := dev.Kill(name); err != nil {
				k.t.Errorf("kill %s: %v", name, err)
				return
			}
			k.mu.Lock()
			k.names[name] = true
			k.mu.Unlock()
		}()
	}
	wg.Wait()
}

// start starts killed processes again and waits for their /health (30 s each).
func (k *faultDowned) start(names ...string) {
	k.t.Helper()
	for _, name := range names {
		k.mu.Lock()
		down := k.names[name]
		k.mu.Unlock()
		if !down {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := dev.StartProcess(ctx, name)
		cancel()
		if err != nil {
			k.t.Errorf("restart %s: %v", name, err)
			continue
		}
		k.mu.Lock()
		delete(k.names, name)
		k.mu.Unlock()
	}
}

// faultWait polls cond every 200 ms until it holds or limit passes.
func faultWait(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFaultOriginCrashWithWriteBackPending pushes blobs through the proxy and SIGKILLs
// every origin as soon as the pushes are acknowledged, then restarts them: each
// acknowledged blob reaches the backend with its sha256, from the restarted origins'
// durable write-back queues. All three are killed because a blob's other owner queues
// its own write-back (the replica's commit), which would hide a lost task on one.
//
// Half the blobs cannot be written back before the crash: a directory stands where
// the filesystem backend would rename the object, so their write-backs fail and stay
// queued; the directories go before the restart. The rest race the kill.
func TestFaultOriginCrashWithWriteBackPending(t *testing.T) {
	const repo = "e2e/fault-origin"
	const n, size = 8, 4 << 20
	blobs := make([][]byte, n)
	digests := make([]digest.Digest, n)
	for i := range blobs {
		blobs[i], digests[i] = faultRandomBlob(t, size)
	}
	blocked := digests[:n/2]
	for _, d := range blocked {
		if err := os.MkdirAll(faultBackendPath(backend.BlobName(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range blocked {
			_ = os.Remove(faultBackendPath(backend.BlobName(d))) // empty: never removes a blob
		}
	})

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range blobs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = faultPush(repo, blobs[i]) }()
	}
	wg.Wait()
	var acked []digest.Digest
	for i, err := range errs {
		if err != nil {
			t.Errorf("push %d (nothing was killed yet): %v", i, err)
			continue
		}
		acked = append(acked, digests[i])
	}

	down := newFaultDowned(t)
	var origins []string
	for _, o := range dev.Origins {
		origins = append(origins, o.Name)
	}
	down.kill(origins...)
	pending := 0
	for _, d := range acked {
		if !faultInBackend(d) {
			pending++
		}
	}
	t.Logf("%d blobs pushed, %d acknowledged; at the SIGKILL of %v, %d not in the backend yet (%d blocked on purpose)",
		n, len(acked), origins, pending, len(blocked))
	for _, d := range blocked {
		if err := os.Remove(faultBackendPath(backend.BlobName(d))); err != nil {
			t.Fatalf("remove write-back blocker of %s: %v", d, err)
		}
	}
	down.start(origins...)

	// Write-backs that failed before the crash wait out their backoff (1 s doubling).
	var missing []digest.Digest
	faultWait(60*time.Second, func() bool {
		missing = missing[:0]
		for _, d := range acked {
			if !faultInBackend(d) {
				missing = append(missing, d)
			}
		}
		return len(missing) == 0
	})
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged blobs not in the backend (%s) 60 s after the origins restarted: %v",
			len(missing), len(acked), filepath.Join(dev.State, "backend"), missing)
	}
	for _, d := range acked {
		got, err := faultPull(repo, d)
		if err != nil || got != d {
			t.Errorf("pull %s through the proxy after the restart: got %s, %v", d, got, err)
		}
	}
	t.Logf("after the restart: %d of %d acknowledged blobs in the backend with the right sha256, and pulled", len(acked), len(acked))
}
