// Package originclient is the HTTP client of an origin's API (see docs/ARCHITECTURE.md):
// upload sessions, blob stat and ranged reads, torrent metainfo and the origin's P2P address.
package originclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/seekpos"
)

// Headers of the upload protocol.
const (
	HeaderUploadOffset = "Shoal-Upload-Offset"
	HeaderUploadSize   = "Shoal-Upload-Size"
)

// Error codes the origin puts in {"error": code} bodies, mapped to the sentinels below.
const (
	CodeNotFound       = "not_found"
	CodeDigestMismatch = "digest_mismatch"
	CodeUploadUnknown  = "upload_unknown"
	CodeOffsetMismatch = "offset_mismatch"
)

// Sentinels returned (wrapped) by Client methods.
var (
	ErrNotFound       = errors.New("origin: blob not found")
	ErrDigestMismatch = errors.New("origin: digest mismatch")
	ErrUploadUnknown  = errors.New("origin: upload unknown")
	ErrOffsetMismatch = errors.New("origin: upload offset mismatch")
)

// ErrorBody is the JSON body of an origin error response.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
}

// PeerAddr is the origin's P2P listen address, served at GET /peer.
type PeerAddr struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

// Client talks to one origin. Safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client for the origin at baseURL (e.g. http://127.0.0.1:15200).
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Addr is the origin's base URL.
func (c *Client) Addr() string { return c.base }

// StartUpload opens an upload session and returns its id.
func (c *Client) StartUpload(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodPost, "/uploads", nil, nil)
	if err != nil {
		return "", fmt.Errorf("origin %s: start upload: %w", c.base, err)
	}
	defer resp.Body.Close()
	var body struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.ID == "" {
		return "", fmt.Errorf("origin %s: start upload: bad reply: %v", c.base, err)
	}
	return body.ID, nil
}

// AppendUpload appends r at offset, which must equal the upload's current size,
// and returns the new size.
func (c *Client) AppendUpload(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	h := http.Header{HeaderUploadOffset: {strconv.FormatInt(offset, 10)}}
	resp, err := c.do(ctx, http.MethodPatch, "/uploads/"+id, r, h)
	if err != nil {
		return 0, fmt.Errorf("origin %s: append upload %s at %d: %w", c.base, id, offset, err)
	}
	resp.Body.Close()
	return sizeHeader(resp)
}

// UploadSize returns how many bytes the upload holds.
func (c *Client) UploadSize(ctx context.Context, id string) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/uploads/"+id, nil, nil)
	if err != nil {
		return 0, fmt.Errorf("origin %s: upload status %s: %w", c.base, id, err)
	}
	resp.Body.Close()
	return sizeHeader(resp)
}

// CommitUpload verifies the upload against d and stores it. On ErrDigestMismatch the
// upload is discarded and nothing is stored.
func (c *Client) CommitUpload(ctx context.Context, id string, d digest.Digest) error {
	resp, err := c.do(ctx, http.MethodPut, "/uploads/"+id+"?digest="+d.String(), nil, nil)
	if err != nil {
		return fmt.Errorf("origin %s: commit upload %s as %s: %w", c.base, id, d, err)
	}
	resp.Body.Close()
	return nil
}

// CancelUpload drops an upload session.
func (c *Client) CancelUpload(ctx context.Context, id string) error {
	resp, err := c.do(ctx, http.MethodDelete, "/uploads/"+id, nil, nil)
	if err != nil {
		return fmt.Errorf("origin %s: cancel upload %s: %w", c.base, id, err)
	}
	resp.Body.Close()
	return nil
}

// Stat returns the size of blob d.
func (c *Client) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	resp, err := c.do(ctx, http.MethodHead, "/blobs/"+d.String(), nil, nil)
	if err != nil {
		return 0, fmt.Errorf("origin %s: stat %s: %w", c.base, d, err)
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("origin %s: stat %s: no Content-Length", c.base, d)
	}
	return resp.ContentLength, nil
}

// Open returns a seekable reader over blob d and its size. Reads are ranged GETs issued
// lazily, so Seek is free and http.ServeContent can serve Range requests from it.
func (c *Client) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	size, err := c.Stat(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	return &blobReader{ctx: ctx, c: c, d: d, size: size}, size, nil
}

// Download writes the whole of blob d to w.
func (c *Client) Download(ctx context.Context, d digest.Digest, w io.Writer) error {
	resp, err := c.do(ctx, http.MethodGet, "/blobs/"+d.String(), nil, nil)
	if err != nil {
		return fmt.Errorf("origin %s: download %s: %w", c.base, d, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("origin %s: download %s: %w", c.base, d, err)
	}
	return nil
}

// ReadRange returns the n bytes of blob d from offset off, as one ranged GET. The
// caller closes the body; a body shorter than n reads io.ErrUnexpectedEOF at its end.
func (c *Client) ReadRange(ctx context.Context, d digest.Digest, off, n int64) (io.ReadCloser, error) {
	h := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", off, off+n-1)}}
	resp, err := c.do(ctx, http.MethodGet, "/blobs/"+d.String(), nil, h)
	if err != nil {
		return nil, fmt.Errorf("origin %s: read %s [%d, %d): %w", c.base, d, off, off+n, err)
	}
	if resp.StatusCode != http.StatusPartialContent && off > 0 {
		resp.Body.Close()
		return nil, fmt.Errorf("origin %s: read %s at %d: range ignored (%s)", c.base, d, off, resp.Status)
	}
	return &exactBody{r: io.LimitReader(resp.Body, n), c: resp.Body, left: n}, nil
}

// exactBody turns a body that ends early into io.ErrUnexpectedEOF.
type exactBody struct {
	r    io.Reader
	c    io.Closer
	left int64
}

func (b *exactBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if errors.Is(err, io.EOF) && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *exactBody) Close() error { return b.c.Close() }

// Metainfo returns the bencoded torrent info dictionary of blob d; the origin starts
// seeding d as a side effect.
func (c *Client) Metainfo(ctx context.Context, d digest.Digest) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/blobs/"+d.String()+"/metainfo", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("origin %s: metainfo %s: %w", c.base, d, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("origin %s: metainfo %s: %w", c.base, d, err)
	}
	return b, nil
}

// Peer returns the origin's P2P address.
func (c *Client) Peer(ctx context.Context) (PeerAddr, error) {
	resp, err := c.do(ctx, http.MethodGet, "/peer", nil, nil)
	if err != nil {
		return PeerAddr{}, fmt.Errorf("origin %s: peer address: %w", c.base, err)
	}
	defer resp.Body.Close()
	var p PeerAddr
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return PeerAddr{}, fmt.Errorf("origin %s: peer address: %w", c.base, err)
	}
	return p, nil
}

// do sends a request and turns non-2xx answers into errors, mapping the origin's
// error codes to the package sentinels. On success the caller closes the body.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, h http.Header) (*http.Response, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path+backend.NamespaceQuery(ctx, sep), body)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, statusError(resp)
}

func statusError(resp *http.Response) error {
	var eb ErrorBody
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb)
	switch eb.Error {
	case CodeDigestMismatch:
		return ErrDigestMismatch
	case CodeUploadUnknown:
		return ErrUploadUnknown
	case CodeOffsetMismatch:
		return ErrOffsetMismatch
	case CodeNotFound:
		return ErrNotFound
	}
	if resp.StatusCode == http.StatusNotFound {
		return ErrNotFound
	}
	return fmt.Errorf("status %s: %s", resp.Status, eb.Message)
}

func sizeHeader(resp *http.Response) (int64, error) {
	n, err := strconv.ParseInt(resp.Header.Get(HeaderUploadSize), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("origin: bad %s header %q", HeaderUploadSize, resp.Header.Get(HeaderUploadSize))
	}
	return n, nil
}

// blobReader reads a blob through ranged GETs; one open response is kept while
// reads are sequential and reopened after a Seek.
type blobReader struct {
	ctx  context.Context
	c    *Client
	d    digest.Digest
	size int64
	off  int64
	body io.ReadCloser
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.body == nil {
		body, err := r.c.ReadRange(r.ctx, r.d, r.off, r.size-r.off)
		if err != nil {
			return 0, err
		}
		r.body = body
	}
	n, err := r.body.Read(p)
	r.off += int64(n)
	return n, err
}

func (r *blobReader) Seek(offset int64, whence int) (int64, error) {
	abs, err := seekpos.Resolve(r.off, r.size, offset, whence)
	if err != nil {
		return 0, fmt.Errorf("origin blob reader: %w", err)
	}
	if abs != r.off && r.body != nil {
		r.body.Close()
		r.body = nil
	}
	r.off = abs
	return abs, nil
}

func (r *blobReader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}
