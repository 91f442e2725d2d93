// Package trackerclient is the HTTP client of the tracker's API (see
// docs/ARCHITECTURE.md): blob metainfo, and announces that return a swarm's peers.
package trackerclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/p2p"
)

// Error codes the tracker puts in {"error": code} bodies.
const (
	CodeNotFound   = "not_found"
	CodeBadRequest = "bad_request"
	CodeUpstream   = "upstream"
	CodeInternal   = "internal"
)

// ErrNotFound is returned (wrapped) by Metainfo when no origin holds the blob.
var ErrNotFound = errors.New("tracker: blob not found")

// ErrorBody is the JSON body of a tracker error response.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
}

// Size limits of the tracker's answers.
const (
	maxMetainfo = 16 << 20
	maxReply    = 1 << 20
)

// Client talks to one tracker. Safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

var _ p2p.PeerSource = (*Client)(nil)

// New returns a client for the tracker at baseURL (e.g. http://127.0.0.1:15300).
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Addr is the tracker's base URL.
func (c *Client) Addr() string { return c.base }

// Metainfo returns the bencoded torrent info dictionary of blob d. A blob no origin
// holds returns ErrNotFound.
func (c *Client) Metainfo(ctx context.Context, d digest.Digest) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/metainfo/"+d.String()+backend.NamespaceQuery(ctx, "?"), nil)
	if err != nil {
		return nil, fmt.Errorf("tracker %s: metainfo %s: %w", c.base, d, err)
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("tracker %s: metainfo %s: %w", c.base, d, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetainfo))
	if err != nil {
		return nil, fmt.Errorf("tracker %s: metainfo %s: %w", c.base, d, err)
	}
	return b, nil
}

// Announce reports a to the tracker and returns peers of the swarm (never the caller)
// and when to announce again.
func (c *Client) Announce(ctx context.Context, a p2p.Announce) (p2p.AnnounceReply, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return p2p.AnnounceReply{}, fmt.Errorf("tracker %s: announce %s: %w", c.base, a.InfoHash, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/announce?compact=1", bytes.NewReader(body))
	if err != nil {
		return p2p.AnnounceReply{}, fmt.Errorf("tracker %s: announce %s: %w", c.base, a.InfoHash, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return p2p.AnnounceReply{}, fmt.Errorf("tracker %s: announce %s: %w", c.base, a.InfoHash, err)
	}
	defer resp.Body.Close()
	reply, err := DecodeAnnounceReply(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return p2p.AnnounceReply{}, fmt.Errorf("tracker %s: announce %s: bad reply: %w", c.base, a.InfoHash, err)
	}
	return reply, nil
}

// DecodeAnnounceReply reads a tracker's announce reply in either form: peers as
// objects ("peers"), or compact ("compact_peers", see p2p.CompactOrigin), which
// Announce asks for and a tracker older than the compact form ignores.
func DecodeAnnounceReply(r io.Reader) (p2p.AnnounceReply, error) {
	var wire struct {
		p2p.AnnounceReply
		CompactPeers []compactPeer `json:"compact_peers"`
	}
	if err := json.NewDecoder(r).Decode(&wire); err != nil {
		return p2p.AnnounceReply{}, err
	}
	reply := wire.AnnounceReply
	for _, p := range wire.CompactPeers {
		reply.Peers = append(reply.Peers, p2p.Peer(p))
	}
	return reply, nil
}

// compactPeer decodes one [peer_id, ip, port, flags] entry of a compact reply.
type compactPeer p2p.Peer

func (p *compactPeer) UnmarshalJSON(b []byte) error {
	var fields []json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return fmt.Errorf("compact peer: %w", err)
	}
	if len(fields) != 4 {
		return fmt.Errorf("compact peer: %d fields, want [peer_id, ip, port, flags]", len(fields))
	}
	var flags int
	for i, dst := range []any{&p.PeerID, &p.IP, &p.Port, &flags} {
		if err := json.Unmarshal(fields[i], dst); err != nil {
			return fmt.Errorf("compact peer field %d: %w", i, err)
		}
	}
	p.Origin = flags&p2p.CompactOrigin != 0
	p.Complete = flags&p2p.CompactComplete != 0
	return nil
}

// do sends req and turns non-2xx answers into errors (404 into ErrNotFound). On
// success the caller closes the body.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb ErrorBody
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb)
	if resp.StatusCode == http.StatusNotFound || eb.Error == CodeNotFound {
		if eb.Message == "" {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("%w: %s", ErrNotFound, eb.Message)
	}
	return nil, fmt.Errorf("status %s: %s", resp.Status, eb.Message)
}
