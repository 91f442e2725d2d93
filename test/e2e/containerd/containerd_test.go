//go:build e2e

package containerd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/shoal-p2p/shoal/test/cluster"
)

// preexisting is the hosts.toml the test places for upstream.test:5000 on node1 before
// the agents start: agent1 replaces it while it runs and must put it back on stop.
const preexisting = `# Placed by test/e2e/containerd before shoal-agent started: it must come back byte for byte.
server = "http://127.0.0.1:15500"
`

// TestContainerdMirror: two nodes, each a containerd of the test's own with a Shoal
// agent as its registry mirror (the hosts.toml files the agent writes), pull images of
// a registry the cluster pulls through from, of a registry it does not serve, and of
// Shoal's own proxy; see each scenario. They run in order on one cluster.
func TestContainerdMirror(t *testing.T) {
	preflight(t)
	start := time.Now()
	e := newEnv(t)
	e.startUpstream(t)
	n1, n2 := e.newNode(t, "node1"), e.newNode(t, "node2")
	writeHostsFile(t, n1.hostsDir, upstreamHost, preexisting)
	n1.start(t)
	n2.start(t)
	e.startCluster(t)
	t.Logf("upstream, 2 containerds and the cluster up in %s", time.Since(start).Round(time.Millisecond))

	// What the agents wrote, for scenario 6 and the log.
	written := map[*node][]string{}
	for _, n := range []*node{n1, n2} {
		files := listTree(t, n.hostsDir)
		t.Logf("%s hosts dir %s after the agent started: %v", n.name, n.hostsDir, files)
		for _, f := range files {
			if reg, ok := strings.CutSuffix(f, "/hosts.toml"); ok {
				written[n] = append(written[n], reg)
			}
		}
		t.Logf("%s/%s/hosts.toml:\n%s", n.name, upstreamHost, hostsFile(t, n.hostsDir, upstreamHost))
	}
	t.Logf("node2/_default/hosts.toml:\n%s", hostsFile(t, n2.hostsDir, "_default"))

	var img1 image
	ok1 := t.Run("1_upstream_image_through_agent1", func(t *testing.T) { img1 = e.upstreamPull(t, n1) })
	t.Run("2_second_node_from_the_swarm", func(t *testing.T) {
		if !ok1 {
			t.Skip("scenario 1 failed")
		}
		e.secondNode(t, n2, img1)
	})
	t.Run("3_unknown_registry_falls_back", func(t *testing.T) { e.fallback(t, n1, n2) })
	t.Run("4_cri_pull_image", func(t *testing.T) { e.criPull(t, n1) })
	t.Run("5_proxy_image", func(t *testing.T) { e.proxyImage(t, n1) })
	t.Run("6_hosts_restored_on_stop", func(t *testing.T) { e.restored(t, written, n1, n2) })
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// checkAgentHosts checks the agent's file for registry: the agent (mirrorURL) first,
// for pull and resolve, then server (if any) as the fallback.
func checkAgentHosts(t *testing.T, n *node, registry, mirrorURL, server string) {
	t.Helper()
	got := hostsFile(t, n.hostsDir, registry)
	want := []string{fmt.Sprintf("[host.%q]", mirrorURL), `"pull"`, `"resolve"`}
	if server != "" {
		want = append(want, fmt.Sprintf("server = %q", server))
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("%s/%s/hosts.toml lacks %s:\n%s", n.name, registry, w, got)
		}
	}
}

// 1. An image pushed to the upstream pulls through node1's containerd with agent1's
// own hosts.toml: agent1 served it (mirror requests "served", blob GETs), the origins
// pulled it through from the upstream, and containerd never asked the upstream itself.
func (e *env) upstreamPull(t *testing.T, n1 *node) image {
	a := e.c.Agents[0]
	img := pushImage(t, upstreamAddr+"/team/app:v1", smallLayer, bigLayer)
	checkAgentHosts(t, n1, upstreamHost, "http://"+a.Registry, "http://"+upstreamAddr)
	if hostsFile(t, n1.hostsDir, upstreamHost) == preexisting {
		t.Fatal("agent1 left the pre-existing hosts.toml in place")
	}

	before := scrape(t, a.Registry)
	fetchesBefore := e.originSum(t, "shoal_origin_backend_fetches")
	logMark, upMark := mark(e.agentLog(0)), mark(e.upstream.log)
	ref := upstreamHost + "/team/app:v1"
	n1.pull(t, "s1", n1.hostsDir, ref)
	n1.checkImage(t, "s1", ref, img)
	e.logAgentRequests(t, 0, logMark)

	// The upstream label is the ns sanitised for Prometheus (upstream_test_5000).
	served := waitDelta(t, a.Registry, before, "shoal_agent_mirror_requests", func(v float64) bool { return v > 0 },
		`result="served"`, `upstream="upstream`)
	if served <= 0 {
		t.Fatalf("agent1 counted no served mirror requests:\n  %s", series(scrape(t, a.Registry), "shoal_agent_mirror"))
	}
	gets := waitDelta(t, a.Registry, before, "shoal_agent_registry_requests", func(v float64) bool { return v >= 3 }, `op="blob_get"`)
	if gets < 3 {
		t.Fatalf("agent1 served %v blob GETs, want the config and 2 layers", gets)
	}
	after := scrape(t, a.Registry)
	t.Logf("agent1 metrics after the pull:\n  %s\n  %s\n  %s", series(after, "shoal_agent_mirror"),
		series(after, "shoal_agent_registry_requests"), series(after, "shoal_agent_p2p_bytes_downloaded"))
	if p2p := cluster.Sum(after, "shoal_agent_p2p_bytes_downloaded"); p2p < float64(img.sizes[1]) {
		t.Fatalf("agent1 downloaded %v bytes through the swarm, want at least the big layer's %d", p2p, img.sizes[1])
	}

	// The origins pulled through; containerd itself never reached the upstream.
	if d := e.originSum(t, "shoal_origin_backend_fetches") - fetchesBefore; d < 1 {
		t.Fatalf("the origins fetched %v blobs from their backends, want the upstream's", d)
	}
	reqs := e.upstreamRequests(t, upMark)
	t.Logf("the upstream saw %d requests:\n  %s", len(reqs), joinLines(reqs))
	var bigGets int
	for _, r := range reqs {
		if r.fromContainerd() {
			t.Errorf("containerd asked the upstream itself: %s", r)
		}
		if r.method == http.MethodGet && strings.HasSuffix(r.path, "/blobs/"+img.bigLayerDigest()) {
			bigGets++
		}
	}
	if bigGets == 0 {
		t.Fatalf("the upstream served no GET of the big layer %s: the origins did not pull through", img.bigLayerDigest())
	}
	return img
}

// 2. node2's containerd pulls the same image with agent2's hosts.toml: agent2 gets the
// big layer from the swarm (bytes from peers), and the upstream sees no second GET of it.
func (e *env) secondNode(t *testing.T, n2 *node, img image) {
	a := e.c.Agents[1]
	checkAgentHosts(t, n2, upstreamHost, "http://"+a.Registry, "http://"+upstreamAddr)
	before := scrape(t, a.Registry)
	uploadedBefore := scrape(t, e.c.Agents[0].Registry)
	logMark, upMark := mark(e.agentLog(1)), mark(e.upstream.log)
	ref := upstreamHost + "/team/app:v1"
	n2.pull(t, "s2", n2.hostsDir, ref)
	n2.checkImage(t, "s2", ref, img)
	e.logAgentRequests(t, 1, logMark)

	if served := waitDelta(t, a.Registry, before, "shoal_agent_mirror_requests", func(v float64) bool { return v > 0 }, `result="served"`); served <= 0 {
		t.Fatal("agent2 counted no served mirror requests")
	}
	peer := waitDelta(t, a.Registry, before, "shoal_agent_p2p_bytes_downloaded", func(v float64) bool { return v > 0 }, `source="peer"`)
	after := scrape(t, a.Registry)
	t.Logf("agent2 metrics after the pull:\n  %s\n  %s", series(after, "shoal_agent_mirror"), series(after, "shoal_agent_p2p_bytes"))
	t.Logf("agent1 uploaded %v bytes to peers during the pull", waitDelta(t, e.c.Agents[0].Registry, uploadedBefore,
		"shoal_agent_p2p_bytes_uploaded", func(v float64) bool { return v > 0 }))
	if peer <= 0 {
		t.Fatalf("agent2 got no bytes from peers")
	}
	reqs := e.upstreamRequests(t, upMark)
	t.Logf("the upstream saw %d requests:\n  %s", len(reqs), joinLines(reqs))
	for _, r := range reqs {
		if r.fromContainerd() {
			t.Errorf("containerd asked the upstream itself: %s", r)
		}
		if strings.Contains(r.path, "/blobs/"+img.bigLayerDigest()) {
			t.Errorf("the upstream was asked for the big layer again: %s", r)
		}
	}
}

// 3. A registry no agent serves falls back to the registry itself: (a) other.test:5000
// with a hosts.toml of the test's listing agent1 first and the upstream as server;
// (b) 127.0.0.1:15500 through agent2's _default (default: true). The agent answers a
// fast 404 (HEAD and GET agree), containerd goes to the server, the agent counts
// result="unknown".
func (e *env) fallback(t *testing.T, n1, n2 *node) {
	a1, a2 := e.c.Agents[0], e.c.Agents[1]
	img := pushImage(t, upstreamAddr+"/team/other:v1", smallLayer, 3<<19)

	// The 404s themselves, as containerd asks.
	q := "?ns=" + url.QueryEscape(otherHost)
	for _, c := range []struct{ path, code string }{
		{"/v2/team/other/manifests/v1", "MANIFEST_UNKNOWN"},
		{"/v2/team/other/manifests/" + img.digest, "MANIFEST_UNKNOWN"},
		{"/v2/team/other/blobs/" + img.layers[0], "BLOB_UNKNOWN"},
	} {
		u := "http://" + a1.Registry + c.path + q
		headStatus, _, headTook := request(t, http.MethodHead, u)
		getStatus, body, getTook := request(t, http.MethodGet, u)
		t.Logf("HEAD %s -> %d in %s; GET -> %d in %s: %s", c.path+q, headStatus, headTook, getStatus, getTook, strings.TrimSpace(body))
		if headStatus != http.StatusNotFound || getStatus != http.StatusNotFound {
			t.Errorf("%s%s: HEAD %d, GET %d, want 404 for both", c.path, q, headStatus, getStatus)
		}
		if !strings.Contains(body, c.code) {
			t.Errorf("GET %s%s: body %q lacks %s", c.path, q, body, c.code)
		}
	}

	// (a) The test's own hosts.toml for other.test:5000.
	fallbackDir := filepath.Join(e.dir, "fallback-certs.d")
	writeHostsFile(t, fallbackDir, otherHost, fmt.Sprintf(
		"server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+upstreamAddr, "http://"+a1.Registry))
	e.fallbackPull(t, n1, 0, fallbackDir, otherHost+"/team/other:v1", img)

	// (b) agent2's _default, for the upstream under its real address.
	checkAgentHosts(t, n2, "_default", "http://"+a2.Registry, "")
	e.fallbackPull(t, n2, 1, n2.hostsDir, upstreamAddr+"/team/other:v1", img)
}

func (e *env) fallbackPull(t *testing.T, n *node, agent int, hostsDir, ref string, img image) {
	t.Helper()
	a := e.c.Agents[agent]
	before := scrape(t, a.Registry)
	logMark, upMark := mark(e.agentLog(agent)), mark(e.upstream.log)
	took := n.pull(t, "fallback", hostsDir, ref)
	n.checkImage(t, "fallback", ref, img)
	t.Logf("%s: fell back in %s (pull of %s through agent%d's 404s to the upstream)", n.name, took.Round(time.Millisecond), ref, agent+1)
	e.logAgentRequests(t, agent, logMark)
	unknown := waitDelta(t, a.Registry, before, "shoal_agent_mirror_requests", func(v float64) bool { return v > 0 }, `result="unknown"`)
	t.Logf("agent%d: %v unknown mirror requests:\n  %s", agent+1, unknown, series(scrape(t, a.Registry), "shoal_agent_mirror"))
	if unknown <= 0 {
		t.Fatalf("agent%d counted no result=\"unknown\" mirror requests", agent+1)
	}
	if served := delta(scrape(t, a.Registry), before, "shoal_agent_mirror_requests", `result="served"`); served != 0 {
		t.Errorf("agent%d counted %v served mirror requests for a registry it does not serve", agent+1, served)
	}
	reqs := e.upstreamRequests(t, upMark)
	t.Logf("the upstream saw %d requests:\n  %s", len(reqs), joinLines(reqs))
	var fromContainerd int
	for _, r := range reqs {
		if r.fromContainerd() {
			fromContainerd++
		}
	}
	if fromContainerd == 0 {
		t.Fatal("containerd never reached the upstream: it did not fall back")
	}
}

// 4. The kubelet's path: CRI PullImage over node1's socket (namespace k8s.io, hosts from
// the CRI config_path = agent1's hosts_dir). The image's RepoDigests name the pushed
// manifest, its id is the config digest, agent1 served it.
func (e *env) criPull(t *testing.T, n1 *node) {
	a := e.c.Agents[0]
	img := pushImage(t, upstreamAddr+"/team/cri:v1", smallLayer, 3<<20)
	ref := upstreamHost + "/team/cri:v1"
	before := scrape(t, a.Registry)
	logMark, upMark := mark(e.agentLog(0)), mark(e.upstream.log)
	cri := n1.cri(t)
	ctx, cancel := context.WithTimeout(t.Context(), pullTimeout)
	defer cancel()
	start := time.Now()
	resp, err := cri.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("CRI PullImage %s: %v (containerd log: %s)", ref, err, n1.p.log)
	}
	t.Logf("CRI PullImage %s: image_ref %s in %s", ref, resp.ImageRef, time.Since(start).Round(time.Millisecond))
	st, err := cri.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil || st.Image == nil {
		t.Fatalf("CRI ImageStatus %s: %v (image %v)", ref, err, st.GetImage())
	}
	t.Logf("CRI ImageStatus: id %s, tags %v, digests %v, size %d", st.Image.Id, st.Image.RepoTags, st.Image.RepoDigests, st.Image.Size)
	if want := upstreamHost + "/team/cri@" + img.digest; !slices.Contains(st.Image.RepoDigests, want) {
		t.Fatalf("RepoDigests %v lack %s (the pushed manifest)", st.Image.RepoDigests, want)
	}
	if !slices.Contains(st.Image.RepoTags, ref) {
		t.Errorf("RepoTags %v lack %s", st.Image.RepoTags, ref)
	}
	// containerd's CRI names an image by its config digest.
	if resp.ImageRef != st.Image.Id || st.Image.Id != img.config {
		t.Errorf("image_ref %s, status id %s, want both the config digest %s", resp.ImageRef, st.Image.Id, img.config)
	}
	n1.checkImage(t, "k8s.io", ref, img)
	e.logAgentRequests(t, 0, logMark)
	if served := waitDelta(t, a.Registry, before, "shoal_agent_mirror_requests", func(v float64) bool { return v > 0 }, `result="served"`); served <= 0 {
		t.Fatal("agent1 counted no served mirror requests for the CRI pull")
	}
	if gets := waitDelta(t, a.Registry, before, "shoal_agent_registry_requests", func(v float64) bool { return v >= 3 }, `op="blob_get"`); gets < 3 {
		t.Fatalf("agent1 served %v blob GETs for the CRI pull, want the config and 2 layers", gets)
	}
	for _, r := range e.upstreamRequests(t, upMark) {
		if r.fromContainerd() {
			t.Errorf("containerd's CRI asked the upstream itself: %s", r)
		}
	}
}

// 5. An image pushed to Shoal's own proxy pulls through containerd with agent1's
// hosts.toml for the proxy's host (ns = 127.0.0.1:15000), served by agent1; the proxy
// (that hosts.toml's server) serves none of it.
func (e *env) proxyImage(t *testing.T, n1 *node) {
	a := e.c.Agents[0]
	img := pushImage(t, cluster.ProxyAddr+"/demo/x:v1", smallLayer, 3<<20)
	checkAgentHosts(t, n1, cluster.ProxyAddr, "http://"+a.Registry, "")
	t.Logf("node1/%s/hosts.toml:\n%s", cluster.ProxyAddr, hostsFile(t, n1.hostsDir, cluster.ProxyAddr))
	// The push's own requests reach the proxy's metrics up to a flush (1 s) later.
	proxyBefore := settled(t, cluster.ProxyAddr, "shoal_proxy_registry_requests")
	before := scrape(t, a.Registry)
	logMark := mark(e.agentLog(0))
	ref := cluster.ProxyAddr + "/demo/x:v1"
	n1.pull(t, "proxy", n1.hostsDir, ref)
	n1.checkImage(t, "proxy", ref, img)
	e.logAgentRequests(t, 0, logMark)
	if gets := waitDelta(t, a.Registry, before, "shoal_agent_registry_requests", func(v float64) bool { return v >= 3 }, `op="blob_get"`); gets < 3 {
		t.Fatalf("agent1 served %v blob GETs, want the config and 2 layers", gets)
	}
	after := scrape(t, a.Registry)
	t.Logf("agent1 mirror metrics:\n  %s", series(after, "shoal_agent_mirror"))
	// ns = the proxy's host names Shoal's own repositories: counted "local".
	if d := delta(after, before, "shoal_agent_mirror_requests", `result="local"`); d <= 0 {
		t.Errorf("agent1 counted %v local mirror requests for the proxy's own image", d)
	}
	if d := delta(after, before, "shoal_agent_mirror_requests", `result="unknown"`); d != 0 {
		t.Errorf("agent1 counted %v unknown mirror requests for the proxy's own image", d)
	}
	proxyAfter := scrape(t, cluster.ProxyAddr)
	for _, op := range []string{"manifest_get", "blob_get", "blob_head"} {
		if d := delta(proxyAfter, proxyBefore, "shoal_proxy_registry_requests", `op="`+op+`"`); d != 0 {
			t.Errorf("the proxy served %v %s requests during the pull: containerd fell back to it", d, op)
		}
	}
}

// 6. Once the agents stop, their hosts.toml files are gone and the one the test placed
// before agent1 started is back byte for byte.
func (e *env) restored(t *testing.T, written map[*node][]string, nodes ...*node) {
	for _, n := range nodes {
		if len(written[n]) == 0 {
			t.Fatalf("agent on %s wrote no hosts.toml", n.name)
		}
	}
	e.c.Stop()
	for _, n := range nodes {
		t.Logf("%s hosts dir after the agent stopped: %v", n.name, listTree(t, n.hostsDir))
		for _, reg := range written[n] {
			got := hostsFile(t, n.hostsDir, reg)
			if n == nodes[0] && reg == upstreamHost {
				if got != preexisting {
					t.Errorf("%s/%s/hosts.toml after stop:\n%q\nwant the pre-existing file back:\n%q", n.name, reg, got, preexisting)
				}
				if left := listTree(t, filepath.Join(n.hostsDir, reg)); !slices.Equal(left, []string{"hosts.toml"}) {
					t.Errorf("%s/%s holds %v after stop, want hosts.toml alone", n.name, reg, left)
				}
				continue
			}
			if _, err := os.Stat(filepath.Join(n.hostsDir, reg)); !os.IsNotExist(err) {
				t.Errorf("%s/%s still exists after the agent stopped (%v): %v; hosts.toml %q", n.name, reg, err,
					listTree(t, filepath.Join(n.hostsDir, reg)), got)
			}
		}
	}
}

// --- small helpers ---

// delta is name's sum (with labels) in after minus in before.
func delta(after, before map[string]float64, name string, labels ...string) float64 {
	return cluster.Sum(after, name, labels...) - cluster.Sum(before, name, labels...)
}

// waitDelta polls addr's metrics until cond holds for the delta since before (15 s at most).
func waitDelta(t *testing.T, addr string, before map[string]float64, name string, cond func(float64) bool, labels ...string) float64 {
	t.Helper()
	base := cluster.Sum(before, name, labels...)
	return waitMetric(t, addr, name, func(v float64) bool { return cond(v - base) }, labels...) - base
}

// settled scrapes addr until name's series are the same twice a flush interval apart
// (10 s at most), so a baseline holds what earlier requests counted.
func settled(t *testing.T, addr, name string) map[string]float64 {
	t.Helper()
	prev := scrape(t, addr)
	for range 8 {
		time.Sleep(1200 * time.Millisecond)
		cur := scrape(t, addr)
		same := true
		for k, v := range cur {
			if strings.HasPrefix(k, name) && prev[k] != v {
				same = false
			}
		}
		if same {
			return cur
		}
		prev = cur
	}
	return prev
}

func (e *env) originSum(t *testing.T, name string) float64 {
	t.Helper()
	var total float64
	for _, o := range e.c.Origins {
		total += cluster.Sum(scrape(t, o.Addr), name)
	}
	return total
}

// request sends one request and returns its status, body and duration.
func request(t *testing.T, method, u string) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	req, err := http.NewRequestWithContext(t.Context(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start).Round(time.Microsecond)
}

func joinLines(reqs []accessLine) string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.String())
	}
	return strings.Join(out, "\n  ")
}
