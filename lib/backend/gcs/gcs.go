// Package gcs is the backend driver that keeps objects in a Google Cloud Storage bucket
// (or an emulator such as fake-gcs-server through a custom endpoint): object "a/b/c" is
// the GCS object <prefix>a/b/c.
//
//	<bucket>/
//	  <prefix>docker/registry/v2/
//	    blobs/sha256/<first 2 hex>/<hex>/data          blob bytes
//	    repositories/<repo>/_manifests/tags/<tag>/current/link
//
// With an empty prefix the names are exactly docker/distribution's, so a registry using
// the same bucket (and rootdirectory unset) sees the same blobs and tags.
//
// Invariants: an object appears only when its upload is finalized (one request, or the
// last chunk of a resumable upload), which GCS makes atomic, so readers never see part of
// an object. A failed Upload cancels the upload's context before closing the writer, so
// the upload is never finalized. Upload streams from its reader, holding one chunk_size
// buffer in memory. The client library's own request retries stay on; retries across
// whole operations belong to a decorator.
package gcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/shoal-p2p/shoal/lib/backend"
)

const (
	// DefaultChunkSize is the resumable upload chunk size when chunk_size is unset.
	DefaultChunkSize = 16 << 20
	// ChunkGranularity is the unit GCS requires of every chunk but the last.
	ChunkGranularity = 256 << 10
)

// Config configures a GCS backend. A binary embeds it under backend.gcs.
type Config struct {
	// Bucket holds the objects; it must exist. Required.
	Bucket string `yaml:"bucket"`
	// Prefix is prepended to every object name to form the GCS object name, e.g. ""
	// (share the bucket with a docker/distribution registry) or "shoal/". Must not start
	// with "/".
	Prefix string `yaml:"prefix"`
	// Endpoint is the base URL of a GCS-compatible server, e.g. http://127.0.0.1:4443 for
	// fake-gcs-server; a URL without a path gets the JSON API's /storage/v1/. Empty uses
	// Google's endpoint. With an endpoint and no CredentialsFile, requests are sent
	// unauthenticated, as emulators expect.
	Endpoint string `yaml:"endpoint"`
	// CredentialsFile is a JSON credentials file (service account key, authorized user,
	// impersonated service account or workload identity federation config). Empty uses
	// Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's
	// credentials, or the metadata server on GCE/GKE.
	CredentialsFile string `yaml:"credentials_file"`
	// ChunkSize is the resumable upload chunk size in bytes (default 16 MiB), a multiple
	// of 256 KiB. Objects up to it go up in one request; each upload buffers one chunk.
	ChunkSize int `yaml:"chunk_size"`
}

// Validate checks the settings; messages name the key (backend.gcs.…) and the fix.
func (c Config) Validate() error {
	switch {
	case c.Bucket == "":
		return errors.New("backend.gcs.bucket: empty (set backend.gcs.bucket: my-bucket)")
	case strings.Contains(c.Bucket, "/"):
		return fmt.Errorf("backend.gcs.bucket: %q holds a slash (set the bucket name alone; put an object prefix in backend.gcs.prefix)", c.Bucket)
	case strings.HasPrefix(c.Bucket, "gs:"):
		return fmt.Errorf("backend.gcs.bucket: %q is a URL (set the bucket name alone, e.g. backend.gcs.bucket: %s)", c.Bucket, strings.Trim(strings.TrimPrefix(c.Bucket, "gs:"), "/"))
	case strings.HasPrefix(c.Prefix, "/"):
		return fmt.Errorf("backend.gcs.prefix: %q starts with a slash (drop it, e.g. backend.gcs.prefix: %s)", c.Prefix, strings.TrimLeft(c.Prefix, "/"))
	case c.ChunkSize < 0 || c.ChunkSize%ChunkGranularity != 0:
		return fmt.Errorf("backend.gcs.chunk_size: %d is not a positive multiple of 256 KiB (set backend.gcs.chunk_size: %d, or 0 for the default)", c.ChunkSize, DefaultChunkSize)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("backend.gcs.endpoint: %q is not an http(s) URL (set e.g. backend.gcs.endpoint: http://127.0.0.1:4443, or leave it empty for Google)", c.Endpoint)
		}
	}
	return nil
}

// Backend stores objects in a GCS bucket. Safe for concurrent use.
type Backend struct {
	client    *storage.Client
	bucket    *storage.BucketHandle
	prefix    string
	chunkSize int
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg and builds a client. It sends no request: a wrong bucket or
// credentials surface on the first operation (a missing or unreadable credentials_file
// fails here).
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(apiEndpoint(cfg.Endpoint)))
		if cfg.CredentialsFile == "" {
			opts = append(opts, option.WithoutAuthentication())
		}
	}
	if cfg.CredentialsFile != "" {
		credType, err := credentialsType(cfg.CredentialsFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithAuthCredentialsFile(credType, cfg.CredentialsFile))
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs backend: new client: %w", err)
	}
	return &Backend{client: client, bucket: client.Bucket(cfg.Bucket), prefix: cfg.Prefix, chunkSize: cfg.ChunkSize}, nil
}

// apiEndpoint turns a server's base URL into its JSON API endpoint; the client derives
// the upload and XML read URLs from it.
func apiEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err == nil && (u.Path == "" || u.Path == "/") {
		u.Path = "/storage/v1/"
		return u.String()
	}
	return endpoint
}

// credTypes are the credentials file types the client accepts, by their "type" field.
var credTypes = map[string]option.CredentialsType{
	string(option.ServiceAccount):             option.ServiceAccount,
	string(option.AuthorizedUser):             option.AuthorizedUser,
	string(option.ImpersonatedServiceAccount): option.ImpersonatedServiceAccount,
	string(option.ExternalAccount):            option.ExternalAccount,
}

// credentialsType reads the "type" field of a JSON credentials file: the client wants it
// named rather than trusting whatever the file says.
func credentialsType(path string) (option.CredentialsType, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("backend.gcs.credentials_file: %w (set it to a readable JSON key file, or leave it empty for Application Default Credentials)", err)
	}
	var f struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return "", fmt.Errorf("backend.gcs.credentials_file: %s is not JSON: %w (set it to a credentials JSON file from the Google Cloud console or gcloud)", path, err)
	}
	t, ok := credTypes[f.Type]
	if !ok {
		names := make([]string, 0, len(credTypes))
		for k := range credTypes {
			names = append(names, k)
		}
		slices.Sort(names)
		return "", fmt.Errorf("backend.gcs.credentials_file: %s has type %q (use a file whose type is one of %s)", path, f.Type, strings.Join(names, ", "))
	}
	return t, nil
}

// Close releases the client's connections.
func (b *Backend) Close() error { return b.client.Close() }

// Stat implements backend.Backend with the object's attributes.
func (b *Backend) Stat(ctx context.Context, name string) (backend.Info, error) {
	if err := checkName(name); err != nil {
		return backend.Info{}, fmt.Errorf("gcs stat %s: %w", name, err)
	}
	attrs, err := b.object(name).Attrs(ctx)
	if err != nil {
		return backend.Info{}, fmt.Errorf("gcs stat %s: %w", name, mapErr(err))
	}
	return backend.Info{Size: attrs.Size}, nil
}

// Download implements backend.Backend: the object's body is copied into w as it arrives.
func (b *Backend) Download(ctx context.Context, name string, w io.Writer) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("gcs download %s: %w", name, err)
	}
	if err := b.get(ctx, name, 0, -1, w); err != nil {
		return fmt.Errorf("gcs download %s: %w", name, err)
	}
	return nil
}

// DownloadRange writes length bytes of the object name starting at offset to w, with
// one ranged read. It is not part of backend.Backend: it serves lazy fetch, which reads
// pieces of a blob on demand. A miss returns backend.ErrNotFound and a range reaching
// past the object's end an error, both before anything is written.
func (b *Backend) DownloadRange(ctx context.Context, name string, offset, length int64, w io.Writer) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("gcs download %s range %d+%d: %w", name, offset, length, err)
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("gcs download %s range %d+%d: negative offset or length", name, offset, length)
	}
	if length == 0 {
		// Nothing to read; still report a miss.
		if _, err := b.Stat(ctx, name); err != nil {
			return err
		}
		return nil
	}
	if err := b.get(ctx, name, offset, length, w); err != nil {
		return fmt.Errorf("gcs download %s range %d+%d: %w", name, offset, length, err)
	}
	return nil
}

// get streams length bytes from offset (all of the rest for -1) of the object into w.
func (b *Backend) get(ctx context.Context, name string, offset, length int64, w io.Writer) error {
	// ReadCompressed: the stored bytes, even of an object some other writer uploaded with
	// Content-Encoding: gzip (GCS would otherwise decompress it on the way out).
	r, err := b.object(name).ReadCompressed(true).NewRangeReader(ctx, offset, length)
	if err != nil {
		return mapErr(err)
	}
	defer r.Close()
	if length >= 0 && r.Remain() != length {
		return fmt.Errorf("range past the end: the object holds %d bytes", r.Attrs.Size)
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return nil
}

// Upload implements backend.Backend with one storage.Writer: objects up to chunk_size go
// up in one request, larger ones as a resumable upload of chunk_size chunks. If r fails,
// the upload's context is cancelled before Close, so GCS never finalizes the object.
func (b *Backend) Upload(ctx context.Context, name string, r io.Reader) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("gcs upload %s: %w", name, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := b.object(name).NewWriter(wctx)
	w.ChunkSize = b.chunkSize
	w.ContentType = "application/octet-stream" // as a registry writes blobs; skips sniffing
	if _, err := io.Copy(w, r); err != nil {
		cancel()
		_ = w.Close() // reports the cancellation; err is the cause
		return fmt.Errorf("gcs upload %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("gcs upload %s: %w", name, err)
	}
	return nil
}

// List implements backend.Backend with an object listing (no delimiter, so every object
// under the prefix, however deep); names come back without the configured prefix.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	q := &storage.Query{Prefix: b.prefix + prefix}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, fmt.Errorf("gcs list %s: %w", prefix, err)
	}
	names := []string{}
	it := b.bucket.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("gcs list %s: %w", prefix, err)
		}
		name, ok := strings.CutPrefix(attrs.Name, b.prefix)
		if !ok || name == "" || strings.HasSuffix(name, "/") {
			continue // a folder placeholder some tools create, not an object
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

func (b *Backend) object(name string) *storage.ObjectHandle {
	return b.bucket.Object(b.prefix + name)
}

var errBadName = errors.New("invalid object name")

// checkName refuses names that are not object names: empty, or a folder placeholder.
func checkName(name string) error {
	if name == "" || strings.HasSuffix(name, "/") {
		return fmt.Errorf("%w %q", errBadName, name)
	}
	return nil
}

// mapErr turns a missing object into backend.ErrNotFound, keeping the cause. GCS answers
// reads of objects in a missing bucket with the same 404, so those read as misses too;
// List reports a missing bucket as an error.
func mapErr(err error) error {
	if errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("%w (%w)", backend.ErrNotFound, err)
	}
	return err
}
