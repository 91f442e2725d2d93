//go:build e2e

package kubernetes

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/test/e2eutil"
)

// TestChartOnKubernetes is the whole proof, in order: install, pull through the
// agent from an upstream and from the proxy, scale the origins, uninstall.
func TestChartOnKubernetes(t *testing.T) {
	k := up(t)
	k.step(t, "cluster up (%s)", k.env["SHOAL_KUBE_NODE"])
	certsD := k.env["SHOAL_KUBE_CERTS_D"]
	before := snapshot(t, certsD)
	// An operator's own file for a registry the chart will mirror: it must come back.
	operators := filepath.Join(certsD, upstreamHost, "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(operators), 0o755); err != nil {
		t.Fatal(err)
	}
	ownFile := "server = \"http://" + upstreamAddr + "\"\n# the operator's own file\n"
	if err := os.WriteFile(operators, []byte(ownFile), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(operators)) })
	before = snapshot(t, certsD)
	k.step(t, "node's containerd host files before the install: %s", keys(before))

	startUpstream(t, k)
	hello := filepath.Join(k.root, ".tools", "kube", "images", "hello.tar")
	upImg := push(t, hello, upstreamAddr+"/team/app:v1", 4<<20)
	k.step(t, "pushed %s (%s) to the upstream", upImg.ref, upImg.digest)

	install(t, k)
	k.step(t, "helm install --wait: every pod Ready\n%s", indent(k.kubectl(t, "get", "pods", "-o", "wide")))
	k.checkHostsWritten(t, certsD)

	// Shoal's own proxy, through its ClusterIP (kube-proxy) from the host.
	proxyIP := strings.TrimSpace(k.kubectl(t, "get", "service", release+"-proxy", "-o", "jsonpath={.spec.clusterIP}"))
	// kube-proxy programs the Service once its endpoints are ready: a moment after helm's wait.
	eventually(t, time.Minute, "the proxy's ClusterIP answers", func() (bool, string) {
		resp, err := http.Get("http://" + proxyIP + ":15000/v2/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	ownImg := push(t, hello, proxyIP+":15000/demo/app:v1", 3<<20)
	k.step(t, "pushed %s (%s) through the proxy's ClusterIP", ownImg.ref, ownImg.digest)
	proxyHost := fmt.Sprintf("%s-proxy.%s.svc.cluster.local:15000", release, namespace)

	served0 := metric(agentAddr, "shoal_agent_mirror_requests", `result="served"`)
	local0 := metric(agentAddr, "shoal_agent_mirror_requests", `result="local"`)
	blobs0 := metric(agentAddr, "shoal_agent_registry_requests", `op="blob_get"`)
	k.runPods(t, map[string]pushed{
		"from-upstream": {ref: upstreamHost + "/team/app:v1", digest: upImg.digest},
		"from-proxy":    {ref: proxyHost + "/demo/app:v1", digest: ownImg.digest},
	})
	served := metric(agentAddr, "shoal_agent_mirror_requests", `result="served"`) - served0
	local := metric(agentAddr, "shoal_agent_mirror_requests", `result="local"`) - local0
	blobs := metric(agentAddr, "shoal_agent_registry_requests", `op="blob_get"`) - blobs0
	k.step(t, "the node's agent served the pulls: %v upstream requests, %v proxy-image requests, %v blob GETs; p2p bytes: origin_http %v, peer %v",
		served, local, blobs,
		metric(agentAddr, "shoal_agent_p2p_bytes_downloaded", `source="origin_http"`),
		metric(agentAddr, "shoal_agent_p2p_bytes_downloaded", `source="peer"`))
	// Each image: a tag HEAD, the manifest, the config and the random layer from the agent
	// (the hello layer is unpacked on the node already, so containerd skips it).
	if served < 4 || local < 4 || blobs < 4 {
		t.Errorf("the agent did not serve both pulls (served %v, local %v, blob GETs %v)", served, local, blobs)
	}
	log := k.agentRequests(t)
	k.step(t, "what the node's containerd asked the agent:\n%s", indent(log))
	for _, img := range []pushed{upImg, ownImg} {
		if layer := img.layers[len(img.layers)-1]; !servedOK(log, layer) {
			t.Errorf("the agent's log has no 200 GET of %s's layer %s", img.ref, layer)
		}
	}

	// Scale the origins: the new one joins everyone's membership by DNS.
	k.kubectl(t, "scale", "statefulset", release+"-origin", "--replicas", "4")
	k.kubectl(t, "rollout", "status", "statefulset/"+release+"-origin", "--timeout", "3m")
	proxyPod := strings.TrimSpace(k.kubectl(t, "get", "pods", "-l", "app.kubernetes.io/component=proxy", "-o", "jsonpath={.items[0].status.podIP}"))
	trackerPod := strings.TrimSpace(k.kubectl(t, "get", "pods", "-l", "app.kubernetes.io/component=tracker", "-o", "jsonpath={.items[0].status.podIP}"))
	for _, m := range []struct{ addr, name string }{
		{proxyPod + ":15000", "shoal_proxy_origins_members"},
		{trackerPod + ":15300", "shoal_tracker_origins_members"},
		{agentAddr, "shoal_agent_origins_members"},
	} {
		eventually(t, 90*time.Second, m.name+" = 4", func() (bool, string) {
			v := metric(m.addr, m.name)
			return v == 4, strconv.FormatFloat(v, 'f', -1, 64)
		})
	}
	k.step(t, "origins scaled 3 -> 4: proxy, tracker and agent count 4 members\n%s",
		indent(k.kubectl(t, "get", "pods", "-l", "app.kubernetes.io/component=origin", "-o", "wide")))
	newImg := push(t, hello, upstreamAddr+"/team/app:v2", 5<<20)
	k.runPods(t, map[string]pushed{"after-scale": {ref: upstreamHost + "/team/app:v2", digest: newImg.digest}})
	k.step(t, "a new pull after the scale-out: Running")

	// Uninstall: the agent puts the node's containerd files back as they were.
	k.helm(t, "uninstall", release, "--wait", "--timeout", "3m")
	eventually(t, 2*time.Minute, "agent pod gone", func() (bool, string) {
		out := k.kubectl(t, "get", "pods", "-l", "app.kubernetes.io/component=agent", "-o", "name")
		return strings.TrimSpace(out) == "", out
	})
	after := snapshot(t, certsD)
	if !mapsEqual(before, after) {
		t.Errorf("helm uninstall left the node's containerd host files changed:\nbefore %v\nafter  %v", before, after)
	} else {
		k.step(t, "helm uninstall: the node's containerd host files are as before (%d entries, the operator's file byte for byte)", len(after))
	}
}

// install creates the fs backend's volume (a hostPath PV; the cluster has no
// provisioner) and installs the chart with testdata/values.yaml.
func install(t *testing.T, k *kube) {
	t.Helper()
	backend := filepath.Join(k.env["SHOAL_KUBE_DIR"], "shoal-backend")
	if err := os.MkdirAll(backend, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(backend, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	k.apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: shoal-e2e-backend}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: %s, type: Directory}
`, backend))
	t.Cleanup(func() { _, _ = k.try(k.env["KUBECTL"], "delete", "pv", "shoal-e2e-backend", "--wait=false") })
	chart := filepath.Join(k.root, "charts", "shoal")
	values := filepath.Join(k.root, "test", "e2e", "kubernetes", "testdata", "values.yaml")
	start := time.Now()
	out, err := k.try(k.env["HELM"], "-n", namespace, "install", release, chart, "-f", values,
		"--set", "containerd.hostsDir="+k.env["SHOAL_KUBE_CERTS_D"], "--wait", "--timeout", "5m")
	if err != nil {
		t.Logf("pods:\n%s", indent(k.kubectl(t, "get", "pods", "-o", "wide")))
		t.Logf("events:\n%s", indent(k.kubectl(t, "get", "events", "--sort-by=.lastTimestamp")))
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	k.step(t, "helm install took %.1fs", time.Since(start).Seconds())
}

// checkHostsWritten: the agent wrote its files for the upstream and the proxy, and kept
// the operator's file aside.
func (k *kube) checkHostsWritten(t *testing.T, certsD string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(certsD, upstreamHost, "hosts.toml"))
	if err != nil || !strings.Contains(string(b), `[host."http://127.0.0.1:16000"]`) || !strings.Contains(string(b), `server = "http://`+upstreamAddr+`"`) {
		t.Fatalf("the agent's hosts.toml for %s: %v\n%s", upstreamHost, err, b)
	}
	if _, err := os.Stat(filepath.Join(certsD, upstreamHost, "hosts.toml.shoal-backup")); err != nil {
		t.Errorf("the operator's file was not kept: %v", err)
	}
	k.step(t, "the agent wrote the node's containerd host files: %s\n%s", keys(snapshot(t, certsD)), indent(string(b)))
}

// runPods starts one pod per image (imagePullPolicy Always: the kubelet pulls through
// the node's containerd) and waits until each is Running with the pushed digest.
func (k *kube) runPods(t *testing.T, pods map[string]pushed) {
	t.Helper()
	var yaml strings.Builder
	for name, img := range pods {
		fmt.Fprintf(&yaml, `---
apiVersion: v1
kind: Pod
metadata: {name: %s, labels: {app: shoal-e2e}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: hello
    image: %s
    imagePullPolicy: Always
    env: [{name: POD_NAME, value: %s}]
`, name, img.ref, name)
	}
	start := time.Now()
	k.apply(t, yaml.String())
	for name, img := range pods {
		eventually(t, 3*time.Minute, "pod "+name+" Running", func() (bool, string) {
			phase := strings.TrimSpace(k.kubectl(t, "get", "pod", name, "-o", "jsonpath={.status.phase}"))
			return phase == "Running", phase + " " + k.kubectl(t, "get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].state}")
		})
		imageID := strings.TrimSpace(k.kubectl(t, "get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].imageID}"))
		if !strings.HasSuffix(imageID, "@"+img.digest) {
			t.Errorf("pod %s runs %s, want the pushed manifest %s", name, imageID, img.digest)
		}
		k.step(t, "pod %s Running %.1fs after creation: image %s, imageID %s", name, time.Since(start).Seconds(), img.ref, imageID)
	}
	k.kubectl(t, "delete", "pod", "-l", "app=shoal-e2e", "--wait=false")
}

// agentRequests is the agent's access log of registry requests (debug level in the
// test's values): method, path and ns as containerd sent them.
func (k *kube) agentRequests(t *testing.T) string {
	t.Helper()
	out := k.kubectl(t, "logs", "daemonset/"+release+"-agent", "--tail", "-1")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, `/v2/`) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// servedOK reports whether the agent's access log has a 200 GET of blob d.
func servedOK(log, d string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"method":"GET"`) && strings.Contains(l, "/blobs/"+d) && strings.Contains(l, `"status":200`) {
			return true
		}
	}
	return false
}

// startUpstream runs a distribution registry on the pod bridge address: the node's
// containerd falls back to it, and the origins (pods) pull through from it.
func startUpstream(t *testing.T, k *kube) {
	t.Helper()
	bin := filepath.Join(k.root, ".tools", "bin", "distribution-registry")
	dir := t.TempDir()
	cfg := e2eutil.WriteRegistryConfig(t, dir, upstreamAddr, false)
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (make tools installs it): %v", bin, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
	eventually(t, 30*time.Second, "upstream registry up", func() (bool, string) {
		resp, err := http.Get("http://" + upstreamAddr + "/v2/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

func keys(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return "[" + strings.Join(ks, " ") + "]"
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
