//go:build integration

package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
)

// The distribution registry every test here reads from; TestMain starts it. The tests
// are not parallel: TestIntegrationUpstreamDown stops and restarts it.
var upstream *distribution

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	bin, err := exec.LookPath("distribution-registry")
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry integration tests need distribution's registry on PATH as distribution-registry: "+
			"run `make tools` (installs it into .tools/bin) and `make integration`, or add .tools/bin to PATH:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "shoal-distribution-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	upstream, err = newDistribution(bin, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start distribution registry:", err)
		return 1
	}
	defer upstream.stop()
	return m.Run()
}

// distribution is a docker/distribution registry process on a loopback port, over a
// filesystem store in dir.
type distribution struct {
	bin, config, addr string
	cmd               *exec.Cmd
	exited            chan error
	logs              *bytes.Buffer
}

func newDistribution(bin, dir string) (*distribution, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	config := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "storage"), addr)
	if err := os.WriteFile(config, []byte(yml), 0o644); err != nil {
		return nil, err
	}
	d := &distribution{bin: bin, config: config, addr: addr}
	return d, d.start()
}

// start runs the registry and waits until GET /v2/ answers 200.
func (d *distribution) start() error {
	d.logs = &bytes.Buffer{}
	d.cmd = exec.Command(d.bin, "serve", d.config)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	// Poll: the registry is a separate process, so there is no event to wait on.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case werr := <-d.exited:
			return fmt.Errorf("exited (%v):\n%s", werr, d.logs.String())
		case <-ctx.Done():
			d.stop()
			return fmt.Errorf("not answering on %s after 30s (%v):\n%s", d.addr, err, d.logs.String())
		case <-tick.C:
		}
	}
}

// stop kills the registry: an outage, not a graceful shutdown.
func (d *distribution) stop() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

func (d *distribution) url() string { return "http://" + d.addr }

func integrationBackend(t *testing.T, opts ...Option) *Backend {
	return newTestBackend(t, Config{URL: upstream.url(), Insecure: true, TagTTL: time.Minute, Timeout: 5 * time.Second}, opts...)
}

func TestIntegrationTag(t *testing.T) {
	img := push(t, upstream.addr, "it/tag", "v1")
	b := integrationBackend(t)
	wantTag(t, b, "it/tag", "v1", digestOf(t, img))
}

func TestIntegrationBlob(t *testing.T) {
	img := push(t, upstream.addr, "it/blob", "v1")
	b := integrationBackend(t)
	ctx := backend.WithNamespace(t.Context(), "it/blob")

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		rc, _ := l.Compressed()
		want, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		n := backend.BlobName(digest.Digest(d.String()))
		if got, err := download(ctx, b, n); err != nil || got != string(want) {
			t.Errorf("Download layer %s = %d bytes, %v; want %d", d, len(got), err, len(want))
		}
		if info, err := b.Stat(ctx, n); err != nil || info.Size != int64(len(want)) {
			t.Errorf("Stat layer %s = %+v, %v; want size %d", d, info, err, len(want))
		}
	}
	cfgName, _ := img.ConfigName()
	cfgRaw, _ := img.RawConfigFile()
	if got, err := download(ctx, b, backend.BlobName(digest.Digest(cfgName.String()))); err != nil || got != string(cfgRaw) {
		t.Errorf("Download config = %q, %v; want %q", got, err, cfgRaw)
	}

	// The manifest by digest, from the manifest endpoint.
	raw, _ := img.RawManifest()
	mName := backend.BlobName(digest.Digest(digestOf(t, img)))
	if got, err := download(ctx, b, mName); err != nil || got != string(raw) {
		t.Errorf("Download manifest by digest = %q, %v; want %q", got, err, raw)
	}
	if info, err := b.Stat(ctx, mName); err != nil || info.Size != int64(len(raw)) {
		t.Errorf("Stat manifest by digest = %+v, %v; want size %d", info, err, len(raw))
	}

	// Misses: no namespace, another repository, an absent digest.
	for _, tc := range []struct {
		ctx  context.Context
		name string
	}{
		{t.Context(), mName},
		{backend.WithNamespace(t.Context(), "it/other"), mName},
		{ctx, backend.BlobName(digest.FromString("absent"))},
	} {
		if got, err := download(tc.ctx, b, tc.name); !errors.Is(err, backend.ErrNotFound) || got != "" {
			t.Errorf("Download %s = %q, %v; want ErrNotFound and nothing written", tc.name, got, err)
		}
		if _, err := b.Stat(tc.ctx, tc.name); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("Stat %s: %v, want ErrNotFound", tc.name, err)
		}
	}
}

// A retagged upstream tag is followed once the TTL is over, not before.
func TestIntegrationRetag(t *testing.T) {
	img1 := push(t, upstream.addr, "it/retag", "latest")
	img2 := push(t, upstream.addr, "it/retag", "next")
	clk := newClock()
	b := integrationBackend(t, WithClock(clk.Now))
	wantTag(t, b, "it/retag", "latest", digestOf(t, img1))

	retag(t, upstream.addr, "it/retag", "latest", img2)
	clk.Advance(59 * time.Second)
	wantTag(t, b, "it/retag", "latest", digestOf(t, img1))
	clk.Advance(time.Second)
	wantTag(t, b, "it/retag", "latest", digestOf(t, img2))
}

func TestIntegrationNotFound(t *testing.T) {
	img := push(t, upstream.addr, "it/notfound", "v1")
	b := integrationBackend(t)
	for _, n := range []string{backend.TagName("it/notfound", "v2"), backend.TagName("it/nosuchrepo", "v1")} {
		if got, err := download(t.Context(), b, n); !errors.Is(err, backend.ErrNotFound) || got != "" {
			t.Errorf("Download %s = %q, %v; want ErrNotFound", n, got, err)
		}
	}
	// Deleted upstream (by digest: distribution deletes manifests, not tags), then
	// re-checked after the TTL: a miss.
	clk := newClock()
	b = integrationBackend(t, WithClock(clk.Now))
	wantTag(t, b, "it/notfound", "v1", digestOf(t, img))
	ref, _ := name.NewDigest(upstream.addr+"/it/notfound@"+digestOf(t, img), name.Insecure)
	if err := remote.Delete(ref, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if _, err := b.Stat(t.Context(), backend.TagName("it/notfound", "v1")); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat of a deleted tag after the TTL: %v, want ErrNotFound", err)
	}
}

func TestIntegrationList(t *testing.T) {
	for _, rt := range []struct{ repo, tag string }{{"it/list/a", "v2"}, {"it/list/a", "v1"}, {"it/list/b", "x"}} {
		push(t, upstream.addr, rt.repo, rt.tag)
	}
	b := integrationBackend(t)
	got, err := b.List(t.Context(), backend.TagsPrefix("it/list/a"))
	if want := []string{backend.TagName("it/list/a", "v1"), backend.TagName("it/list/a", "v2")}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List tags = %q, %v; want %q", got, err, want)
	}
	got, err = b.List(t.Context(), backend.RepositoriesPrefix+"it/list/")
	if want := []string{backend.TagName("it/list/a", "v1"), backend.TagName("it/list/a", "v2"), backend.TagName("it/list/b", "x")}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List catalog = %q, %v; want %q", got, err, want)
	}
	if got, err := b.List(t.Context(), backend.TagsPrefix("it/list/none")); err != nil || len(got) != 0 {
		t.Errorf("List tags of a missing repository = %q, %v; want empty", got, err)
	}
}

// With the upstream killed, a tag resolved before (TTL over) is served stale, an
// uncached one and blobs are errors, not misses. Then the upstream comes back.
func TestIntegrationUpstreamDown(t *testing.T) {
	img := push(t, upstream.addr, "it/down", "v1")
	push(t, upstream.addr, "it/down", "v2")
	clk := newClock()
	b := integrationBackend(t, WithClock(clk.Now))
	wantTag(t, b, "it/down", "v1", digestOf(t, img))

	upstream.stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := upstream.start(); err != nil {
				t.Errorf("restart the upstream: %v", err)
			}
		}
	})
	clk.Advance(time.Hour)
	wantTag(t, b, "it/down", "v1", digestOf(t, img))
	for _, n := range []string{backend.TagName("it/down", "v2"), backend.TagName("it/down", "v3")} {
		if _, err := b.Stat(t.Context(), n); err == nil || errors.Is(err, backend.ErrNotFound) {
			t.Errorf("Stat %s with the upstream down: %v, want an error other than ErrNotFound", n, err)
		}
	}
	ctx := backend.WithNamespace(t.Context(), "it/down")
	if got, err := download(ctx, b, backend.BlobName(digest.Digest(digestOf(t, img)))); err == nil || errors.Is(err, backend.ErrNotFound) || got != "" {
		t.Errorf("Download manifest with the upstream down = %q, %v; want an error other than ErrNotFound", got, err)
	}
	if _, err := b.List(t.Context(), backend.TagsPrefix("it/down")); err == nil {
		t.Error("List with the upstream down: no error")
	}

	restarted = true
	if err := upstream.start(); err != nil {
		t.Fatalf("restart the upstream: %v", err)
	}
	img3 := push(t, upstream.addr, "it/down", "v3")
	wantTag(t, b, "it/down", "v3", digestOf(t, img3))
}
