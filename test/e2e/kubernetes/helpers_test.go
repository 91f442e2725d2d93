//go:build e2e

package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shoal-p2p/shoal/test/cluster"
	"github.com/shoal-p2p/shoal/test/e2eutil"
)

// kube is the running test cluster: the paths test/kube/up.sh wrote to its env file.
type kube struct {
	root    string
	env     map[string]string
	t0      time.Time
	cleanup []func()
}

// up starts the cluster with the chart's images imported; down on cleanup.
func up(t *testing.T) *kube {
	t.Helper()
	k := &kube{root: repoRoot(), t0: time.Now()}
	images, _ := filepath.Glob(filepath.Join(k.root, "build", "images", "shoal-*.tar"))
	if len(images) != 5 {
		t.Fatalf("want 5 image archives in build/images (make images), found %d", len(images))
	}
	images = append(images, filepath.Join(k.root, ".tools", "kube", "images", "hello.tar"))
	if os.Getenv("SHOAL_KUBE_REUSE") != "" {
		// A cluster already up (SHOAL_KUBE_KEEP from an earlier run): only import.
		out, err := k.script("import.sh", images...)
		if err != nil {
			t.Fatalf("test/kube/import.sh: %v\n%s", err, out)
		}
		k.env = readEnv(t, filepath.Join(kubeDir(), "env"))
		return k
	}
	out, err := k.script("up.sh", images...)
	t.Logf("test/kube/up.sh:\n%s", indent(out))
	t.Cleanup(func() {
		if os.Getenv("SHOAL_KUBE_KEEP") != "" {
			t.Log("SHOAL_KUBE_KEEP set: the cluster stays up (test/kube/down.sh stops it)")
			return
		}
		out, err := k.script("down.sh")
		if err != nil {
			t.Errorf("test/kube/down.sh: %v\n%s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("test/kube/up.sh: %v", err)
	}
	k.env = readEnv(t, filepath.Join(kubeDir(), "env"))
	return k
}

// kubeDir is test/kube's state folder.
func kubeDir() string {
	if dir := os.Getenv("SHOAL_KUBE_DIR"); dir != "" {
		return dir
	}
	return "/tmp/shoal-kube"
}

func (k *kube) script(name string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(k.root, "test", "kube", name)}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// readEnv parses the `export K=V  # comment` lines of up.sh's env file.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		env[k] = v
	}
	return env
}

// run runs a tool with the cluster's kubeconfig and returns its stdout; a failure is fatal.
func (k *kube) run(t *testing.T, tool string, args ...string) string {
	t.Helper()
	out, err := k.try(tool, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, out)
	}
	return out
}

func (k *kube) try(tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.env["KUBECONFIG"])
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func (k *kube) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return k.run(t, k.env["KUBECTL"], append([]string{"-n", namespace}, args...)...)
}

func (k *kube) helm(t *testing.T, args ...string) string {
	t.Helper()
	return k.run(t, k.env["HELM"], append([]string{"-n", namespace}, args...)...)
}

// apply creates the objects of a YAML document.
func (k *kube) apply(t *testing.T, yaml string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "objects.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	k.kubectl(t, "apply", "-f", f)
}

// step logs what was done and when, since the cluster came up.
func (k *kube) step(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("[+%5.1fs] %s", time.Since(k.t0).Seconds(), fmt.Sprintf(format, args...))
}

// eventually polls cond every 500 ms until it holds or timeout passes (a hang guard,
// not a speed assertion).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (last: %s)", what, timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// metric scrapes addr and sums name's series with the labels.
func metric(addr, name string, labels ...string) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	samples, err := cluster.Scrape(ctx, addr)
	if err != nil {
		return -1
	}
	return cluster.Sum(samples, name, labels...)
}

// snapshot reads every file under dir (path -> content); a missing dir is empty.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			files[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(path)
		files[rel] = string(b)
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

// pushed is an image written to a registry: its manifest digest and blobs.
type pushed struct {
	ref    string
	digest string
	layers []string
}

// push writes the hello image (static Go HTTP server, from test/kube/build.sh) plus a
// random layer of size bytes (so each image is new content, bigger than the agent's
// direct_below: through the swarm) to ref over plain HTTP.
func push(t *testing.T, hello, ref string, size int) pushed {
	t.Helper()
	base, err := tarball.ImageFromPath(hello, nil)
	if err != nil {
		t.Fatalf("read %s: %v", hello, err)
	}
	layer, err := tarball.LayerFromFile(e2eutil.RandomLayerTar(t, size))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	p := pushed{ref: ref, digest: d.String()}
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		p.layers = append(p.layers, ld.String())
	}
	return p
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
