package warmfeed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"
)

// The board's HTTP API, served by the tracker (tracker/warm.go).
const (
	PathIntents = "/warm/intents" // POST an Intent -> the Item
	PathPoll    = "/warm/poll"    // POST a PollRequest -> a Feed
	PathReports = "/warm/reports" // POST a Report; GET ?digest=<d> -> []Report
	PathAgents  = "/warm/agents"  // GET -> []AgentStatus
)

// PollRequest is the body of a poll.
type PollRequest struct {
	Agent Agent  `json:"agent"`
	Epoch string `json:"epoch"`
	After uint64 `json:"after"`
}

// maxReply bounds a board answer read by a client: a feed of MaxIntents items or the
// reports of 100,000 agents fit.
const maxReply = 32 << 20

// Client talks to one tracker's board. Safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client of the board of the tracker at base (http://host:port).
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(base, "/"), hc: hc}
}

// Addr is the tracker's base URL.
func (c *Client) Addr() string { return c.base }

// Publish posts in on the board.
func (c *Client) Publish(ctx context.Context, in Intent) (Item, error) {
	var it Item
	err := c.call(ctx, http.MethodPost, PathIntents, in, &it)
	if err != nil {
		return Item{}, fmt.Errorf("tracker %s: warm %s: %w", c.base, in.Digest, err)
	}
	return it, nil
}

// Poll reads the items after seq after of epoch, and tells the board a is live.
func (c *Client) Poll(ctx context.Context, a Agent, epoch string, after uint64) (Feed, error) {
	var f Feed
	if err := c.call(ctx, http.MethodPost, PathPoll, PollRequest{Agent: a, Epoch: epoch, After: after}, &f); err != nil {
		return Feed{}, fmt.Errorf("tracker %s: poll warm feed: %w", c.base, err)
	}
	return f, nil
}

// Report sends an agent's outcome for one blob.
func (c *Client) Report(ctx context.Context, r Report) error {
	if err := c.call(ctx, http.MethodPost, PathReports, r, nil); err != nil {
		return fmt.Errorf("tracker %s: report warm %s: %w", c.base, r.Digest, err)
	}
	return nil
}

// Reports returns the board's reports of d.
func (c *Client) Reports(ctx context.Context, d digest.Digest) ([]Report, error) {
	var rs []Report
	if err := c.call(ctx, http.MethodGet, PathReports+"?digest="+url.QueryEscape(d.String()), nil, &rs); err != nil {
		return nil, fmt.Errorf("tracker %s: warm reports of %s: %w", c.base, d, err)
	}
	return rs, nil
}

// Agents returns the agents live on the board.
func (c *Client) Agents(ctx context.Context) ([]AgentStatus, error) {
	var as []AgentStatus
	if err := c.call(ctx, http.MethodGet, PathAgents, nil, &as); err != nil {
		return nil, fmt.Errorf("tracker %s: live agents: %w", c.base, err)
	}
	return as, nil
}

// call sends in (nil: no body) as JSON and decodes the answer into out (nil: drained).
// A non-2xx answer is an error carrying the tracker's message.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	r := io.LimitReader(resp.Body, maxReply)
	if resp.StatusCode/100 != 2 {
		var eb struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(r).Decode(&eb)
		return fmt.Errorf("status %s: %s", resp.Status, eb.Message)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, r)
		return nil
	}
	if err := json.NewDecoder(r).Decode(out); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	return nil
}
