//go:build e2e

package preheat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/preheat"
	"github.com/shoal-p2p/shoal/test/cluster"
)

// proxyURL is where both Harbor providers' endpoints are served.
const proxyURL = "http://" + cluster.ProxyAddr

// jobWait bounds the polling of one job's state: a guard against a hang, not a timing
// assertion (the tests' images are a few MiB).
const jobWait = 2 * time.Minute

// harborHeaders are the headers Harbor's providers send with a call: Accept, the
// instance's auth (OAUTH: a bearer token) and, on a POST, Content-Type. Go's client adds
// User-Agent Go-http-client/1.1, Accept-Encoding gzip and Content-Length, as Harbor's does.
func harborHeaders(bearer string, post bool) http.Header {
	h := http.Header{"Accept": {"application/json"}}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	if post {
		h.Set("Content-Type", "application/json")
	}
	return h
}

// call sends one request and returns the status, headers and body.
func call(t *testing.T, method, u string, h http.Header, body string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header, b
}

// getJSON GETs a preheat endpoint with the right token and decodes a 200 answer into v.
func getJSON(t *testing.T, path string, v any) {
	t.Helper()
	code, _, body := call(t, http.MethodGet, proxyURL+path, harborHeaders(token, false), "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// listJobs is GET /preheat/jobs.
func listJobs(t *testing.T) []preheat.Summary {
	t.Helper()
	var list []preheat.Summary
	getJSON(t, "/preheat/jobs", &list)
	return list
}

// getJob is GET /preheat/jobs/{id}.
func getJob(t *testing.T, id int64) preheat.Snapshot {
	t.Helper()
	var s preheat.Snapshot
	getJSON(t, fmt.Sprintf("/preheat/jobs/%d", id), &s)
	if s.ID != id {
		t.Fatalf("GET /preheat/jobs/%d answered job %d", id, s.ID)
	}
	return s
}

// newJobs are the jobs of after that before did not list.
func newJobs(before, after []preheat.Summary) []preheat.Summary {
	var out []preheat.Summary
	for _, s := range after {
		if !slices.ContainsFunc(before, func(b preheat.Summary) bool { return b.ID == s.ID }) {
			out = append(out, s)
		}
	}
	return out
}

// waitJob polls GET /preheat/jobs until job id is finished and returns it in full.
func waitJob(t *testing.T, id int64) preheat.Snapshot {
	t.Helper()
	for deadline := time.Now().Add(jobWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		list := listJobs(t)
		i := slices.IndexFunc(list, func(s preheat.Summary) bool { return s.ID == id })
		if i < 0 {
			t.Fatalf("job %d is not listed by GET /preheat/jobs", id)
		}
		if list[i].State.Finished() {
			return getJob(t, id)
		}
	}
	s := getJob(t, id)
	t.Fatalf("job %d not finished after %s: %+v", id, jobWait, s.Summary)
	return s
}

// --- the dragonfly contract ---

// dragonflyBody is Harbor's dragonfly create body, key for key in Harbor's order
// (every key present, lowercase, no omitempty), for manifestURL with the registry
// header auth (Harbor puts its pull token there; here the upstream's Basic credentials).
func dragonflyBody(manifestURL, auth, scope string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return `{"type":"preheat","args":{"type":"image","url":` + q(manifestURL) + `,"tag":"","filtered_query_params":"",` +
		`"headers":{"Authorization":` + q(auth) + `},"scope":` + q(scope) + `,"concurrent_count":0,"timeout":0},` +
		`"scheduler_cluster_ids":null}`
}

// dfJob is a dragonfly job answer as Harbor's driver reads it.
type dfJob struct {
	ID        json.Number `json:"id"` // Harbor needs an integer
	CreatedAt string      `json:"created_at"`
	UpdatedAt string      `json:"updated_at"`
	State     string      `json:"state"`
	Result    struct {
		JobStates []struct {
			Error   string `json:"error"`
			Results []struct {
				SuccessTasks []dfTask `json:"success_tasks"`
				FailureTasks []dfTask `json:"failure_tasks"`
			} `json:"results"`
		} `json:"job_states"`
	} `json:"result"`
}

type dfTask struct {
	URL         string `json:"url"`
	Hostname    string `json:"hostname"`
	IP          string `json:"ip"`
	Description string `json:"description"`
}

// id is the job's id, failing the test unless it is a positive integer (a string or a
// fraction fails Harbor's decoding).
func (j dfJob) id(t *testing.T) int64 {
	t.Helper()
	id, err := j.ID.Int64()
	if err != nil || id <= 0 {
		t.Fatalf("job id %q is not a positive integer", j.ID)
	}
	return id
}

// result is the one job state and cluster result Shoal reports.
func (j dfJob) result(t *testing.T) (errMsg string, ok, failed []dfTask) {
	t.Helper()
	if len(j.Result.JobStates) != 1 || len(j.Result.JobStates[0].Results) != 1 {
		t.Fatalf("job %s: want one job state with one result, got %+v", j.ID, j.Result)
	}
	js := j.Result.JobStates[0]
	return js.Error, js.Results[0].SuccessTasks, js.Results[0].FailureTasks
}

func decodeDragonfly(t *testing.T, what string, body []byte) dfJob {
	t.Helper()
	var j dfJob
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&j); err != nil {
		t.Fatalf("%s: %v in %s", what, err, body)
	}
	for _, ts := range []string{j.CreatedAt, j.UpdatedAt} {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("%s: time %q is not RFC 3339 (Harbor refuses it): %s", what, ts, body)
		}
	}
	return j
}

// createDragonfly POSTs a job as Harbor does and returns the answer, which must be a
// 2xx job with an integer id.
func createDragonfly(t *testing.T, body string) dfJob {
	t.Helper()
	code, _, resp := call(t, http.MethodPost, proxyURL+"/oapi/v1/jobs", harborHeaders(token, true), body)
	if code/100 != 2 {
		t.Fatalf("POST /oapi/v1/jobs: %d %s", code, resp)
	}
	j := decodeDragonfly(t, "POST /oapi/v1/jobs", resp)
	j.id(t)
	if j.State != "PENDING" && j.State != "SUCCESS" && j.State != "FAILURE" {
		t.Fatalf("POST /oapi/v1/jobs: state %q", j.State)
	}
	return j
}

// waitDragonfly polls GET /oapi/v1/jobs/{id} as Harbor does (faster) until the job is
// no longer PENDING; pending says whether any answer was PENDING. Any state but
// PENDING, SUCCESS and FAILURE fails the test, as it fails Harbor's task.
func waitDragonfly(t *testing.T, id int64) (final dfJob, pending bool) {
	t.Helper()
	path := fmt.Sprintf("%s/oapi/v1/jobs/%d", proxyURL, id)
	for deadline := time.Now().Add(jobWait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code, _, body := call(t, http.MethodGet, path, harborHeaders(token, false), "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		j := decodeDragonfly(t, "GET "+path, body)
		if got := j.id(t); got != id {
			t.Fatalf("GET %s answered job %d", path, got)
		}
		switch j.State {
		case "PENDING":
			pending = true
		case "SUCCESS", "FAILURE":
			return j, pending
		default:
			t.Fatalf("GET %s: state %q, which fails Harbor's task", path, j.State)
		}
	}
	t.Fatalf("dragonfly job %d still PENDING after %s", id, jobWait)
	return dfJob{}, pending
}

// hostnames are the tasks' hostnames, sorted.
func hostnames(ts []dfTask) []string {
	var out []string
	for _, task := range ts {
		out = append(out, task.Hostname)
	}
	slices.Sort(out)
	return out
}

// originTaskName is how the dragonfly answer names an origin (proxy/preheat.go
// hostTask): "origin " and the host:port of its base URL.
func originTaskName(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return "origin " + u.Host
}

// --- placement ---

// owners are d's owner origins (base URLs, placement order), computed as the proxy
// does: the origin set's order for d cut to its replicas.
func owners(d digest.Digest) []string {
	order := origins.Owners(d)
	var out []string
	for _, c := range order[:min(len(order), origins.Replicas())] {
		out = append(out, c.Addr())
	}
	return out
}

// ownerSet is every origin owning at least one of ds, sorted.
func ownerSet(ds []digest.Digest) []string {
	var out []string
	for _, d := range ds {
		for _, o := range owners(d) {
			if !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	slices.Sort(out)
	return out
}

// originNamed is the cluster origin at base URL u.
func originNamed(t *testing.T, u string) cluster.Origin {
	t.Helper()
	for _, o := range dev.Origins {
		if "http://"+o.Addr == u {
			return o
		}
	}
	t.Fatalf("no cluster origin at %s (origins %+v)", u, dev.Origins)
	return cluster.Origin{}
}

// originStore opens origin o's content-addressed store on disk, read-only in use.
func originStore(t *testing.T, o cluster.Origin) *blobstore.Store {
	t.Helper()
	s, err := blobstore.New(filepath.Join(dev.State, o.Name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storedHash is the sha256 of the committed blob d in s, or "" when s does not hold it.
func storedHash(t *testing.T, s *blobstore.Store, d digest.Digest) string {
	t.Helper()
	f, err := s.Open(d)
	if errors.Is(err, blobstore.ErrNotFound) {
		return ""
	}
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

// requireOnOwners checks that every blob of ds is held by each of its owner origins:
// first in the origin's own store on disk (asking its API first would fill it from the
// shared backend, proving nothing about the preheat), with the right bytes, then
// through the origin's API (HEAD /blobs/{digest}) with the right size.
func requireOnOwners(t *testing.T, img testImage, ds []digest.Digest) {
	t.Helper()
	for _, d := range ds {
		for _, u := range owners(d) {
			o := originNamed(t, u)
			if got := storedHash(t, originStore(t, o), d); got != d.String() {
				t.Errorf("%s: owner %s (%s) does not hold it in its store (hash %q)", d, o.Name, u, got)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, d := range ds {
		for _, u := range owners(d) {
			size, err := originclient.New(u, nil).Stat(t.Context(), d)
			if err != nil || size != int64(len(img.raw[d])) {
				t.Errorf("%s: HEAD on owner %s: size %d, %v; want %d", d, u, size, err, len(img.raw[d]))
			}
		}
	}
}

// requireNowhere checks that blob d is in no origin's store, that no origin serves it
// (their HEAD fills from the shared backend, so this also says the backend lacks it)
// and that the proxy answers its HEAD 404.
func requireNowhere(t *testing.T, repo string, d digest.Digest) {
	t.Helper()
	for _, o := range dev.Origins {
		if got := storedHash(t, originStore(t, o), d); got != "" {
			t.Errorf("%s: %s holds it in its store", d, o.Name)
		}
	}
	for _, o := range dev.Origins {
		if size, err := originclient.New("http://"+o.Addr, nil).Stat(t.Context(), d); !errors.Is(err, originclient.ErrNotFound) {
			t.Errorf("%s: HEAD on %s: size %d, %v; want not found", d, o.Name, size, err)
		}
	}
	u := proxyURL + "/v2/" + repo + "/blobs/" + d.String()
	if code, _, body := call(t, http.MethodHead, u, nil, ""); code != http.StatusNotFound {
		t.Errorf("HEAD %s: %d %s; want 404", u, code, body)
	}
}

// proxyMetric reads a counter of the proxy's preheat scope (tally flushes to /metrics
// every second) once cond holds for it, or after 15 s, and returns it.
func proxyMetric(t *testing.T, name string, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := cluster.Scrape(context.Background(), cluster.ProxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		v := cluster.Sum(m, "shoal_proxy_preheat_"+name)
		if cond(v) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkWarmed checks a SUCCESS job's record against img: it expanded the index into
// both platforms and every blob, and assigned each blob to exactly its owner origins,
// every one of which holds all its blobs.
func checkWarmed(t *testing.T, s preheat.Snapshot, img testImage) {
	t.Helper()
	if s.State != preheat.StateSuccess || s.Error != "" || len(s.Missing) != 0 {
		t.Fatalf("job %d: %s, error %q, missing %v; want SUCCESS", s.ID, s.State, s.Error, s.Missing)
	}
	if s.Digest != img.index || s.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("job %d expanded %s (%s), want the index %s", s.ID, s.Digest, s.MediaType, img.index)
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(s.Platforms, want) {
		t.Errorf("job %d platforms %v, want %v", s.ID, s.Platforms, want)
	}
	var planned []digest.Digest
	for _, b := range s.Blobs {
		planned = append(planned, b.Digest)
		if b.HostsTotal != len(owners(b.Digest)) || b.HostsDone != b.HostsTotal || b.Size != int64(len(img.raw[b.Digest])) {
			t.Errorf("job %d blob %s: %d of %d hosts, size %d; want all of its %d owners, size %d",
				s.ID, b.Digest, b.HostsDone, b.HostsTotal, b.Size, len(owners(b.Digest)), len(img.raw[b.Digest]))
		}
	}
	if want := img.blobs(); !slices.Equal(sortedDigests(planned), sortedDigests(want)) {
		t.Errorf("job %d planned %d blobs %v, want the image's %d: %v", s.ID, len(planned), planned, len(want), want)
	}
	var hosts []string
	for _, h := range s.Hosts {
		hosts = append(hosts, h.Addr)
		if h.Kind != preheat.HostOrigin || !h.OK || h.BlobsDone != h.BlobsTotal {
			t.Errorf("job %d host %+v: want an origin holding all its blobs", s.ID, h)
		}
	}
	slices.Sort(hosts)
	if want := ownerSet(img.blobs()); !slices.Equal(hosts, want) {
		t.Errorf("job %d warmed hosts %v, want the blobs' owners %v", s.ID, hosts, want)
	}
	if s.BytesDone != s.BytesTotal || s.BytesTotal == 0 {
		t.Errorf("job %d: %d of %d bytes", s.ID, s.BytesDone, s.BytesTotal)
	}
}

func sortedDigests(ds []digest.Digest) []digest.Digest {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}
