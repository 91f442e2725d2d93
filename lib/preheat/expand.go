package preheat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-p2p/shoal/lib/oci"
)

// MaxDepth bounds how deep Expand follows indexes: the root is depth 0, an index's
// children are one deeper. An index of indexes is legal and needs depth 2; nothing real
// needs more than a few levels. Manifests are named by verified digests, so a true cycle
// cannot be built; a fetcher that lies about content shows up as this limit exceeded.
const MaxDepth = 4

// ErrNotFound is what a Fetcher's error wraps when the manifest does not exist.
var ErrNotFound = errors.New("preheat: manifest not found")

// Fetcher reads manifests for Expand. The caller backs it with the upstream registry
// (with the job's pull credentials) or with Shoal's own origins. Manifest returns the
// body of the manifest d in repo; a miss returns an error wrapping ErrNotFound. It
// returns no media type: Expand detects the kind from the body, because notifications
// (Harbor's always says docker v2 manifest, even for an OCI index) and some registries'
// Content-Type cannot be trusted. Expand calls it from one goroutine.
type Fetcher interface {
	Manifest(ctx context.Context, repo string, d digest.Digest) ([]byte, error)
}

// Kind says what role a blob plays in the image.
type Kind string

const (
	KindManifest Kind = "manifest" // an image manifest, index or manifest list
	KindConfig   Kind = "config"   // an image's or artifact's config
	KindLayer    Kind = "layer"    // a layer, or an artifact's blob
)

// Entry is one blob to warm.
type Entry struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"` // from the referencing descriptor; a manifest's own length
	MediaType string        `json:"media_type"`
	Kind      Kind          `json:"kind"`
	// ReferencedBy lists the manifests that reference this blob, in the order Expand met
	// them; empty for the root. A layer shared by two platforms names both.
	ReferencedBy []digest.Digest `json:"referenced_by,omitempty"`
	// Platform is an index entry's platform (os/arch[/variant]), "" when the index gave
	// none and for non-manifests.
	Platform string `json:"platform,omitempty"`
	// ArtifactType is an artifact manifest's artifactType (a signature, an SBOM, ...).
	ArtifactType string `json:"artifact_type,omitempty"`
	// Body holds a manifest's bytes, so the warming stage can store it without fetching
	// it a second time (a Harbor pull token lives 30 minutes). Nil for other kinds.
	Body []byte `json:"-"`
}

// Plan is everything a preheat must warm for one root manifest, each blob once.
//
// Order is deterministic for the same manifests: every manifest first (depth first,
// root first, children in index order), then every config, then every layer, each group
// in the order the manifests reference them. Manifests come first because they are
// small and what a pull asks for first; layers last because they are the bulk.
type Plan struct {
	Repo string        `json:"repository"`
	Root digest.Digest `json:"digest"`
	// MediaType is the root's kind as detected from its bytes.
	MediaType string  `json:"media_type"`
	Entries   []Entry `json:"entries"`
	// Platforms lists the platforms of the image manifests chosen from indexes (empty
	// when the root is a single image manifest).
	Platforms []string `json:"platforms,omitempty"`
}

// Size is the sum of the entries' sizes: the bytes one host must hold.
func (p Plan) Size() int64 {
	var n int64
	for _, e := range p.Entries {
		n += e.Size
	}
	return n
}

// Digests lists the entries' digests in plan order.
func (p Plan) Digests() []digest.Digest {
	out := make([]digest.Digest, len(p.Entries))
	for i, e := range p.Entries {
		out[i] = e.Digest
	}
	return out
}

// MissingError is Expand's answer when manifests the image references do not exist.
// It names every missing manifest found, not only the first, so one failed job tells
// the admin everything to fix.
type MissingError struct {
	Repo    string
	Digests []digest.Digest
}

func (e *MissingError) Error() string {
	s := make([]string, len(e.Digests))
	for i, d := range e.Digests {
		s[i] = d.String()
	}
	return fmt.Sprintf("%s: manifests not found: %s", e.Repo, strings.Join(s, ", "))
}

// Is makes errors.Is(err, ErrNotFound) hold for a MissingError.
func (e *MissingError) Is(target error) bool { return target == ErrNotFound }

// descriptors are the fields Expand needs beyond what oci.ParseManifest returns: it
// keeps digests only, and a plan needs sizes, media types and platforms.
type descriptors struct {
	ArtifactType string          `json:"artifactType"`
	Config       *v1.Descriptor  `json:"config"`
	Layers       []v1.Descriptor `json:"layers"`
	Manifests    []v1.Descriptor `json:"manifests"`
}

// Expand reads the manifest root of repo and everything under it and returns the plan
// to warm: an index or manifest list expands to each platform's manifest (those filter
// keeps), each image or artifact manifest to its config and layers, and every manifest
// is itself an entry. A subject is not followed: preheating a signature does not mean
// preheating the image it signs. Foreign layers (descriptors with urls) are skipped,
// as the registry does, because they live elsewhere.
//
// The filter applies to index entries that carry a platform; entries without one
// (nested indexes, platform-less artifacts) are kept. A single image manifest at the
// root is warmed whatever the filter says: its platform is not in the manifest.
func Expand(ctx context.Context, f Fetcher, repo string, root digest.Digest, filter Platforms) (Plan, error) {
	if err := root.Validate(); err != nil {
		return Plan{}, fmt.Errorf("preheat %s@%s: %w", repo, root, err)
	}
	x := expansion{ctx: ctx, f: f, repo: repo, filter: filter,
		groups: map[Kind][]Entry{}, where: map[digest.Digest]slot{}}
	mt, err := x.manifest(root, 0, "", "", 0)
	if err != nil {
		return Plan{}, err
	}
	if len(x.missing) > 0 {
		return Plan{}, &MissingError{Repo: repo, Digests: x.missing}
	}
	if len(filter) > 0 && x.indexes > 0 && x.images == 0 {
		return Plan{}, fmt.Errorf("%s@%s: no manifest for platforms %s; the image has %s",
			repo, root, filter, strings.Join(x.offered, ", "))
	}
	p := Plan{Repo: repo, Root: root, MediaType: mt, Platforms: x.platforms}
	p.Entries = slices.Concat(x.groups[KindManifest], x.groups[KindConfig], x.groups[KindLayer])
	return p, nil
}

type expansion struct {
	ctx    context.Context
	f      Fetcher
	repo   string
	filter Platforms

	groups  map[Kind][]Entry
	where   map[digest.Digest]slot // each digest once, in the group of the kind first met
	missing []digest.Digest

	indexes   int      // indexes walked
	images    int      // image or artifact manifests reached through an index
	platforms []string // platforms chosen, in order, once each
	offered   []string // every platform indexes offered, once each
}

type slot struct {
	kind Kind
	i    int
}

// add records that parent references e: the first time as a new entry, later only
// as one more referrer, so a blob shared by platforms is warmed once.
func (x *expansion) add(e Entry, parent digest.Digest) {
	if s, ok := x.where[e.Digest]; ok {
		old := &x.groups[s.kind][s.i]
		if parent != "" && !slices.Contains(old.ReferencedBy, parent) {
			old.ReferencedBy = append(old.ReferencedBy, parent)
		}
		return
	}
	if parent != "" {
		e.ReferencedBy = []digest.Digest{parent}
	}
	x.where[e.Digest] = slot{e.Kind, len(x.groups[e.Kind])}
	x.groups[e.Kind] = append(x.groups[e.Kind], e)
}

// manifest fetches d (size from its descriptor, 0 when unknown), records it and walks
// what it references; it returns the media type detected from its bytes.
func (x *expansion) manifest(d digest.Digest, size int64, parent digest.Digest, platform string, depth int) (string, error) {
	if depth > MaxDepth {
		return "", fmt.Errorf("%s@%s: indexes nested deeper than %d levels", x.repo, d, MaxDepth)
	}
	if _, ok := x.where[d]; ok { // the same manifest listed twice: walk it once
		x.add(Entry{Digest: d, Kind: KindManifest}, parent)
		return "", nil
	}
	if err := x.ctx.Err(); err != nil {
		return "", fmt.Errorf("expand %s@%s: %w", x.repo, d, err)
	}
	body, err := x.f.Manifest(x.ctx, x.repo, d)
	if errors.Is(err, ErrNotFound) && parent != "" {
		x.missing = append(x.missing, d) // keep walking: name every missing child at once
		return "", nil
	}
	if errors.Is(err, ErrNotFound) {
		return "", &MissingError{Repo: x.repo, Digests: []digest.Digest{d}}
	}
	if err != nil {
		return "", fmt.Errorf("fetch manifest %s@%s: %w", x.repo, d, err)
	}
	// Verify here, not only where the bytes are stored: the plan is built from them.
	if !d.Algorithm().Available() {
		return "", fmt.Errorf("manifest %s@%s: unsupported digest algorithm", x.repo, d)
	}
	if got := d.Algorithm().FromBytes(body); got != d {
		return "", fmt.Errorf("manifest %s@%s: content has digest %s", x.repo, d, got)
	}
	if size > 0 && size != int64(len(body)) {
		return "", fmt.Errorf("manifest %s@%s: %d bytes, but %s's descriptor says %d", x.repo, d, len(body), parent, size)
	}
	// An empty content type makes ParseManifest decide from the body alone.
	m, err := oci.ParseManifest("", body)
	if err != nil {
		return "", fmt.Errorf("manifest %s@%s: %w", x.repo, d, err)
	}
	var ds descriptors
	if err := json.Unmarshal(body, &ds); err != nil { // ParseManifest accepted it, so this cannot fail
		return "", fmt.Errorf("manifest %s@%s: %w", x.repo, d, err)
	}
	x.add(Entry{Digest: d, Size: int64(len(body)), MediaType: m.MediaType, Kind: KindManifest,
		Platform: platform, ArtifactType: ds.ArtifactType, Body: body}, parent)

	switch m.MediaType {
	case oci.MediaTypeOCIIndex, oci.MediaTypeDockerList:
		return m.MediaType, x.index(d, ds.Manifests, depth)
	default:
		if depth > 0 {
			x.images++
		}
		x.add(blob(*ds.Config, KindConfig), d)
		for _, l := range ds.Layers {
			if len(l.URLs) == 0 {
				x.add(blob(l, KindLayer), d)
			}
		}
		return m.MediaType, nil
	}
}

func (x *expansion) index(d digest.Digest, children []v1.Descriptor, depth int) error {
	x.indexes++
	for _, c := range children {
		p := ""
		if c.Platform != nil {
			p = FormatPlatform(*c.Platform)
			if !slices.Contains(x.offered, p) {
				x.offered = append(x.offered, p)
			}
			if !x.filter.Match(*c.Platform) {
				continue
			}
			if !slices.Contains(x.platforms, p) {
				x.platforms = append(x.platforms, p)
			}
		}
		if _, err := x.manifest(c.Digest, c.Size, d, p, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func blob(d v1.Descriptor, k Kind) Entry {
	return Entry{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Kind: k}
}
