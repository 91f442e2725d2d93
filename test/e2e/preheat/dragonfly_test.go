//go:build e2e

package preheat

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/preheat"
	"github.com/shoal-p2p/shoal/test/cluster"
)

// upstreamAuth is the registry header a dragonfly job carries in args.headers (Harbor
// puts its pull token there; the upstream here takes basic auth).
func upstreamAuth() string { return "Basic " + basicCredentials() }

// settledMetric reads a proxy preheat counter once two reads 1.2 s apart agree: tally
// flushes to /metrics every second, so earlier increments are in.
func settledMetric(t *testing.T, name string) float64 {
	t.Helper()
	v := proxyMetric(t, name, func(float64) bool { return true })
	for range 10 {
		time.Sleep(1200 * time.Millisecond)
		next := proxyMetric(t, name, func(float64) bool { return true })
		if next == v {
			return v
		}
		v = next
	}
	t.Fatalf("proxy metric %s still moving: %v", name, v)
	return v
}

// TestDragonflyJobAllSeedPeers: Harbor's dragonfly provider asks for scope
// all_seed_peers of a tag the cluster has never seen, with the upstream's credentials in
// args.headers. The create answer is a job with an integer id; its polls are PENDING
// until it is SUCCESS with one success task per owner origin of the image's blobs, and
// every blob is on its owners. The same job again is a SUCCESS too, copying nothing.
func TestDragonflyJobAllSeedPeers(t *testing.T) {
	startUpstream(t)
	img := pushImage(t, "e2e/dragonfly", "v1", 200<<10, 3<<19, 4<<20)
	for _, d := range img.blobs() {
		requireNowhere(t, img.repo, d)
	}
	if t.Failed() {
		t.FailNow()
	}
	n := float64(len(img.blobs()))
	body := dragonflyBody(img.manifestURL(upstreamAddr), upstreamAuth(), "all_seed_peers")
	var wantNames []string
	for _, o := range ownerSet(img.blobs()) {
		wantNames = append(wantNames, originTaskName(t, o))
	}
	slices.Sort(wantNames)

	// run creates the job, polls it to the end and checks Harbor's view of the result.
	run := func(what string) int64 {
		t.Helper()
		created := createDragonfly(t, body)
		id := created.id(t)
		final, pending := waitDragonfly(t, id)
		t.Logf("%s: job %d created %s, polls saw PENDING: %v, final %s", what, id, created.State, pending, final.State)
		errMsg, ok, failed := final.result(t)
		if final.State != "SUCCESS" || errMsg != "" || len(failed) != 0 {
			t.Fatalf("%s: job %d %s, error %q, failure tasks %+v; want SUCCESS", what, id, final.State, errMsg, failed)
		}
		// One task per owner origin (Harbor lists them), named by host:port: the
		// devcluster's origins differ by port only.
		if got := hostnames(ok); !slices.Equal(got, wantNames) {
			t.Errorf("%s: success tasks %v, want one per owner origin %v", what, got, wantNames)
		}
		for _, task := range ok {
			if task.IP != "127.0.0.1" || !strings.Contains(task.URL, img.repo) {
				t.Errorf("%s: success task %+v: want ip 127.0.0.1 and the image's URL", what, task)
			}
		}
		s := getJob(t, id)
		want := preheat.Target{Registry: upstreamAddr, Repository: img.repo, Reference: img.tag, URL: img.manifestURL(upstreamAddr)}
		if s.Source != preheat.SourceDragonfly || s.Scope != preheat.ScopeAllSeedPeers || s.Target != want {
			t.Errorf("%s: job %+v; want a dragonfly all_seed_peers job for %+v", what, s.Summary, want)
		}
		checkWarmed(t, s, img)
		return id
	}

	warmed := settledMetric(t, "blobs_warmed")
	run("first job")
	requireOnOwners(t, img, img.blobs())
	if got := proxyMetric(t, "blobs_warmed", func(v float64) bool { return v >= warmed+n }); got != warmed+n {
		t.Fatalf("the first job copied %v blobs, want each of the %v once", got-warmed, n)
	}

	// Idempotent: the same job finds everything warm and copies nothing.
	skipped := settledMetric(t, "blobs_skipped")
	run("second job")
	if got := proxyMetric(t, "blobs_skipped", func(v float64) bool { return v >= skipped+n }); got != skipped+n {
		t.Errorf("the second job skipped %v blobs as warm, want all %v", got-skipped, n)
	}
	if got := settledMetric(t, "blobs_warmed"); got != warmed+n {
		t.Errorf("the second job copied %v blobs, want none", got-warmed-n)
	}
	requireOnOwners(t, img, img.blobs())
}

// TestDragonflyMissingTag: a job for a tag the upstream does not have (its repository
// exists) is a FAILURE whose error names the tag, and warms nothing.
func TestDragonflyMissingTag(t *testing.T) {
	startUpstream(t)
	img := pushImage(t, "e2e/missingtag", "v1", 64<<10, 128<<10, 2<<20)
	const missing = "no-such-tag-e2e"
	body := dragonflyBody("http://"+upstreamAddr+"/v2/"+img.repo+"/manifests/"+missing, upstreamAuth(), "all_seed_peers")
	id := createDragonfly(t, body).id(t)
	final, _ := waitDragonfly(t, id)
	errMsg, ok, _ := final.result(t)
	if final.State != "FAILURE" || !strings.Contains(errMsg, missing) || len(ok) != 0 {
		t.Fatalf("job %d: %s, error %q, success tasks %+v; want FAILURE naming tag %s", id, final.State, errMsg, ok, missing)
	}
	s := getJob(t, id)
	if s.State != preheat.StateFailure || !strings.Contains(s.Error, img.repo+":"+missing) || len(s.Blobs) != 0 || s.Digest != "" {
		t.Fatalf("job %+v; want a FAILURE naming %s:%s with nothing planned", s, img.repo, missing)
	}
	for _, d := range img.blobs() {
		requireNowhere(t, img.repo, d)
	}
}

// TestUpstreamGoneMidJob: the upstream's connection dies after 1.5 MiB of a 6 MiB
// layer (a proxy in front of it cuts every GET of that blob there). The job is a
// FAILURE listing exactly that blob as missing, its owners as failure tasks; the cut
// blob is on no origin, not in the backend and not served by the proxy, no upload
// session is left behind, and every other blob is on its owners.
func TestUpstreamGoneMidJob(t *testing.T) {
	startUpstream(t)
	img := pushImage(t, "e2e/cut", "v1", 100<<10, 3<<19, 6<<20)
	cut := img.platforms[0].layers[2]
	const limit = 3<<19 + 12345 // past the job's 1 MiB progress step
	cp := newCutProxy(t, cut, limit)

	id := createDragonfly(t, dragonflyBody(img.manifestURL(cp.addr), upstreamAuth(), "all_seed_peers")).id(t)
	final, _ := waitDragonfly(t, id)
	if n := cp.cutCount(); n == 0 {
		t.Fatalf("job %d ended %s without fetching %s through the cutting proxy", id, final.State, cut)
	}
	errMsg, ok, failed := final.result(t)
	if final.State != "FAILURE" || !strings.Contains(errMsg, cut.String()) {
		t.Fatalf("job %d: %s, error %q; want FAILURE naming %s", id, final.State, errMsg, cut)
	}
	var wantFailed, wantOK []string
	for _, o := range ownerSet(img.blobs()) {
		if slices.Contains(owners(cut), o) {
			wantFailed = append(wantFailed, originTaskName(t, o))
		} else {
			wantOK = append(wantOK, originTaskName(t, o))
		}
	}
	if got := hostnames(failed); !slices.Equal(got, wantFailed) {
		t.Errorf("failure tasks %v, want the cut blob's owners %v", got, wantFailed)
	}
	if got := hostnames(ok); !slices.Equal(got, wantOK) {
		t.Errorf("success tasks %v, want the other owners %v", got, wantOK)
	}
	for _, task := range failed {
		if !strings.Contains(task.Description, cut.String()) {
			t.Errorf("failure task %+v does not name %s", task, cut)
		}
	}

	s := getJob(t, id)
	if s.State != preheat.StateFailure || !slices.Equal(s.Missing, []digest.Digest{cut}) || !strings.Contains(s.Error, cut.String()) {
		t.Fatalf("job %d: %s, missing %v, error %q; want FAILURE missing just %s", id, s.State, s.Missing, s.Error, cut)
	}
	var others []digest.Digest
	for _, b := range s.Blobs {
		switch {
		case b.Digest != cut:
			others = append(others, b.Digest)
			if b.HostsDone != b.HostsTotal || b.Error != "" {
				t.Errorf("blob %s: %d of %d hosts, error %q; only %s was cut", b.Digest, b.HostsDone, b.HostsTotal, b.Error, cut)
			}
		case b.Error == "" || b.HostsDone != 0 || b.BytesDone <= 0 || b.BytesDone >= b.BytesTotal:
			// Midway: some bytes were recorded before the cut, never all.
			t.Errorf("cut blob %+v: want an error, no host done and 0 < bytes_done < bytes_total", b)
		}
	}
	if len(others) != len(img.blobs())-1 {
		t.Fatalf("job %d planned %d blobs besides the cut one, want %d", id, len(others), len(img.blobs())-1)
	}

	requireNowhere(t, img.repo, cut)
	requireOnOwners(t, img, others)
	// The failed copy's upload session was cancelled, not left on its origin.
	for _, o := range dev.Origins {
		left, err := os.ReadDir(filepath.Join(dev.State, o.Name, "uploads"))
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("%s keeps %d upload sessions after the job: %v", o.Name, len(left), left)
		}
	}
}

// TestDragonflyJobAllPeers: scope all_peers of a cold image ends SUCCESS with one
// success task per owner origin and one per agent (each agent learns of the blobs from
// the trackers' warm feed and fetches them itself); every agent's own store holds every
// blob before any pull asks for it, and pulls through every agent then are cache hits
// only: no agent fetches anything.
func TestDragonflyJobAllPeers(t *testing.T) {
	startUpstream(t)
	img := pushImage(t, "e2e/allpeers", "v1", 300<<10, 3<<19, 5<<20)
	var want []string
	for _, o := range ownerSet(img.blobs()) {
		want = append(want, originTaskName(t, o))
	}
	for _, a := range dev.Agents {
		want = append(want, fmt.Sprintf("agent %s:%d", a.PeerIP, a.PeerPort))
	}
	slices.Sort(want)

	created := createDragonfly(t, dragonflyBody(img.manifestURL(upstreamAddr), upstreamAuth(), "all_peers"))
	id := created.id(t)
	final, pending := waitDragonfly(t, id)
	errMsg, ok, failed := final.result(t)
	t.Logf("job %d: polls saw PENDING: %v, final %s", id, pending, final.State)
	if final.State != "SUCCESS" || errMsg != "" || len(failed) != 0 {
		t.Fatalf("job %d %s, error %q, failure tasks %+v; want SUCCESS", id, final.State, errMsg, failed)
	}
	if got := hostnames(ok); !slices.Equal(got, want) {
		t.Fatalf("success tasks %v, want one per owner origin and agent %v", got, want)
	}
	requireOnOwners(t, img, img.blobs())

	// Every agent holds every blob in its own store, before any pull.
	misses := map[string]float64{}
	for _, a := range dev.Agents {
		store, err := blobstore.New(filepath.Join(dev.State, a.Name))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range img.blobs() {
			if got := storedHash(t, store, d); got != d.String() {
				t.Errorf("%s does not hold %s after the job (hash %q)", a.Name, d, got)
			}
		}
		// Counters reach /metrics within a second (tally's flush): wait for them.
		var m map[string]float64
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			var err error
			if m, err = cluster.Scrape(t.Context(), a.Registry); err != nil {
				t.Fatal(err)
			}
			if cluster.Sum(m, "shoal_agent_warm_blobs", `result="ok"`) >= float64(len(img.blobs())) || time.Now().After(deadline) {
				break
			}
		}
		misses[a.Name] = cluster.Sum(m, "shoal_agent_cache_misses")
		if n := cluster.Sum(m, "shoal_agent_warm_blobs", `result="ok"`); n < float64(len(img.blobs())) {
			t.Errorf("%s counted %v blobs warmed, want at least %d", a.Name, n, len(img.blobs()))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Pulls of both platforms through every agent: byte for byte, and no cache miss.
	for i, a := range dev.Agents {
		for _, p := range img.platforms {
			checkAgentPull(t, i, img, p)
		}
		m, err := cluster.Scrape(t.Context(), a.Registry)
		if err != nil {
			t.Fatal(err)
		}
		if got := cluster.Sum(m, "shoal_agent_cache_misses"); got != misses[a.Name] {
			t.Errorf("%s: %v cache misses during the pulls, want none", a.Name, got-misses[a.Name])
		}
	}
}
