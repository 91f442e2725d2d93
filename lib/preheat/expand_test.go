package preheat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-p2p/shoal/lib/oci"
)

// fakeFetcher serves manifests from memory and counts fetches.
type fakeFetcher struct {
	bodies map[digest.Digest][]byte
	names  map[digest.Digest]string // for readable test output
	calls  int
	fail   error // returned for every fetch when set
}

func newFake() *fakeFetcher {
	return &fakeFetcher{bodies: map[digest.Digest][]byte{}, names: map[digest.Digest]string{}}
}

func (f *fakeFetcher) Manifest(_ context.Context, repo string, d digest.Digest) ([]byte, error) {
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	b, ok := f.bodies[d]
	if !ok {
		return nil, fmt.Errorf("GET /v2/%s/manifests/%s: %w", repo, d, ErrNotFound)
	}
	return b, nil
}

// blob is a descriptor for content named name (its digest is of the name).
func (f *fakeFetcher) blob(name, mediaType string) v1.Descriptor {
	d := digest.FromString(name)
	f.names[d] = name
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(name))}
}

// put stores v as a manifest named name and returns its descriptor.
func (f *fakeFetcher) put(name string, v any, p *v1.Platform) v1.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	d := digest.FromBytes(b)
	f.bodies[d], f.names[d] = b, name
	mt := ""
	switch m := v.(type) {
	case v1.Manifest:
		mt = m.MediaType
	case v1.Index:
		mt = m.MediaType
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b)), Platform: p}
}

// image stores an image manifest of mediaType with config and layers named by their content.
func (f *fakeFetcher) image(name, mediaType string, layers ...string) v1.Descriptor {
	return f.imageOn(name, mediaType, nil, layers...)
}

func (f *fakeFetcher) imageOn(name, mediaType string, p *v1.Platform, layers ...string) v1.Descriptor {
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaType,
		Config: f.blob(name+"-config", v1.MediaTypeImageConfig)}
	for _, l := range layers {
		m.Layers = append(m.Layers, f.blob(l, v1.MediaTypeImageLayerGzip))
	}
	return f.put(name, m, p)
}

func (f *fakeFetcher) index(name, mediaType string, children ...v1.Descriptor) v1.Descriptor {
	return f.put(name, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaType, Manifests: children}, nil)
}

// describe renders a plan as "kind name<-referrers" lines.
func (f *fakeFetcher) describe(p Plan) []string {
	var out []string
	for _, e := range p.Entries {
		s := string(e.Kind) + " " + f.names[e.Digest]
		if e.Platform != "" {
			s += " (" + e.Platform + ")"
		}
		if len(e.ReferencedBy) > 0 {
			var by []string
			for _, r := range e.ReferencedBy {
				by = append(by, f.names[r])
			}
			s += " <- " + strings.Join(by, ",")
		}
		out = append(out, s)
	}
	return out
}

var (
	amd64 = &v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

func TestExpand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// build stores manifests and returns the root.
		build     func(f *fakeFetcher) digest.Digest
		filter    []string
		want      []string // describe() of the plan
		wantType  string
		wantPlats []string
		wantErr   string // substring; "" = success
		wantCalls int    // fetches, when > 0
	}{{
		name: "docker v2 manifest",
		build: func(f *fakeFetcher) digest.Digest {
			return f.image("img", oci.MediaTypeDockerManifest, "l1", "l2").Digest
		},
		want:     []string{"manifest img", "config img-config <- img", "layer l1 <- img", "layer l2 <- img"},
		wantType: oci.MediaTypeDockerManifest,
	}, {
		name: "OCI manifest without a mediaType field",
		build: func(f *fakeFetcher) digest.Digest {
			return f.image("img", "", "l1").Digest
		},
		want:     []string{"manifest img", "config img-config <- img", "layer l1 <- img"},
		wantType: oci.MediaTypeOCIManifest,
	}, {
		name: "two-platform OCI index sharing a layer",
		build: func(f *fakeFetcher) digest.Digest {
			a := f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "base", "amd-1", "amd-2")
			b := f.imageOn("arm", v1.MediaTypeImageManifest, arm64, "base", "arm-1", "arm-2")
			return f.index("idx", v1.MediaTypeImageIndex, a, b).Digest
		},
		want: []string{
			"manifest idx", "manifest amd (linux/amd64) <- idx", "manifest arm (linux/arm64/v8) <- idx",
			"config amd-config <- amd", "config arm-config <- arm",
			"layer base <- amd,arm", "layer amd-1 <- amd", "layer amd-2 <- amd", "layer arm-1 <- arm", "layer arm-2 <- arm",
		},
		wantType:  oci.MediaTypeOCIIndex,
		wantPlats: []string{"linux/amd64", "linux/arm64/v8"},
		wantCalls: 3,
	}, {
		name: "docker manifest list",
		build: func(f *fakeFetcher) digest.Digest {
			a := f.imageOn("amd", oci.MediaTypeDockerManifest, amd64, "l1")
			return f.index("list", oci.MediaTypeDockerList, a).Digest
		},
		want:      []string{"manifest list", "manifest amd (linux/amd64) <- list", "config amd-config <- amd", "layer l1 <- amd"},
		wantType:  oci.MediaTypeDockerList,
		wantPlats: []string{"linux/amd64"},
	}, {
		name: "index of indexes, one manifest listed twice",
		build: func(f *fakeFetcher) digest.Digest {
			a := f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "l1")
			b := f.imageOn("arm", v1.MediaTypeImageManifest, arm64, "l2")
			inner1 := f.index("inner1", v1.MediaTypeImageIndex, a)
			inner2 := f.index("inner2", v1.MediaTypeImageIndex, a, b)
			return f.index("outer", v1.MediaTypeImageIndex, inner1, inner2).Digest
		},
		want: []string{
			"manifest outer", "manifest inner1 <- outer", "manifest amd (linux/amd64) <- inner1,inner2",
			"manifest inner2 <- outer", "manifest arm (linux/arm64/v8) <- inner2",
			"config amd-config <- amd", "config arm-config <- arm", "layer l1 <- amd", "layer l2 <- arm",
		},
		wantType:  oci.MediaTypeOCIIndex,
		wantPlats: []string{"linux/amd64", "linux/arm64/v8"},
		wantCalls: 5, // amd is fetched once
	}, {
		name: "filter keeps one platform, variant-less filter matches a variant",
		build: func(f *fakeFetcher) digest.Digest {
			a := f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "l1")
			b := f.imageOn("arm", v1.MediaTypeImageManifest, arm64, "l2")
			return f.index("idx", v1.MediaTypeImageIndex, a, b).Digest
		},
		filter:    []string{"linux/arm64"},
		want:      []string{"manifest idx", "manifest arm (linux/arm64/v8) <- idx", "config arm-config <- arm", "layer l2 <- arm"},
		wantType:  oci.MediaTypeOCIIndex,
		wantPlats: []string{"linux/arm64/v8"},
		wantCalls: 2, // the filtered-out manifest is not even fetched
	}, {
		name: "filter leaves nothing",
		build: func(f *fakeFetcher) digest.Digest {
			a := f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "l1")
			b := f.imageOn("arm", v1.MediaTypeImageManifest, arm64, "l2")
			return f.index("idx", v1.MediaTypeImageIndex, a, b).Digest
		},
		filter:  []string{"windows/amd64", "linux/arm64/v7"},
		wantErr: "no manifest for platforms windows/amd64, linux/arm64/v7; the image has linux/amd64, linux/arm64/v8",
	}, {
		name: "filter does not apply to a single image manifest",
		build: func(f *fakeFetcher) digest.Digest {
			return f.image("img", oci.MediaTypeDockerManifest, "l1").Digest
		},
		filter:   []string{"windows/amd64"},
		want:     []string{"manifest img", "config img-config <- img", "layer l1 <- img"},
		wantType: oci.MediaTypeDockerManifest,
	}, {
		name: "missing children are all named",
		build: func(f *fakeFetcher) digest.Digest {
			a := f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "l1")
			b := f.imageOn("arm", v1.MediaTypeImageManifest, arm64, "l2")
			root := f.index("idx", v1.MediaTypeImageIndex, a, b).Digest
			delete(f.bodies, a.Digest)
			delete(f.bodies, b.Digest)
			return root
		},
		wantErr: "manifests not found: " + "%amd, %arm",
	}, {
		name:    "missing root",
		build:   func(f *fakeFetcher) digest.Digest { return digest.FromString("nothing") },
		wantErr: "manifests not found: " + digest.FromString("nothing").String(),
	}, {
		name: "garbage bytes",
		build: func(f *fakeFetcher) digest.Digest {
			b := []byte("\x00\x01 not a manifest")
			f.bodies[digest.FromBytes(b)] = b
			return digest.FromBytes(b)
		},
		wantErr: "not valid JSON",
	}, {
		name: "content does not match its digest",
		build: func(f *fakeFetcher) digest.Digest {
			d := f.image("img", oci.MediaTypeDockerManifest, "l1").Digest
			f.bodies[d] = append(f.bodies[d], ' ')
			return d
		},
		wantErr: "content has digest",
	}, {
		name: "index descriptor size is wrong",
		build: func(f *fakeFetcher) digest.Digest {
			a := f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "l1")
			a.Size++
			return f.index("idx", v1.MediaTypeImageIndex, a).Digest
		},
		wantErr: "descriptor says",
	}, {
		name: "indexes nested too deep",
		build: func(f *fakeFetcher) digest.Digest {
			d := f.image("img", v1.MediaTypeImageManifest, "l1")
			for i := range MaxDepth {
				d = f.index(fmt.Sprint("idx", i), v1.MediaTypeImageIndex, d)
			}
			return d.Digest // MaxDepth indexes put the image at depth MaxDepth: still fine
		},
		wantType: oci.MediaTypeOCIIndex,
	}, {
		name: "indexes nested one level too deep",
		build: func(f *fakeFetcher) digest.Digest {
			d := f.image("img", v1.MediaTypeImageManifest, "l1")
			for i := range MaxDepth + 1 {
				d = f.index(fmt.Sprint("idx", i), v1.MediaTypeImageIndex, d)
			}
			return d.Digest
		},
		wantErr: "nested deeper than 4 levels",
	}, {
		name: "artifact with artifactType and subject: blobs warmed, subject not followed",
		build: func(f *fakeFetcher) digest.Digest {
			subject := f.image("img", v1.MediaTypeImageManifest, "l1")
			sig := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
				ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
				Config:       f.blob("{}", v1.MediaTypeEmptyJSON),
				Layers:       []v1.Descriptor{f.blob("signature", "application/vnd.dev.cosign.simplesigning.v1+json")},
				Subject:      &subject}
			return f.put("sig", sig, nil).Digest
		},
		want:      []string{"manifest sig", "config {} <- sig", "layer signature <- sig"},
		wantType:  oci.MediaTypeOCIManifest,
		wantCalls: 1,
	}, {
		name: "foreign layers are skipped",
		build: func(f *fakeFetcher) digest.Digest {
			m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: oci.MediaTypeDockerManifest,
				Config: f.blob("cfg", v1.MediaTypeImageConfig)}
			foreign := f.blob("windows-base", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
			foreign.URLs = []string{"https://mcr.microsoft.com/x"}
			m.Layers = []v1.Descriptor{foreign, f.blob("app", v1.MediaTypeImageLayerGzip)}
			return f.put("win", m, nil).Digest
		},
		want:     []string{"manifest win", "config cfg <- win", "layer app <- win"},
		wantType: oci.MediaTypeDockerManifest,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			root := tc.build(f)
			filter, err := ParsePlatforms(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := Expand(context.Background(), f, "library/app", root, filter)
			if tc.wantErr != "" {
				want := tc.wantErr
				for d, n := range f.names { // %name stands for name's digest
					want = strings.ReplaceAll(want, "%"+n, d.String())
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want it to contain %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil {
				if got := f.describe(plan); !slices.Equal(got, tc.want) {
					t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
				}
			}
			if plan.MediaType != tc.wantType || plan.Root != root || plan.Repo != "library/app" {
				t.Errorf("plan head = %s %s %s, want %s %s", plan.Repo, plan.Root, plan.MediaType, root, tc.wantType)
			}
			if !slices.Equal(plan.Platforms, tc.wantPlats) {
				t.Errorf("platforms = %v, want %v", plan.Platforms, tc.wantPlats)
			}
			if tc.wantCalls > 0 && f.calls != tc.wantCalls {
				t.Errorf("%d fetches, want %d", f.calls, tc.wantCalls)
			}
			for _, e := range plan.Entries {
				if e.Kind == KindManifest {
					if e.Digest != digest.FromBytes(e.Body) || e.Size != int64(len(e.Body)) || e.MediaType == "" {
						t.Errorf("manifest entry %s: body, size %d or media type %q wrong", f.names[e.Digest], e.Size, e.MediaType)
					}
				} else if e.Size != int64(len(f.names[e.Digest])) || e.Body != nil {
					t.Errorf("blob entry %s: size %d, want %d from its descriptor", f.names[e.Digest], e.Size, len(f.names[e.Digest]))
				}
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	t.Parallel()
	f := newFake()
	a := f.imageOn("amd", v1.MediaTypeImageManifest, amd64, "l1")
	root := f.index("idx", v1.MediaTypeImageIndex, a).Digest
	delete(f.bodies, a.Digest)
	_, err := Expand(context.Background(), f, "r", root, nil)
	var missing *MissingError
	if !errors.As(err, &missing) || !slices.Equal(missing.Digests, []digest.Digest{a.Digest}) || !errors.Is(err, ErrNotFound) {
		t.Errorf("missing child: %v, want a MissingError naming %s that is ErrNotFound", err, a.Digest)
	}

	f.fail = errors.New("connection refused")
	if _, err := Expand(context.Background(), f, "r", root, nil); err == nil ||
		!strings.Contains(err.Error(), "fetch manifest r@"+root.String()+": connection refused") {
		t.Errorf("fetch failure: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Expand(ctx, newFake(), "r", root, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	if _, err := Expand(context.Background(), f, "r", "sha256:nope", nil); err == nil {
		t.Error("invalid root digest accepted")
	}
}

func TestPlanTotals(t *testing.T) {
	t.Parallel()
	p := Plan{Entries: []Entry{{Digest: "sha256:a", Size: 3}, {Digest: "sha256:b", Size: 4}}}
	if p.Size() != 7 || !slices.Equal(p.Digests(), []digest.Digest{"sha256:a", "sha256:b"}) {
		t.Errorf("Size %d Digests %v", p.Size(), p.Digests())
	}
}

func TestParsePlatform(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]string{
		"linux/amd64": "linux/amd64", "linux/arm/v7": "linux/arm/v7",
		"linux": "", "linux/": "", "/amd64": "", "linux/arm/": "", "a/b/c/d": "", "": "",
	} {
		p, err := ParsePlatform(s)
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "os/arch") {
				t.Errorf("ParsePlatform(%q) = %v, %v; want an error", s, p, err)
			}
			continue
		}
		if err != nil || p.String() != want {
			t.Errorf("ParsePlatform(%q) = %v, %v", s, p, err)
		}
	}
	arm7 := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	for _, tc := range []struct {
		filter []string
		want   bool
	}{
		{nil, true}, {[]string{"linux/arm"}, true}, {[]string{"linux/arm/v7"}, true},
		{[]string{"linux/arm/v6"}, false}, {[]string{"linux/amd64", "linux/arm/v7"}, true}, {[]string{"windows/arm"}, false},
	} {
		ps, err := ParsePlatforms(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := ps.Match(arm7); got != tc.want {
			t.Errorf("%v.Match(linux/arm/v7) = %v, want %v", tc.filter, got, tc.want)
		}
	}
	if _, err := ParsePlatforms([]string{"linux/amd64", "bad"}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("ParsePlatforms with a bad entry: %v", err)
	}
}
