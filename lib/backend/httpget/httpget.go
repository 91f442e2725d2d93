// Package httpget is the read-only backend driver that fetches blobs by digest from a
// plain HTTP(S) server: a mirror, a CDN, or a bucket's public web endpoint. Each blob
// is one URL made from url_template:
//
//	docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data
//	    -> url_template with {digest} = sha256:<hex>, {algorithm} = sha256, {hex} = <hex>
//	       e.g. https://mirror.example.com/blobs/{digest}
//
// Stat is a HEAD, Download a GET streamed into the writer; 404 and 410 are misses.
// Tags are not served (a miss) and nothing is listed. Upload fails with
// backend.ErrReadOnly. Bytes are not verified here (the origin hashes on ingest) and
// requests are not retried: both belong to decorators.
package httpget

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
)

// DefaultTimeout bounds the wait for a response's headers when timeout is unset.
const DefaultTimeout = 30 * time.Second

// ErrReadOnly is backend.ErrReadOnly, returned (wrapped) by Upload.
var ErrReadOnly = backend.ErrReadOnly

// Config configures an HTTP backend. A binary embeds it under backend.http.
type Config struct {
	// URLTemplate is the URL of a blob, with placeholders {digest} (sha256:<hex>),
	// {algorithm} (sha256) and {hex} (<hex>), e.g.
	// https://mirror.example.com/blobs/{digest}. It must hold {digest} or {hex}.
	// Required.
	URLTemplate string `yaml:"url_template"`
	// Timeout bounds the wait for a response's headers (default 30s); bodies are
	// bounded by the caller's context only.
	Timeout time.Duration `yaml:"timeout"`
}

// Validate checks the settings; messages name the key (backend.http.…) and the fix.
func (c Config) Validate() error {
	const example = "e.g. backend.http.url_template: https://mirror.example.com/blobs/{digest}"
	switch {
	case c.URLTemplate == "":
		return fmt.Errorf("backend.http.url_template: empty (set it, %s)", example)
	case !strings.Contains(c.URLTemplate, "{digest}") && !strings.Contains(c.URLTemplate, "{hex}"):
		return fmt.Errorf("backend.http.url_template: %q holds neither {digest} nor {hex}, so every blob would be one URL (%s)", c.URLTemplate, example)
	case c.Timeout < 0:
		return fmt.Errorf("backend.http.timeout: %s is negative (set e.g. backend.http.timeout: 30s, or 0 for the default)", c.Timeout)
	}
	sample := expand(c.URLTemplate, digest.FromString(""))
	if i := strings.IndexAny(sample, "{}"); i >= 0 {
		return fmt.Errorf("backend.http.url_template: %q holds an unknown placeholder or brace (use {digest}, {algorithm} and {hex} only)", c.URLTemplate)
	}
	u, err := url.Parse(sample)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("backend.http.url_template: %q is not an http(s) URL (%s)", c.URLTemplate, example)
	}
	return nil
}

func expand(tmpl string, d digest.Digest) string {
	return strings.NewReplacer("{digest}", d.String(), "{algorithm}", string(d.Algorithm()), "{hex}", d.Encoded()).Replace(tmpl)
}

// Option adjusts a Backend.
type Option func(*Backend)

// WithTransport sets the HTTP transport (default: a clone of http.DefaultTransport
// whose response header timeout is the configured timeout).
func WithTransport(rt http.RoundTripper) Option { return func(b *Backend) { b.client.Transport = rt } }

// Backend reads blobs from an HTTP server. Safe for concurrent use.
type Backend struct {
	tmpl   string
	client *http.Client
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg and builds the backend. It sends no request.
func New(cfg Config, opts ...Option) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = cfg.Timeout
	if t.ResponseHeaderTimeout == 0 {
		t.ResponseHeaderTimeout = DefaultTimeout
	}
	b := &Backend{tmpl: cfg.URLTemplate, client: &http.Client{Transport: t}}
	for _, o := range opts {
		o(b)
	}
	return b, nil
}

// Stat implements backend.Backend with a HEAD; the size is its Content-Length.
func (b *Backend) Stat(ctx context.Context, name string) (backend.Info, error) {
	resp, err := b.do(ctx, http.MethodHead, name)
	if err != nil {
		return backend.Info{}, fmt.Errorf("http stat %s: %w", name, err)
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return backend.Info{}, fmt.Errorf("http stat %s: HEAD %s: no Content-Length", name, resp.Request.URL.Redacted())
	}
	return backend.Info{Size: resp.ContentLength}, nil
}

// Download implements backend.Backend with a GET whose body is copied into w as it
// arrives.
func (b *Backend) Download(ctx context.Context, name string, w io.Writer) error {
	resp, err := b.do(ctx, http.MethodGet, name)
	if err != nil {
		return fmt.Errorf("http download %s: %w", name, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("http download %s: GET %s: %w", name, resp.Request.URL.Redacted(), err)
	}
	return nil
}

// Upload implements backend.Backend: always ErrReadOnly.
func (b *Backend) Upload(_ context.Context, name string, _ io.Reader) error {
	return fmt.Errorf("http upload %s: %w", name, ErrReadOnly)
}

// List implements backend.Backend: an HTTP server cannot be listed, so nothing is.
func (b *Backend) List(context.Context, string) ([]string, error) { return []string{}, nil }

// do sends method for blob name and returns a 200 response; a 404 or 410 (or a name
// that is not a blob's) is backend.ErrNotFound.
func (b *Backend) do(ctx context.Context, method, name string) (*http.Response, error) {
	d, ok := backend.ParseBlobName(name)
	if !ok {
		return nil, fmt.Errorf("%w (only blobs are served)", backend.ErrNotFound)
	}
	req, err := http.NewRequestWithContext(ctx, method, expand(b.tmpl, d), nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp, nil
	case http.StatusNotFound, http.StatusGone:
		resp.Body.Close()
		return nil, fmt.Errorf("%w (%s %s: %s)", backend.ErrNotFound, method, req.URL.Redacted(), resp.Status)
	}
	resp.Body.Close()
	return nil, fmt.Errorf("%s %s: unexpected status %s", method, req.URL.Redacted(), resp.Status)
}
