package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/stall"
)

// ClusterStore serves Blobs and Uploads from a cluster of origins: the proxy's storage.
//
// Reads try the origins in the blob's placement order (owners first, then the rest,
// unhealthy ones last) and fall through on any failure, a miss included: until the
// committing origin has replicated a blob, it may be the only one holding it. An
// upload session lives on one origin, chosen per session among the healthy ones; the
// registry's upload id is that origin's base URL (base64url) + "." + the origin's own
// id, so every later request of the session reaches it. The committing origin
// replicates the blob to its owners.
//
// A read that sees no byte from its origin for stallTimeout fails (lib/stall): before
// the body with CodeStalled (503), during it as a cut-off body, so the client retries.
type ClusterStore struct {
	origins      *originset.Set
	stallTimeout time.Duration
}

// NewClusterStore adapts an origin set to the registry's seams; stallTimeout <= 0
// waits on a stalled origin forever.
func NewClusterStore(origins *originset.Set, stallTimeout time.Duration) *ClusterStore {
	return &ClusterStore{origins: origins, stallTimeout: stallTimeout}
}

var (
	_ Blobs   = (*ClusterStore)(nil)
	_ Uploads = (*ClusterStore)(nil)
)

// errNoOrigins is returned when the origin set is empty (a DNS set before it resolved).
var errNoOrigins = errors.New("registry: no origins known yet")

// Stat asks d's origins in order for its size. ErrNotFound only when no origin has d
// and at least one said so: every origin reads misses through the shared backend, so
// one miss answered means the blob is not stored anywhere readable, and a pusher asking
// whether to upload had better upload than fail on an unreachable origin.
func (o *ClusterStore) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	var size int64
	err := o.read(ctx, d, func(c *originclient.Client) (err error) {
		size, err = c.Stat(ctx, d)
		return err
	})
	return size, err
}

// Open opens d on the first of its origins (in placement order) that has it.
func (o *ClusterStore) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	var (
		rc   io.ReadSeekCloser
		size int64
	)
	ctx, watch := stall.New(ctx, o.stallTimeout)
	watch.Busy()
	err := o.read(ctx, d, func(c *originclient.Client) (err error) {
		rc, size, err = c.Open(ctx, d)
		return err
	})
	watch.Idle()
	if err != nil {
		watch.Stop()
		if errors.Is(context.Cause(ctx), stall.ErrStalled) {
			return nil, 0, oci.NewError(oci.CodeStalled, fmt.Sprintf("%s: no answer from its origins for %s (stall_timeout): try again", d, o.stallTimeout), err)
		}
		return nil, 0, err
	}
	return watch.Reader(ctx, rc), size, nil
}

// read calls try on d's origins in order until one succeeds; see Stat for the result
// when none does. Failures other than misses are reported to the set.
func (o *ClusterStore) read(ctx context.Context, d digest.Digest, try func(*originclient.Client) error) error {
	origins := o.origins.Owners(d)
	if len(origins) == 0 {
		return fmt.Errorf("read %s: %w", d, errNoOrigins)
	}
	var misses, errs []error
	for _, c := range origins {
		err := try(c)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return err
		case errors.Is(err, originclient.ErrNotFound):
			misses = append(misses, err)
		default:
			o.origins.MarkFailed(c.Addr())
			errs = append(errs, err)
		}
	}
	if len(misses) > 0 {
		return fmt.Errorf("%w: %s on no origin: %w", ErrNotFound, d, errors.Join(append(misses, errs...)...))
	}
	return fmt.Errorf("read %s: every origin failed: %w", d, errors.Join(errs...))
}

// Start opens a session on the first healthy origin in the placement order of a random
// key, which spreads sessions evenly; an origin that fails is skipped.
func (o *ClusterStore) Start(ctx context.Context) (string, error) {
	key := digest.FromString(strconv.FormatUint(rand.Uint64(), 16))
	origins := o.origins.Owners(key)
	if len(origins) == 0 {
		return "", fmt.Errorf("start upload: %w", errNoOrigins)
	}
	var errs []error
	for _, c := range origins {
		id, err := c.StartUpload(ctx)
		if err == nil {
			return base64.RawURLEncoding.EncodeToString([]byte(c.Addr())) + "." + id, nil
		}
		if ctx.Err() != nil {
			return "", err
		}
		o.origins.MarkFailed(c.Addr())
		errs = append(errs, err)
	}
	return "", fmt.Errorf("start upload: every origin failed: %w", errors.Join(errs...))
}

func (o *ClusterStore) Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	c, oid, err := o.session(id)
	if err != nil {
		return 0, err
	}
	n, err := c.AppendUpload(ctx, oid, offset, r)
	return n, fromOrigin(err)
}

func (o *ClusterStore) Size(ctx context.Context, id string) (int64, error) {
	c, oid, err := o.session(id)
	if err != nil {
		return 0, err
	}
	n, err := c.UploadSize(ctx, oid)
	return n, fromOrigin(err)
}

func (o *ClusterStore) Commit(ctx context.Context, id string, d digest.Digest) error {
	c, oid, err := o.session(id)
	if err != nil {
		return err
	}
	return fromOrigin(c.CommitUpload(ctx, oid, d))
}

func (o *ClusterStore) Cancel(ctx context.Context, id string) error {
	c, oid, err := o.session(id)
	if err != nil {
		return err
	}
	return fromOrigin(c.CancelUpload(ctx, oid))
}

// session decodes a registry upload id into its origin and the origin's id. The origin
// must be a current member: the id comes from the client, so it never makes the proxy
// call an arbitrary URL. ErrUploadUnknown otherwise.
func (o *ClusterStore) session(id string) (*originclient.Client, string, error) {
	enc, oid, ok := strings.Cut(id, ".")
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil || oid == "" {
		return nil, "", fmt.Errorf("%w: malformed upload id %q", ErrUploadUnknown, id)
	}
	c, ok := o.origins.Member(string(raw))
	if !ok {
		return nil, "", fmt.Errorf("%w: upload %q is on %q, no longer an origin", ErrUploadUnknown, id, raw)
	}
	return c, oid, nil
}

// fromOrigin maps the origin client's sentinels to the registry's.
func fromOrigin(err error) error {
	for _, m := range []struct{ from, to error }{
		{originclient.ErrNotFound, ErrNotFound},
		{originclient.ErrDigestMismatch, ErrDigestMismatch},
		{originclient.ErrUploadUnknown, ErrUploadUnknown},
		{originclient.ErrOffsetMismatch, ErrOffsetMismatch},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %w", m.to, err)
		}
	}
	return err
}

// BuildIndexTags serves Tags from build-index: the proxy's and the agent's tags.
func BuildIndexTags(c *buildindexclient.Client) Tags { return buildIndexTags{c} }

type buildIndexTags struct{ c *buildindexclient.Client }

func (b buildIndexTags) Get(ctx context.Context, repo, tag string) (digest.Digest, error) {
	d, err := b.c.GetTag(ctx, repo, tag)
	return d, fromBuildIndex(err)
}

func (b buildIndexTags) Put(ctx context.Context, repo, tag string, d digest.Digest) error {
	return fromBuildIndex(b.c.PutTag(ctx, repo, tag, d))
}

func (b buildIndexTags) List(ctx context.Context, repo string) ([]string, error) {
	tags, err := b.c.ListTags(ctx, repo)
	return tags, fromBuildIndex(err)
}

func (b buildIndexTags) Repositories(ctx context.Context) ([]string, error) {
	repos, err := b.c.ListRepositories(ctx)
	return repos, fromBuildIndex(err)
}

// fromBuildIndex maps the build-index client's errors to the seam's: a miss is
// ErrNotFound, any other failure ErrUnavailable (the registry checked the names it
// sends, so the build-index refusing one is not the client's fault either).
func fromBuildIndex(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, buildindexclient.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
