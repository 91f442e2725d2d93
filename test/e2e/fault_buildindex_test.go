//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/test/cluster"
)

// tagPush is one manifest PUT by tag through the proxy and how it ended.
type tagPush struct {
	tag    string
	digest digest.Digest
	err    error // nil: acknowledged (201)
}

// TestFaultBuildIndexKilledDuringTagPushes pushes tags through the proxy from four
// pushers while build-index is SIGKILLed and restarted under them: every tag whose
// push was acknowledged resolves afterwards, through the proxy and build-index, to its
// manifest's digest. A push that got an error may be lost.
func TestFaultBuildIndexKilledDuringTagPushes(t *testing.T) {
	const repo = "e2e/fault-buildindex"
	const pushers = 4
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer, layerDigest := faultRandomBlob(t, 64<<10)
	for _, b := range [][]byte{config, layer} {
		if err := faultPush(repo, b); err != nil {
			t.Fatal(err)
		}
	}
	// Each tag names its own manifest (an annotation), so a tag resolving to another
	// push's manifest shows.
	manifest := func(tag string) []byte {
		m := map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(config), "size": len(config)},
			"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": len(layer)}},
			"annotations":   map[string]string{"e2e.fault/tag": tag},
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	var (
		mu      sync.Mutex
		pushes  []tagPush
		acked   atomic.Int64
		failed  atomic.Int64
		stop    = make(chan struct{})
		pushing sync.WaitGroup
	)
	for p := range pushers {
		pushing.Add(1)
		go func() {
			defer pushing.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("p%d-%04d", p, i)
				body := manifest(tag)
				st, _, resp, err := faultDo(http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", cluster.ProxyAddr, repo, tag),
					bytes.NewReader(body), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
				if err == nil && st != http.StatusCreated {
					err = fmt.Errorf("%d %.300s", st, resp)
				}
				mu.Lock()
				pushes = append(pushes, tagPush{tag: tag, digest: digest.FromBytes(body), err: err})
				mu.Unlock()
				if err != nil {
					failed.Add(1)
					time.Sleep(50 * time.Millisecond) // pace retries while build-index is down
				} else {
					acked.Add(1)
				}
			}
		}()
	}
	stopPushers := sync.OnceFunc(func() { close(stop); pushing.Wait() })
	defer stopPushers()

	ackedAtLeast := func(n int64) func() bool { return func() bool { return acked.Load() >= n } }
	if !faultWait(30*time.Second, ackedAtLeast(20)) {
		t.Fatalf("only %d tag pushes acknowledged in 30 s before any fault (%d failed)", acked.Load(), failed.Load())
	}
	down := newFaultDowned(t)
	down.kill("buildindex")
	ackedAtKill := acked.Load()
	// Let every pusher see build-index gone, twice, before it comes back.
	if !faultWait(10*time.Second, func() bool { return failed.Load() >= 2*pushers }) {
		t.Logf("only %d pushes failed within 10 s of the SIGKILL", failed.Load())
	}
	down.start("buildindex")
	ackedAtRestart := acked.Load()
	if !faultWait(30*time.Second, ackedAtLeast(ackedAtRestart+20)) {
		t.Errorf("pushes did not recover after build-index restarted: %d acknowledged since (%d failed in all)", acked.Load()-ackedAtRestart, failed.Load())
	}
	stopPushers()

	var lost, failedResolved, failedLost []string
	okCount := 0
	listed := map[string]bool{}
	st, _, body, err := faultDo(http.MethodGet, fmt.Sprintf("http://%s/v2/%s/tags/list", cluster.ProxyAddr, repo), nil, nil)
	if err != nil || st != http.StatusOK {
		t.Fatalf("tags/list after the restart: %d %s %v", st, body, err)
	}
	var list struct{ Tags []string }
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("tags/list %s: %v", body, err)
	}
	for _, tag := range list.Tags {
		listed[tag] = true
	}
	for _, p := range pushes {
		got, why := resolveTag(repo, p.tag)
		if p.err != nil {
			if got == p.digest {
				failedResolved = append(failedResolved, p.tag)
			} else {
				failedLost = append(failedLost, p.tag)
			}
			continue
		}
		switch {
		case got != p.digest:
			lost = append(lost, fmt.Sprintf("%s (want %s: %s)", p.tag, p.digest, why))
		case !listed[p.tag]:
			lost = append(lost, p.tag+" (resolves but missing from tags/list)")
		default:
			okCount++
		}
	}
	t.Logf("%d tag pushes: %d acknowledged (%d before the SIGKILL, %d after the restart), %d failed (%d of them resolve anyway, %d lost, as allowed); %d acknowledged tags resolve after",
		len(pushes), acked.Load(), ackedAtKill, acked.Load()-ackedAtRestart, failed.Load(), len(failedResolved), len(failedLost), okCount)
	for _, p := range pushes {
		if p.err != nil {
			t.Logf("push %s failed: %v", p.tag, p.err)
			break
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged tags lost or wrong after build-index's restart: %s", len(lost), strings.Join(lost, "; "))
	}
	// And each reached the backend (build-index acknowledges once durable locally).
	var unwritten []string
	faultWait(30*time.Second, func() bool {
		unwritten = unwritten[:0]
		for _, p := range pushes {
			if link, err := os.ReadFile(faultBackendPath(backend.TagName(repo, p.tag))); p.err == nil && (err != nil || string(link) != p.digest.String()) {
				unwritten = append(unwritten, p.tag)
			}
		}
		return len(unwritten) == 0
	})
	if len(unwritten) > 0 {
		t.Fatalf("%d acknowledged tags not in the backend 30 s after build-index restarted: %v", len(unwritten), unwritten)
	}
}

// resolveTag returns the digest a tag resolves to through the proxy, checked against
// the manifest bytes served and build-index's own answer; "" and why otherwise.
func resolveTag(repo, tag string) (digest.Digest, string) {
	st, hdr, body, err := faultDo(http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", cluster.ProxyAddr, repo, tag), nil,
		map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})
	if err != nil || st != http.StatusOK {
		return "", fmt.Sprintf("proxy GET manifest: %d %.200s %v", st, body, err)
	}
	d := digest.FromBytes(body)
	if h := hdr.Get("Docker-Content-Digest"); h != d.String() {
		return "", fmt.Sprintf("proxy served %s under Docker-Content-Digest %s", d, h)
	}
	st, _, link, err := faultDo(http.MethodGet, fmt.Sprintf("http://%s/tags/%s/_tag/%s", cluster.BuildIndexAddr, repo, tag), nil, nil)
	if err != nil || st != http.StatusOK || string(link) != d.String() {
		return "", fmt.Sprintf("build-index GET tag: %d %q %v", st, link, err)
	}
	return d, ""
}
