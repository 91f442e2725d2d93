//go:build e2e

package preheat

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/test/e2eutil"
)

// startUpstream runs the distribution registry on upstreamAddr with htpasswd auth, over
// a folder kept across the tests (each pushes its own image); the test's cleanup stops
// it.
func startUpstream(t *testing.T) *e2eutil.Server {
	t.Helper()
	dir := filepath.Join(base, "upstream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := e2eutil.WriteRegistryConfig(t, dir, upstreamAddr, false,
		e2eutil.WithHtpasswd(filepath.Join(base, "secrets", "htpasswd")))
	s := &e2eutil.Server{
		Name: "distribution-registry", Addr: upstreamAddr, Dir: dir,
		Cmd: []string{"distribution-registry", "serve", config},
		// An anonymous GET /v2/ is refused: the auth is on.
		Ready: e2eutil.HTTPReady("http://"+upstreamAddr+"/v2/", http.StatusUnauthorized),
	}
	s.Start(t)
	return s
}

// platforms are the two platforms of every test image.
var platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// testImage is a two-platform OCI index as pushed to the upstream, with the bytes of
// everything in it.
type testImage struct {
	repo, tag string
	index     digest.Digest
	platforms []platformImage
	raw       map[digest.Digest][]byte // every blob by digest: index, manifests, configs, layers
}

type platformImage struct {
	platform string // os/arch
	manifest digest.Digest
	config   digest.Digest
	layers   []digest.Digest
}

// blobs is every digest of the image, the index first, then per platform its manifest,
// config and layers.
func (img testImage) blobs() []digest.Digest {
	out := []digest.Digest{img.index}
	for _, p := range img.platforms {
		out = append(out, p.manifest, p.config)
		out = append(out, p.layers...)
	}
	return out
}

// manifestURL is the image's manifest URL on the upstream (or on addr), by tag.
func (img testImage) manifestURL(addr string) string {
	return "http://" + addr + "/v2/" + img.repo + "/manifests/" + img.tag
}

// pushImage builds a new two-platform OCI index (linux/amd64 and linux/arm64, each with
// random gzip layers of the given sizes), pushes it to the upstream as repo:tag with
// crane and returns it.
func pushImage(t *testing.T, repo, tag string, layerSizes ...int64) testImage {
	t.Helper()
	img := testImage{repo: repo, tag: tag, raw: map[digest.Digest][]byte{}}
	keep := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		img.raw[d] = b
		return d
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		im := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		cf, err := im.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = p.OS, p.Architecture
		if im, err = mutate.ConfigFile(im, cf); err != nil {
			t.Fatal(err)
		}
		pi := platformImage{platform: p.OS + "/" + p.Architecture}
		for _, size := range layerSizes {
			l, err := random.Layer(size, types.OCILayer)
			if err != nil {
				t.Fatal(err)
			}
			if im, err = mutate.AppendLayers(im, l); err != nil {
				t.Fatal(err)
			}
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := l.Digest(); keep(b).String() != want.String() {
				t.Fatalf("layer bytes of %s do not hash to its digest", want)
			}
			pi.layers = append(pi.layers, digest.FromBytes(b))
		}
		rawCfg, err := im.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		pi.config = keep(rawCfg)
		rawManifest, err := im.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		pi.manifest = keep(rawManifest)
		img.platforms = append(img.platforms, pi)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: im, Descriptor: v1.Descriptor{Platform: &p}})
	}
	rawIndex, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	img.index = keep(rawIndex)

	// An OCI layout holding the index as its one entry, which crane push sends as is.
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	ref := upstreamAddr + "/" + repo + ":" + tag
	out := tool(t, "crane", "push", "--insecure", dir, ref)
	if want := upstreamAddr + "/" + repo + "@" + img.index.String(); strings.TrimSpace(out) != want {
		t.Fatalf("crane push printed %q, want %s", out, want)
	}
	if got := strings.TrimSpace(tool(t, "crane", "digest", "--insecure", ref)); got != img.index.String() {
		t.Fatalf("upstream has %s at %s, want the pushed index %s", got, ref, img.index)
	}
	return img
}

// cutProxy is a reverse proxy in front of the upstream registry that cuts the
// connection after limit bytes of every GET of blob cut, as an upstream dying mid-blob
// does; everything else passes through (credentials included).
type cutProxy struct {
	addr  string // host:port
	cut   digest.Digest
	limit int64

	mu   sync.Mutex
	cuts int // GETs of cut answered short
}

func newCutProxy(t *testing.T, cut digest.Digest, limit int64) *cutProxy {
	t.Helper()
	up := &url.URL{Scheme: "http", Host: upstreamAddr}
	rp := httputil.NewSingleHostReverseProxy(up)
	c := &cutProxy{cut: cut, limit: limit}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+cut.String()) {
			rp.ServeHTTP(w, r)
			return
		}
		out := r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host, out.Host, out.RequestURI = up.Scheme, up.Host, up.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(w, resp.Body)
			return
		}
		if _, err := io.CopyN(w, resp.Body, c.limit); err != nil {
			t.Errorf("cut proxy: copy the first %d bytes of %s: %v", c.limit, cut, err)
		}
		http.NewResponseController(w).Flush()
		c.mu.Lock()
		c.cuts++
		c.mu.Unlock()
		panic(http.ErrAbortHandler) // closes the connection mid-body, without a log line
	}))
	t.Cleanup(srv.Close)
	c.addr = strings.TrimPrefix(srv.URL, "http://")
	return c
}

func (c *cutProxy) cutCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts
}

// The suites' shared helpers (test/e2eutil).
var tool = e2eutil.Tool
