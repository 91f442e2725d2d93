package trackerclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/memberset"
	"github.com/shoal-p2p/shoal/lib/p2p"
)

// Trackers is the tracker cluster as an agent uses it. Trackers keep no shared state:
// each blob's swarm lives on its owner trackers, the first Replicas trackers of the
// blob's rendezvous order over the trackers' base URLs (lib/memberset, as for origins),
// because every agent announces the blob to each of them and so each holds the whole
// swarm. A tracker that fails moves to the end of every order, so announces go to the
// next one and the swarm re-forms there within an announce interval; losing one of two
// trackers (Replicas 2) loses no swarm. Metainfo comes from the first tracker that
// answers. Safe for concurrent use; Run keeps the membership current.
type Trackers struct {
	set      *memberset.Set[*Client]
	failures tally.Counter
}

var _ p2p.PeerSource = (*Trackers)(nil)

// DefaultSetConfig is the tracker membership's defaults: two owners per swarm.
func DefaultSetConfig() memberset.Config {
	cfg := memberset.DefaultConfig()
	cfg.Replicas = 2
	return cfg
}

// NewTrackers returns the tracker cluster cfg names; its clients use hc.
func NewTrackers(cfg memberset.Config, hc *http.Client, log *zap.Logger, scope tally.Scope) (*Trackers, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	set, err := memberset.New("tracker", cfg, func(base string) *Client { return New(base, hc) }, hc, log, scope)
	if err != nil {
		return nil, err
	}
	return &Trackers{set: set, failures: scope.Counter("request_failures")}, nil
}

// Run keeps the membership and health current until ctx ends.
func (t *Trackers) Run(ctx context.Context) error { return t.set.Run(ctx) }

// Members returns every tracker.
func (t *Trackers) Members() []*Client { return t.set.Members() }

// Metainfo returns d's info dictionary from the first tracker, in d's order, that
// answers; a miss (ErrNotFound) is final, since every tracker asks the same origins.
func (t *Trackers) Metainfo(ctx context.Context, d digest.Digest) ([]byte, error) {
	var errs []error
	for _, c := range t.set.Owners(d) {
		raw, err := c.Metainfo(ctx, d)
		if err == nil || errors.Is(err, ErrNotFound) || ctx.Err() != nil {
			return raw, err
		}
		t.fail(c)
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("trackers: metainfo %s: no trackers known", d)
	}
	return nil, errors.Join(errs...)
}

// Announce announces a to each of the blob's owner trackers at once and merges their
// hand-outs. If every owner fails, the trackers after them are tried in turn; only if
// all fail is the error returned.
func (t *Trackers) Announce(ctx context.Context, a p2p.Announce) (p2p.AnnounceReply, error) {
	order := t.set.Owners(digest.Digest(a.Digest))
	if len(order) == 0 {
		return p2p.AnnounceReply{}, fmt.Errorf("trackers: announce %s: no trackers known", a.Digest)
	}
	owners := order[:min(t.set.Replicas(), len(order))]
	replies := make([]p2p.AnnounceReply, len(owners))
	errs := make([]error, len(owners))
	var wg sync.WaitGroup
	for i, c := range owners {
		wg.Go(func() { replies[i], errs[i] = c.Announce(ctx, a) })
	}
	wg.Wait()
	var ok []p2p.AnnounceReply
	for i, err := range errs {
		if err == nil {
			ok = append(ok, replies[i])
		} else if ctx.Err() == nil {
			t.fail(owners[i])
		}
	}
	for _, c := range order[len(owners):] {
		if len(ok) > 0 || ctx.Err() != nil {
			break
		}
		r, err := c.Announce(ctx, a)
		if err != nil {
			t.fail(c)
			errs = append(errs, err)
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return p2p.AnnounceReply{}, errors.Join(errs...)
	}
	return MergeReplies(ok), nil
}

func (t *Trackers) fail(c *Client) {
	t.failures.Inc(1)
	t.set.MarkFailed(c.Addr())
}

// MergeReplies is the hand-out of several trackers' replies to one announce: every
// peer once (by peer id and address, in the order first seen; a peer complete in any
// reply is complete), and the shortest interval given.
func MergeReplies(replies []p2p.AnnounceReply) p2p.AnnounceReply {
	var out p2p.AnnounceReply
	type key struct {
		id, ip string
		port   int
	}
	at := map[key]int{}
	for _, r := range replies {
		if r.IntervalSeconds > 0 && (out.IntervalSeconds == 0 || r.IntervalSeconds < out.IntervalSeconds) {
			out.IntervalSeconds = r.IntervalSeconds
		}
		for _, p := range r.Peers {
			k := key{p.PeerID, p.IP, p.Port}
			if i, seen := at[k]; seen {
				out.Peers[i].Complete = out.Peers[i].Complete || p.Complete
				out.Peers[i].Origin = out.Peers[i].Origin || p.Origin
				continue
			}
			at[k] = len(out.Peers)
			out.Peers = append(out.Peers, p)
		}
	}
	return out
}
