// Package buildindexclient is the HTTP client of the build-index's API (see
// docs/ARCHITECTURE.md): tags of repositories, each pointing at a manifest digest.
package buildindexclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Error codes the build-index puts in {"error": code} bodies.
const (
	CodeNotFound   = "not_found"
	CodeBadRequest = "bad_request"
	CodeInternal   = "internal"
)

// ErrNotFound is returned (wrapped) when the tag, or every tag of the repository, is
// unknown.
var ErrNotFound = errors.New("build-index: not found")

// ErrorBody is the JSON body of a build-index error response.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
}

// TagList is the body of GET /tags/{repo}/_list.
type TagList struct {
	Tags []string `json:"tags"`
}

// RepositoryList is the body of GET /repositories.
type RepositoryList struct {
	Repositories []string `json:"repositories"`
}

// Client talks to one build-index. Safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client for the build-index at baseURL (e.g. http://127.0.0.1:15100).
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Addr is the build-index's base URL.
func (c *Client) Addr() string { return c.base }

// PutTag points tag of repo at d. When it returns nil the tag is in the backend.
func (c *Client) PutTag(ctx context.Context, repo, tag string, d digest.Digest) error {
	resp, err := c.do(ctx, http.MethodPut, tagPath(repo, tag), strings.NewReader(d.String()))
	if err != nil {
		return fmt.Errorf("build-index %s: put tag %s:%s -> %s: %w", c.base, repo, tag, d, err)
	}
	resp.Body.Close()
	return nil
}

// GetTag returns the digest tag of repo points at; ErrNotFound if there is no such tag.
func (c *Client) GetTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	resp, err := c.do(ctx, http.MethodGet, tagPath(repo, tag), nil)
	if err != nil {
		return "", fmt.Errorf("build-index %s: get tag %s:%s: %w", c.base, repo, tag, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return "", fmt.Errorf("build-index %s: get tag %s:%s: %w", c.base, repo, tag, err)
	}
	d, err := digest.Parse(string(bytes.TrimSpace(b)))
	if err != nil {
		return "", fmt.Errorf("build-index %s: get tag %s:%s: bad reply %.80q: %w", c.base, repo, tag, b, err)
	}
	return d, nil
}

// ListTags returns the tags of repo, sorted; ErrNotFound if it has none.
func (c *Client) ListTags(ctx context.Context, repo string) ([]string, error) {
	var l TagList
	if err := c.getJSON(ctx, "/tags/"+escapeRepo(repo)+"/_list", &l); err != nil {
		return nil, fmt.Errorf("build-index %s: list tags of %s: %w", c.base, repo, err)
	}
	return l.Tags, nil
}

// ListRepositories returns every repository with at least one tag, sorted.
func (c *Client) ListRepositories(ctx context.Context) ([]string, error) {
	var l RepositoryList
	if err := c.getJSON(ctx, "/repositories", &l); err != nil {
		return nil, fmt.Errorf("build-index %s: list repositories: %w", c.base, err)
	}
	return l.Repositories, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("bad reply: %w", err)
	}
	return nil
}

// do sends a request and turns non-2xx answers into errors carrying the status and the
// build-index's message; 404 wraps ErrNotFound. On success the caller closes the body.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
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
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb ErrorBody
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &eb) == nil && (eb.Message != "" || eb.Error != "") {
		msg = eb.Message
		if msg == "" {
			msg = eb.Error
		}
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: status %s: %s", ErrNotFound, resp.Status, msg)
	}
	return fmt.Errorf("status %s: %s", resp.Status, msg)
}

func tagPath(repo, tag string) string {
	return "/tags/" + escapeRepo(repo) + "/_tag/" + url.PathEscape(tag)
}

// escapeRepo escapes each component of repo, keeping its slashes: a valid name needs
// no escaping, and an invalid one reaches the build-index intact to be refused there.
func escapeRepo(repo string) string {
	parts := strings.Split(repo, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
