package registry

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/originclient"
)

// OriginStore serves Blobs and Uploads from an origin: the proxy's storage.
type OriginStore struct{ c *originclient.Client }

// NewOriginStore adapts an origin client to the registry's seams.
func NewOriginStore(c *originclient.Client) *OriginStore { return &OriginStore{c: c} }

var (
	_ Blobs   = (*OriginStore)(nil)
	_ Uploads = (*OriginStore)(nil)
)

func (o *OriginStore) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	n, err := o.c.Stat(ctx, d)
	return n, fromOrigin(err)
}

func (o *OriginStore) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	rc, n, err := o.c.Open(ctx, d)
	return rc, n, fromOrigin(err)
}

func (o *OriginStore) Start(ctx context.Context) (string, error) {
	id, err := o.c.StartUpload(ctx)
	return id, fromOrigin(err)
}

func (o *OriginStore) Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	n, err := o.c.AppendUpload(ctx, id, offset, r)
	return n, fromOrigin(err)
}

func (o *OriginStore) Size(ctx context.Context, id string) (int64, error) {
	n, err := o.c.UploadSize(ctx, id)
	return n, fromOrigin(err)
}

func (o *OriginStore) Commit(ctx context.Context, id string, d digest.Digest) error {
	return fromOrigin(o.c.CommitUpload(ctx, id, d))
}

func (o *OriginStore) Cancel(ctx context.Context, id string) error {
	return fromOrigin(o.c.CancelUpload(ctx, id))
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

func fromBuildIndex(err error) error {
	if errors.Is(err, buildindexclient.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
