// Package s3 is the backend driver that keeps objects in an S3 bucket (AWS, or any
// S3-compatible server through a custom endpoint): object "a/b/c" is the key
// <prefix>a/b/c.
//
//	<bucket>/
//	  <prefix>docker/registry/v2/
//	    blobs/sha256/<first 2 hex>/<hex>/data          blob bytes
//	    repositories/<repo>/_manifests/tags/<tag>/current/link
//
// With an empty prefix the keys are exactly docker/distribution's, so a registry using
// the same bucket (and rootdirectory unset) sees the same blobs and tags.
//
// Invariants: an object appears only by a completed PutObject or
// CompleteMultipartUpload, both atomic in S3, so readers never see part of an object; a
// failed multipart upload is aborted, leaving no parts behind. Upload streams from its
// reader, holding at most (concurrency+1) parts of part_size bytes in memory. The SDK's
// own request retries stay on; retries across whole operations belong to a decorator.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/shoal-p2p/shoal/lib/backend"
)

const (
	// DefaultPartSize is the multipart part size when part_size is unset.
	DefaultPartSize = 64 << 20
	// MinPartSize is S3's smallest part (every part but the last).
	MinPartSize = manager.MinUploadPartSize
	// DefaultConcurrency is the number of parts uploaded at once when concurrency is unset.
	DefaultConcurrency = 4
)

// Config configures an S3 backend. A binary embeds it under backend.s3.
type Config struct {
	// Region is the bucket's region, e.g. us-east-1. Empty takes it from the SDK's
	// default chain (AWS_REGION, the shared config profile).
	Region string `yaml:"region"`
	// Bucket holds the objects; it must exist. Required.
	Bucket string `yaml:"bucket"`
	// Prefix is prepended to every object name to form its key, e.g. "" (share the
	// bucket with a docker/distribution registry) or "shoal/". Must not start with "/".
	Prefix string `yaml:"prefix"`
	// Endpoint is the base URL of an S3-compatible server, e.g. http://127.0.0.1:7070.
	// Empty uses AWS's endpoint for Region.
	Endpoint string `yaml:"endpoint"`
	// PathStyle addresses the bucket as <endpoint>/<bucket>/<key> instead of
	// <bucket>.<endpoint>/<key>; most S3-compatible servers need it.
	PathStyle bool `yaml:"path_style"`
	// AccessKeyID is a static access key; set with SecretAccessKey, or leave both empty
	// to use the SDK's default credential chain (env, shared files, IAM role, ...).
	AccessKeyID string `yaml:"access_key_id"`
	// SecretAccessKey is the secret of AccessKeyID.
	SecretAccessKey string `yaml:"secret_access_key"`
	// PartSize is the multipart part size in bytes (default 64 MiB, at least 5 MiB).
	// Objects smaller than it go up in one PutObject.
	PartSize int64 `yaml:"part_size"`
	// Concurrency is the number of parts of one object uploaded at once (default 4).
	Concurrency int `yaml:"concurrency"`
}

// Validate checks the settings; messages name the key (backend.s3.…) and the fix.
func (c Config) Validate() error {
	switch {
	case c.Bucket == "":
		return errors.New("backend.s3.bucket: empty (set backend.s3.bucket: my-bucket)")
	case strings.Contains(c.Bucket, "/"):
		return fmt.Errorf("backend.s3.bucket: %q holds a slash (set the bucket name alone; put a key prefix in backend.s3.prefix)", c.Bucket)
	case strings.HasPrefix(c.Prefix, "/"):
		return fmt.Errorf("backend.s3.prefix: %q starts with a slash (drop it, e.g. backend.s3.prefix: %s)", c.Prefix, strings.TrimLeft(c.Prefix, "/"))
	case (c.AccessKeyID == "") != (c.SecretAccessKey == ""):
		return errors.New("backend.s3.access_key_id, backend.s3.secret_access_key: only one is set (set both, or neither to use the default credential chain)")
	case c.PartSize != 0 && c.PartSize < MinPartSize:
		return fmt.Errorf("backend.s3.part_size: %d is below S3's minimum part (set backend.s3.part_size: %d or more, or 0 for %d)", c.PartSize, MinPartSize, DefaultPartSize)
	case c.Concurrency < 0:
		return fmt.Errorf("backend.s3.concurrency: %d is negative (set backend.s3.concurrency: 4, or 0 for the default)", c.Concurrency)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("backend.s3.endpoint: %q is not an http(s) URL (set e.g. backend.s3.endpoint: https://s3.example.com, or leave it empty for AWS)", c.Endpoint)
		}
	}
	return nil
}

// Backend stores objects in an S3 bucket. Safe for concurrent use.
type Backend struct {
	client   *awss3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg and builds a client. It sends no request: a wrong bucket or
// credentials surface on the first operation.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 backend: load aws config: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("backend.s3.region: empty and none in the environment (set backend.s3.region: us-east-1, or AWS_REGION)")
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Multipart objects carry composite checksums the SDK cannot check on GET; that
		// is expected, not worth a warning per download.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	uploader := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.Concurrency
		u.LeavePartsOnError = false
	})
	return &Backend{client: client, uploader: uploader, bucket: cfg.Bucket, prefix: cfg.Prefix}, nil
}

// Stat implements backend.Backend with HeadObject.
func (b *Backend) Stat(ctx context.Context, name string) (backend.Info, error) {
	if err := checkName(name); err != nil {
		return backend.Info{}, fmt.Errorf("s3 stat %s: %w", name, err)
	}
	out, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &b.bucket, Key: b.key(name)})
	if err != nil {
		return backend.Info{}, fmt.Errorf("s3 stat %s: %w", name, mapErr(err))
	}
	return backend.Info{Size: aws.ToInt64(out.ContentLength)}, nil
}

// Download implements backend.Backend: GetObject's body is copied into w as it arrives.
func (b *Backend) Download(ctx context.Context, name string, w io.Writer) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("s3 download %s: %w", name, err)
	}
	if err := b.get(ctx, name, nil, w); err != nil {
		return fmt.Errorf("s3 download %s: %w", name, err)
	}
	return nil
}

// DownloadRange writes length bytes of the object name starting at offset to w, with
// one ranged GetObject. It is not part of backend.Backend: it serves lazy fetch, which
// reads pieces of a blob on demand. A miss returns backend.ErrNotFound and a range
// reaching past the object's end an error, both before anything is written.
func (b *Backend) DownloadRange(ctx context.Context, name string, offset, length int64, w io.Writer) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("s3 download %s range %d+%d: %w", name, offset, length, err)
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("s3 download %s range %d+%d: negative offset or length", name, offset, length)
	}
	if length == 0 {
		// HTTP cannot express an empty range; still report a miss.
		if _, err := b.Stat(ctx, name); err != nil {
			return err
		}
		return nil
	}
	r := &byteRange{offset: offset, length: length}
	if err := b.get(ctx, name, r, w); err != nil {
		return fmt.Errorf("s3 download %s range %d+%d: %w", name, offset, length, err)
	}
	return nil
}

type byteRange struct{ offset, length int64 }

// get streams the object, or the range r of it, into w.
func (b *Backend) get(ctx context.Context, name string, r *byteRange, w io.Writer) error {
	in := &awss3.GetObjectInput{Bucket: &b.bucket, Key: b.key(name)}
	if r != nil {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", r.offset, r.offset+r.length-1))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		return mapErr(err)
	}
	defer out.Body.Close()
	if r != nil && aws.ToInt64(out.ContentLength) != r.length {
		return fmt.Errorf("range past the end: server returned %d bytes (%s)", aws.ToInt64(out.ContentLength), aws.ToString(out.ContentRange))
	}
	if _, err := io.Copy(w, out.Body); err != nil {
		return err
	}
	return nil
}

// Upload implements backend.Backend through the SDK's upload manager: one PutObject when
// r ends within the first part, otherwise a multipart upload of part_size parts,
// aborted if r or a part fails.
func (b *Backend) Upload(ctx context.Context, name string, r io.Reader) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("s3 upload %s: %w", name, err)
	}
	// Hide any Seek so the manager streams parts instead of reading r to learn its size.
	_, err := b.uploader.Upload(ctx, &awss3.PutObjectInput{
		Bucket: &b.bucket,
		Key:    b.key(name),
		Body:   struct{ io.Reader }{r},
	})
	if err != nil {
		return fmt.Errorf("s3 upload %s: %w", name, err)
	}
	return nil
}

// List implements backend.Backend with ListObjectsV2 (no delimiter, so every key under
// the prefix, however deep); names come back without the configured prefix.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	names := []string{}
	p := awss3.NewListObjectsV2Paginator(b.client, &awss3.ListObjectsV2Input{
		Bucket: &b.bucket,
		Prefix: aws.String(b.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3 list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			name, ok := strings.CutPrefix(aws.ToString(o.Key), b.prefix)
			if !ok || name == "" || strings.HasSuffix(name, "/") {
				continue // a directory marker some tools create, not an object
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (b *Backend) key(name string) *string { return aws.String(b.prefix + name) }

var errBadName = errors.New("invalid object name")

// checkName refuses names that are not object names: empty, or a directory marker.
func checkName(name string) error {
	if name == "" || strings.HasSuffix(name, "/") {
		return fmt.Errorf("%w %q", errBadName, name)
	}
	return nil
}

// mapErr turns a missing object into backend.ErrNotFound, keeping the cause. A missing
// bucket is a misconfiguration, not a miss, and stays as it is.
func mapErr(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket" {
		return err
	}
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &nf) || errors.As(err, &nsk) ||
		(errors.As(err, &status) && status.HTTPStatusCode() == http.StatusNotFound) {
		return fmt.Errorf("%w (%w)", backend.ErrNotFound, err)
	}
	return err
}
