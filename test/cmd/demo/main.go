// Command demo (`make demo`) starts a local cluster, pushes a generated image of a few
// layers (224 MiB in all) through the proxy, pulls it through every agent at once,
// prints per agent the time, the rate and the bytes that came from peers and from
// origins, checks every digest, stops the cluster, and exits 0 only if all of that held.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-p2p/shoal/test/cluster"
)

const (
	layers    = 4
	layerSize = 56 << 20
	repoTag   = "demo/app:v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("demo OK")
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("starting the devcluster...")
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return err
	}
	defer c.Stop()

	img, err := generateImage()
	if err != nil {
		return err
	}
	want, err := img.Digest()
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(cluster.ProxyAddr+"/"+repoTag, name.Insecure)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push through the proxy: %w", err)
	}
	fmt.Printf("pushed %s (%d layers, %d MiB) through the proxy %s in %.2fs\n",
		want, layers, layers*layerSize>>20, cluster.ProxyAddr, time.Since(start).Seconds())

	results := make([]pullResult, len(c.Agents))
	g, gctx := errgroup.WithContext(ctx)
	for i, a := range c.Agents {
		g.Go(func() error {
			r, err := pull(gctx, a.Registry, want)
			results[i] = r
			if err != nil {
				return fmt.Errorf("%s: %w", a.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Let the agents' metrics reporters (1 s interval) catch up before reading them.
	time.Sleep(1500 * time.Millisecond)
	return report(ctx, c, results)
}

type pullResult struct {
	bytes int64
	took  time.Duration
}

// pull fetches the manifest, config and every layer through one agent, checking digests.
func pull(ctx context.Context, registry string, want v1.Hash) (pullResult, error) {
	start := time.Now()
	ref, err := name.ParseReference(registry+"/"+repoTag, name.Insecure)
	if err != nil {
		return pullResult{}, err
	}
	img, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		return pullResult{}, fmt.Errorf("manifest: %w", err)
	}
	if got, _ := img.Digest(); got != want {
		return pullResult{}, fmt.Errorf("manifest digest %s, pushed %s", got, want)
	}
	if _, err := img.RawConfigFile(); err != nil {
		return pullResult{}, fmt.Errorf("config: %w", err)
	}
	ls, err := img.Layers()
	if err != nil {
		return pullResult{}, err
	}
	var total int64
	g, _ := errgroup.WithContext(ctx)
	sizes := make([]int64, len(ls))
	for i, l := range ls {
		g.Go(func() error {
			n, err := checkLayer(l)
			sizes[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return pullResult{}, err
	}
	for _, n := range sizes {
		total += n
	}
	return pullResult{bytes: total, took: time.Since(start)}, nil
}

func checkLayer(l v1.Layer) (int64, error) {
	d, err := l.Digest()
	if err != nil {
		return 0, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", d, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return n, fmt.Errorf("layer %s: %w", d, err)
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != d.Hex {
		return n, fmt.Errorf("layer %s: pulled bytes hash to sha256:%s", d, got)
	}
	return n, nil
}

func report(ctx context.Context, c *cluster.Cluster, results []pullResult) error {
	fmt.Printf("%-8s %8s %12s %14s %14s  %s\n", "agent", "time", "rate", "from peers", "from origins", "digests")
	var fromPeers float64
	for i, a := range c.Agents {
		m, err := cluster.Scrape(ctx, a.Registry)
		if err != nil {
			return err
		}
		peers := cluster.Sum(m, "shoal_agent_p2p_bytes_downloaded", `source="peer"`)
		origins := cluster.Sum(m, "shoal_agent_p2p_bytes_downloaded", `source="origin"`) +
			cluster.Sum(m, "shoal_agent_p2p_bytes_downloaded", `source="origin_http"`) // pulled over HTTP
		fromPeers += peers
		r := results[i]
		fmt.Printf("%-8s %7.2fs %7.1f MiB/s %10.1f MiB %10.1f MiB  ok\n", a.Name, r.took.Seconds(),
			float64(r.bytes)/(1<<20)/r.took.Seconds(), peers/(1<<20), origins/(1<<20))
	}
	if fromPeers == 0 {
		return errors.New("no agent received any byte from another agent: the swarm did not form")
	}
	return nil
}

// generateImage builds an OCI image of uncompressed tar layers holding random data.
func generateImage() (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var adds []mutate.Addendum
	for i := range layers {
		data, err := randomTar(rng, fmt.Sprintf("data/layer%d.bin", i), layerSize)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(data, types.OCIUncompressedLayer)})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, err
	}
	return mutate.ConfigFile(img, &v1.ConfigFile{Architecture: "amd64", OS: "linux",
		RootFS: v1.RootFS{Type: "layers"}, Config: v1.Config{Labels: map[string]string{"demo": "shoal"}}})
}

func randomTar(rng *rand.Rand, path string, size int) ([]byte, error) {
	payload := make([]byte, size)
	for i := 0; i+8 <= len(payload); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			payload[i+j] = byte(v >> (8 * j))
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(payload); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
