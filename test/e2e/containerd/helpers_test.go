//go:build e2e

package containerd

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/test/cluster"
	"github.com/shoal-p2p/shoal/test/e2eutil"
)

// preflight skips unless the test can run a containerd of its own (root, containerd
// and ctr on PATH) and fails when a tool `make tools` installs is missing.
func preflight(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root to run a containerd of its own (run `make e2e-containerd` as root)")
	}
	for _, name := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("SKIP: %s is not on PATH (apt-get install containerd): %v", name, err)
		}
	}
	for _, name := range []string{"crane", "distribution-registry"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s is not on PATH: run make tools (installs it into .tools/bin) and make e2e-containerd, "+
				"or add .tools/bin to PATH: %v", name, err)
		}
	}
}

// env is the test's temp folder and what runs in it. Removed at the end unless the
// test failed (or SHOAL_E2E_KEEP is set).
type env struct {
	dir      string
	c        *cluster.Cluster
	upstream *proc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "shoal-e2e-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after every process stopped.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SHOAL_E2E_KEEP") != "" {
			t.Logf("state and logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return &env{dir: dir}
}

// startCluster renders testdata/*.yaml into <tmp>/config and starts the cluster (two
// agents) from it.
func (e *env) startCluster(t *testing.T) {
	t.Helper()
	root, err := cluster.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(e.dir, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.yaml (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out := strings.ReplaceAll(string(b), "@TMP@", e.dir)
		if err := os.WriteFile(filepath.Join(cfgDir, filepath.Base(f)), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Root: root, State: filepath.Join(e.dir, "cluster"), ConfigDir: cfgDir, Agents: 2,
	})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	e.c = c
	t.Cleanup(c.Stop)
}

func (e *env) agentLog(i int) string { return filepath.Join(e.c.State, e.c.Agents[i].Name+".log") }

// --- processes ---

// proc is a process the test runs (the upstream registry, a containerd), its output
// appended to log.
type proc struct {
	name   string
	args   []string
	dir    string
	log    string
	cmd    *exec.Cmd
	exited chan error
	logf   *os.File
}

// start runs p and polls ready until it answers nil (30 s at most); the test's
// cleanup stops it.
func (p *proc) start(t *testing.T, ready func(ctx context.Context) error) {
	t.Helper()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.logf, p.exited = cmd, logf, make(chan error, 1)
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(p.stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		rerr := ready(ctx)
		if rerr == nil {
			return
		}
		select {
		case werr := <-p.exited:
			p.exited <- werr
			t.Fatalf("%s exited (%v); log: %s\n%s", p.name, werr, p.log, tail(p.log, 20))
		case <-ctx.Done():
			t.Fatalf("%s not ready after 30s (%v); log: %s\n%s", p.name, rerr, p.log, tail(p.log, 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM (SIGKILL after 10 s) and waits; a no-op when not running.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		err := <-p.exited
		p.exited <- err
	}
	p.logf.Close()
	p.cmd = nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// --- the upstream registry ---

// startUpstream runs distribution's registry on upstreamAddr over <tmp>/upstream. Its
// access log (combined format, on by default) goes to <tmp>/upstream/registry.log.
func (e *env) startUpstream(t *testing.T) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", upstreamAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s is already in use (a registry left over from an earlier run?)", upstreamAddr)
	}
	dir := filepath.Join(e.dir, "upstream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := e2eutil.WriteRegistryConfig(t, dir, upstreamAddr, false)
	e.upstream = &proc{name: "distribution-registry", args: []string{"distribution-registry", "serve", config},
		dir: dir, log: filepath.Join(dir, "registry.log")}
	e.upstream.start(t, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+upstreamAddr+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
}

// accessLine is one request in the upstream's access log.
type accessLine struct {
	method, path, status, agent string
}

func (a accessLine) String() string {
	return fmt.Sprintf("%s %s -> %s (%s)", a.method, a.path, a.status, a.agent)
}

// fromContainerd: the request came from containerd itself (ctr or the CRI plugin),
// not from Shoal.
func (a accessLine) fromContainerd() bool { return strings.Contains(a.agent, "containerd") }

var combined = regexp.MustCompile(`"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"`)

// upstreamRequests returns the upstream's access log lines from byte offset from on.
func (e *env) upstreamRequests(t *testing.T, from int64) []accessLine {
	t.Helper()
	var out []accessLine
	for _, l := range linesFrom(t, e.upstream.log, from) {
		if m := combined.FindStringSubmatch(l); m != nil {
			out = append(out, accessLine{m[1], m[2], m[3], m[4]})
		}
	}
	return out
}

// --- logs ---

// mark is a log file's current size: lines after it are the ones a scenario caused.
func mark(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func linesFrom(t *testing.T, path string, from int64) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// logAgentRequests logs the registry requests agent i logged since from (its access
// log at debug level: method, path, ns, status), what containerd asked it.
func (e *env) logAgentRequests(t *testing.T, i int, from int64) {
	t.Helper()
	var lines []string
	for _, l := range linesFrom(t, e.agentLog(i), from) {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) != nil {
			continue
		}
		path, _ := rec["path"].(string)
		if !strings.HasPrefix(path, "/v2/") {
			continue
		}
		// The access log has the raw query; containerd's ns is in it.
		if q, ok := rec["query"].(string); ok {
			if v, err := url.ParseQuery(q); err == nil && v.Has("ns") {
				rec["ns"] = v.Get("ns")
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%v:", rec["msg"])
		for _, k := range []string{"method", "path", "ns", "status", "took"} {
			if v, ok := rec[k]; ok {
				fmt.Fprintf(&b, " %s=%v", k, v)
			}
		}
		var rest []string
		for k, v := range rec {
			switch k {
			case "level", "ts", "caller", "logger", "msg", "method", "path", "ns", "query", "status", "took", "stacktrace":
				continue
			}
			rest = append(rest, fmt.Sprintf("%s=%v", k, v))
		}
		sort.Strings(rest)
		if len(rest) > 0 {
			b.WriteString(" " + strings.Join(rest, " "))
		}
		lines = append(lines, b.String())
	}
	t.Logf("agent%d saw %d registry requests:\n  %s", i+1, len(lines), strings.Join(lines, "\n  "))
}

// --- metrics ---

func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	m, err := cluster.Scrape(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitMetric polls addr's /metrics until cond holds for the sum of name's series with
// the labels (reporters flush every second) or 15 s pass, and returns the last sum.
func waitMetric(t *testing.T, addr, name string, cond func(float64) bool, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := cluster.Sum(scrape(t, addr), name, labels...)
		if cond(v) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// series lists the samples of metrics whose names start with prefix, sorted, for logs.
func series(m map[string]float64, prefix string) string {
	var out []string
	for k, v := range m {
		if strings.HasPrefix(k, prefix) && v != 0 {
			out = append(out, fmt.Sprintf("%s %v", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n  ")
}

// --- tools and images ---

// image is what was pushed: its raw manifest and the digests in it.
type image struct {
	raw    string
	digest string // of raw
	config string
	layers []string
	sizes  []int64 // of layers
}

// blobs are the image's config and layers.
func (m image) blobs() []string { return append([]string{m.config}, m.layers...) }

// bigLayerDigest is the largest layer's digest.
func (m image) bigLayerDigest() string {
	best := 0
	for i, s := range m.sizes {
		if s > m.sizes[best] {
			best = i
		}
	}
	return m.layers[best]
}

// pushImage pushes a new image of random layers of the given sizes to ref (straight to
// the upstream or through the proxy) and returns it as the registry holds it.
func pushImage(t *testing.T, ref string, sizes ...int) image {
	t.Helper()
	args := []string{"append", "--insecure"}
	for _, size := range sizes {
		args = append(args, "-f", randomLayerTar(t, size))
	}
	tool(t, "crane", append(args, "-t", ref)...)
	raw := tool(t, "crane", "manifest", "--insecure", ref)
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("manifest of %s: %v\n%s", ref, err, raw)
	}
	img := image{raw: raw, digest: digestOf([]byte(raw)), config: m.Config.Digest}
	for _, l := range m.Layers {
		img.layers = append(img.layers, l.Digest)
		img.sizes = append(img.sizes, l.Size)
	}
	if img.config == "" || len(img.layers) != len(sizes) {
		t.Fatalf("manifest of %s: want a config and %d layers:\n%s", ref, len(sizes), raw)
	}
	t.Logf("pushed %s: manifest %s, layers %v (%v bytes)", ref, img.digest, img.layers, img.sizes)
	return img
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// --- hosts.toml ---

// hostsFile reads <dir>/<registry>/hosts.toml ("" when missing).
func hostsFile(t *testing.T, dir, registry string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, registry, "hosts.toml"))
	if os.IsNotExist(err) {
		return ""
	} else if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeHostsFile writes <dir>/<registry>/hosts.toml.
func writeHostsFile(t *testing.T, dir, registry, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, registry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, registry, "hosts.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// listTree lists every file under dir (relative paths), for logs and the restore check.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if info.IsDir() {
			rel += "/"
		}
		if rel != "./" {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// The suites' shared helpers (test/e2eutil).
var (
	tool           = e2eutil.Tool
	toolErr        = e2eutil.ToolErr
	randomLayerTar = e2eutil.RandomLayerTar
)
