//go:build e2e

package preheat

import (
	"crypto/rand"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/preheat"
)

// krakenBody is the body Harbor's kraken provider POSTs, byte for byte in shape:
// capitalised keys, a 32-character alphanumeric Id, TimeStamp in RFC 3339 with
// nanoseconds, MediaType always the docker v2 manifest type (even for an OCI index),
// Request and Actor null.
func krakenBody(img testImage, at time.Time) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	id := make([]byte, 0, 32)
	for _, b := range randomBytes(32) {
		id = append(id, alnum[int(b)%len(alnum)])
	}
	return `{"Events":[{"Id":"` + string(id) + `","TimeStamp":"` + at.UTC().Format(time.RFC3339Nano) + `","Action":"push",` +
		`"Target":{"MediaType":"application/vnd.docker.distribution.manifest.v2+json","Digest":"` + img.index.String() + `",` +
		`"Repository":"` + img.repo + `","Url":"http://` + upstreamAddr + `/v2/` + img.repo + `/manifests/` + img.index.String() + `",` +
		`"Tag":"` + img.tag + `"},"Request":null,"Actor":null}]}`
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// TestKrakenNotificationWarmsOrigins: Harbor's kraken provider notifies a push of a
// two-platform index the origins have never seen. The proxy answers 200 {} at once,
// and its job pulls the index, both manifests, configs and layers from the configured
// upstream (basic auth from its config: Harbor sends no registry credentials on this
// contract) onto each blob's owner origins. With the upstream then stopped, the image
// pulls through an agent by digest, every byte as pushed.
func TestKrakenNotificationWarmsOrigins(t *testing.T) {
	upstream := startUpstream(t)
	img := pushImage(t, "e2e/kraken", "v1", 200<<10, 3<<19, 4<<20)
	// Cold: the job must do the work.
	for _, d := range img.blobs() {
		requireNowhere(t, img.repo, d)
	}
	if t.Failed() {
		t.FailNow()
	}

	before := listJobs(t)
	// A TimeStamp with all nine fraction digits.
	at := time.Now().UTC().Truncate(time.Second).Add(297830075 * time.Nanosecond)
	code, _, body := call(t, http.MethodPost, proxyURL+"/registry/notifications", harborHeaders(token, true), krakenBody(img, at))
	if code != http.StatusOK || strings.TrimSpace(string(body)) != "{}" {
		t.Fatalf("POST /registry/notifications: %d %s; want 200 {}", code, body)
	}
	jobs := newJobs(before, listJobs(t))
	if len(jobs) != 1 {
		t.Fatalf("the notification started %d jobs: %+v", len(jobs), jobs)
	}
	j := jobs[0]
	want := preheat.Target{Registry: upstreamAddr, Repository: img.repo, Reference: img.index.String()}
	if j.Source != preheat.SourceKraken || j.Target != want || j.Scope != preheat.DefaultScope {
		t.Fatalf("job %+v; want a kraken job of scope %s for %+v", j, preheat.DefaultScope, want)
	}
	s := waitJob(t, j.ID)
	checkWarmed(t, s, img)
	requireOnOwners(t, img, img.blobs())

	// Upstream gone: everything comes from the cluster.
	upstream.Stop()
	if resp, err := http.Get("http://" + upstreamAddr + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("the upstream still answers after its stop: %s", resp.Status)
	}
	for i, p := range img.platforms {
		checkAgentPull(t, i, img, p)
	}
}

// checkAgentPull reads img by digest through agent i: the index and p's manifest byte
// for byte, p's config and every layer byte for byte; then crane pulls p's image from
// the index (crane checks every digest itself).
func checkAgentPull(t *testing.T, i int, img testImage, p platformImage) {
	t.Helper()
	agent := dev.Agents[i].Registry
	ref := func(d digest.Digest) string { return agent + "/" + img.repo + "@" + d.String() }
	for _, d := range []digest.Digest{img.index, p.manifest} {
		if got := tool(t, "crane", "manifest", "--insecure", ref(d)); got != string(img.raw[d]) {
			t.Fatalf("%s: manifest %s differs from the pushed one:\n%s\nwant:\n%s", dev.Agents[i].Name, d, got, img.raw[d])
		}
	}
	for _, d := range append([]digest.Digest{p.config}, p.layers...) {
		got := tool(t, "crane", "blob", "--insecure", ref(d))
		if got != string(img.raw[d]) {
			t.Fatalf("%s: blob %s is %d bytes of digest %s, want the pushed %d bytes", dev.Agents[i].Name, d,
				len(got), digest.FromString(got), len(img.raw[d]))
		}
	}
	tool(t, "crane", "pull", "--insecure", "--platform", p.platform, ref(img.index), filepath.Join(t.TempDir(), "image.tar"))
}
