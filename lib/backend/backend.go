// Package backend is the storage seam behind origins and the build-index: a flat
// namespace of named objects in a bucket or a directory, moved as streams.
//
// Object names follow docker/distribution's storage layout, so Shoal can share a bucket
// with a registry: blobs pushed through either one are visible to the other, and so are
// tags.
//
//	docker/registry/v2/
//	  blobs/
//	    sha256/<first 2 hex>/<hex>/data                  blob bytes (BlobName)
//	    sha256/<first 2 hex>/<hex>/shoal-metainfo        its torrent info (BlobInfoName)
//	  repositories/<repo>/                               <repo> may hold slashes
//	    _manifests/tags/<tag>/current/link               "sha256:<hex>" (TagName)
//
// Drivers live in subpackages (filesystem, ...) and are picked from config by
// lib/backend/driver; backendtest is the conformance suite every driver passes.
// Metrics, retries and digest checks wrap a Backend from outside: a driver only moves
// bytes.
//
// Read-only drivers (an upstream registry, an HTTP mirror) refuse Upload with
// ErrReadOnly. Blob names are content-addressed only, but an upstream registry
// addresses blobs by repository: callers that know the repository a blob is wanted
// for (the agent's and proxy's registry API, and the tracker and origin requests they
// cause) pass it along with WithNamespace; such drivers read it with NamespaceFrom and
// others ignore it.
package backend

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/oci"
)

// ErrNotFound is returned (wrapped) when the named object does not exist.
var ErrNotFound = errors.New("backend: not found")

// ErrReadOnly is returned (wrapped) by Upload of a driver that only reads, such as a
// pull-through from an upstream registry.
var ErrReadOnly = errors.New("backend: read-only backend")

// namespaceKey is the context key of WithNamespace; unexported so only this package
// sets or reads it.
type namespaceKey struct{}

// WithNamespace returns a copy of ctx carrying ns, the repository (e.g.
// "library/busybox") a blob is wanted for. It is a hint: drivers that store blobs by
// digest alone ignore it, and a driver reading from an upstream registry needs it to
// address a blob (GET /v2/<ns>/blobs/<digest>). An empty ns is no hint.
func WithNamespace(ctx context.Context, ns string) context.Context {
	if ns == "" {
		return ctx
	}
	return context.WithValue(ctx, namespaceKey{}, ns)
}

// NamespaceFrom returns the repository WithNamespace put in ctx, and whether there is
// one.
func NamespaceFrom(ctx context.Context) (string, bool) {
	ns, ok := ctx.Value(namespaceKey{}).(string)
	return ns, ok && ns != ""
}

// Info describes a stored object.
type Info struct {
	// Size is the object's length in bytes.
	Size int64
}

// Backend stores named objects. Names are slash-separated relative paths such as
// BlobName and TagName return. Implementations are safe for concurrent use.
type Backend interface {
	// Stat describes the object name; a miss returns ErrNotFound.
	Stat(ctx context.Context, name string) (Info, error)
	// Download writes the whole object name to w; a miss returns ErrNotFound before
	// anything is written.
	Download(ctx context.Context, name string, w io.Writer) error
	// Upload stores everything r yields as the object name, replacing any previous
	// one. It is atomic and durable: readers see the old object or the whole new one,
	// never a part, and once Upload returns nil the object survives a crash. If r
	// fails, Upload returns the error and the previous object (or its absence) stays.
	Upload(ctx context.Context, name string, r io.Reader) error
	// List returns the full names of every object whose name starts with prefix,
	// sorted. prefix may end at a "/" or in the middle of a path component; no match
	// is an empty list, not an error.
	List(ctx context.Context, prefix string) ([]string, error)
}

// RepositoriesPrefix is the parent of every repository's metadata (tags among them).
const RepositoriesPrefix = "docker/registry/v2/repositories/"

// BlobName is the object holding blob d.
func BlobName(d digest.Digest) string {
	hex := d.Encoded()
	first := hex
	if len(first) > 2 {
		first = first[:2]
	}
	return "docker/registry/v2/blobs/" + string(d.Algorithm()) + "/" + first + "/" + hex + "/data"
}

// BlobInfoName is the object holding the bencoded torrent info of blob d, a sidecar
// next to BlobName(d) (a registry sharing the bucket ignores it). With it an origin that
// misses d can answer metainfo and seed pieces while the blob still downloads.
func BlobInfoName(d digest.Digest) string {
	return strings.TrimSuffix(BlobName(d), "data") + "shoal-metainfo"
}

// ParseBlobName is the inverse of BlobName: it reports whether name is a blob's data
// object and, if so, its digest (a valid one, with the hex in the right directory).
func ParseBlobName(name string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(name, "docker/registry/v2/blobs/")
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[3] != "data" {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
	if d.Validate() != nil || BlobName(d) != name {
		return "", false
	}
	return d, true
}

// TagName is the object holding the digest that tag of repo points at.
func TagName(repo, tag string) string {
	return RepositoriesPrefix + repo + "/_manifests/tags/" + tag + "/current/link"
}

// TagsPrefix is the List prefix of every tag object of repo.
func TagsPrefix(repo string) string {
	return RepositoriesPrefix + repo + "/_manifests/tags/"
}

// ParseTagName is the inverse of TagName: it reports whether name is a tag's current
// link and, if so, its repo and tag. Other objects under RepositoriesPrefix (layer
// links, tag history, upload state a registry keeps) are not tags, and neither is a
// name whose repo or tag is not valid (a backend written by another tool may hold
// "../" or upper case): callers use them in paths and URLs.
func ParseTagName(name string) (repo, tag string, ok bool) {
	rest, ok := strings.CutPrefix(name, RepositoriesPrefix)
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, "/current/link")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/_manifests/tags/")
	if i <= 0 {
		return "", "", false
	}
	repo, tag = rest[:i], rest[i+len("/_manifests/tags/"):]
	if !oci.ValidName(repo) || !oci.ValidTag(tag) {
		return "", "", false
	}
	return repo, tag, true
}
