package warmfeed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
)

// FollowerConfig is the agent's warm block.
type FollowerConfig struct {
	// PollInterval is how often the agent reads its tracker's warm feed (and so how
	// soon after a preheat of scope all_peers it starts fetching); it also keeps the
	// agent listed as live for such preheats. 0 turns the feed off: the agent is then
	// never warmed, and all_peers preheats do not wait for it. Default 5s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxBlobs is how many blobs the agent warms at once; default 2.
	MaxBlobs int `yaml:"max_blobs"`
}

// Follower defaults.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultMaxBlobs     = 2
	minPollInterval     = 100 * time.Millisecond
	// callTimeout bounds one poll or report.
	callTimeout = 10 * time.Second
)

// DefaultFollowerConfig holds the values used for keys the file leaves out.
func DefaultFollowerConfig() FollowerConfig {
	return FollowerConfig{PollInterval: DefaultPollInterval, MaxBlobs: DefaultMaxBlobs}
}

// Validate checks c; messages name the key under warm and the fix.
func (c FollowerConfig) Validate() error {
	var errs []error
	if c.PollInterval != 0 && c.PollInterval < minPollInterval {
		errs = append(errs, fmt.Errorf("warm.poll_interval: %s is below %s (use e.g. 5s, or 0 to turn the warm feed off)", c.PollInterval, minPollInterval))
	}
	if c.MaxBlobs < 1 {
		errs = append(errs, fmt.Errorf("warm.max_blobs: %d is not positive (use e.g. %d)", c.MaxBlobs, DefaultMaxBlobs))
	}
	return errors.Join(errs...)
}

// WarmFunc makes the agent hold d (of repository repo, "" when unknown) in its cache,
// through its normal pull path; it returns once d is stored whole and verified.
type WarmFunc func(ctx context.Context, repo string, d digest.Digest) error

// Follower is the agent's side of the feed: every poll interval it polls every
// tracker (so each board knows it is live, and a tracker that dies loses it nothing),
// warms each blob new on any board a few at a time, and reports every outcome to every
// tracker, so whichever tracker a publisher asks has it.
type Follower struct {
	cfg      FollowerConfig
	agent    Agent
	trackers func() []Tracker
	warm     WarmFunc
	log      *zap.Logger
	ok, fail tally.Counter
	pollErrs tally.Counter

	cursors map[string]cursor // by tracker address; used by Run's goroutine only

	mu      sync.Mutex
	pending map[digest.Digest]bool // queued or being warmed
}

// cursor is where the follower is in one tracker's board.
type cursor struct {
	epoch string
	next  uint64
}

// NewFollower returns the follower of agent a.
func NewFollower(cfg FollowerConfig, a Agent, trackers func() []Tracker, warm WarmFunc, log *zap.Logger, scope tally.Scope) *Follower {
	return &Follower{cfg: cfg, agent: a, trackers: trackers, warm: warm, log: log,
		ok:       scope.Tagged(map[string]string{"result": "ok"}).Counter("warm_blobs"),
		fail:     scope.Tagged(map[string]string{"result": "failed"}).Counter("warm_blobs"),
		pollErrs: scope.Counter("warm_poll_errors"),
		cursors:  map[string]cursor{}, pending: map[digest.Digest]bool{}}
}

// Run polls and warms until ctx ends; it returns once its goroutines have.
func (f *Follower) Run(ctx context.Context) error {
	if f.cfg.PollInterval == 0 {
		return nil
	}
	q := newQueue()
	var wg sync.WaitGroup
	for range max(f.cfg.MaxBlobs, 1) {
		wg.Go(func() {
			for {
				it, ok := q.pop(ctx)
				if !ok {
					return
				}
				f.warmItem(ctx, it)
				f.mu.Lock()
				delete(f.pending, it.Digest)
				f.mu.Unlock()
			}
		})
	}
	defer wg.Wait()
	t := time.NewTicker(f.cfg.PollInterval)
	defer t.Stop()
	for {
		q.push(f.poll(ctx)...)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// poll reads every tracker's board from where it left it (a tracker with a new epoch,
// restarted, from its start: what the agent holds already costs a cache hit) and
// returns the blobs new on any of them, once each, leaving out those already queued.
func (f *Follower) poll(ctx context.Context) []Item {
	ts := f.trackers()
	feeds := make([]Feed, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		c := f.cursors[t.Addr()]
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			feeds[i], errs[i] = t.Poll(cctx, f.agent, c.epoch, c.next)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	var out []Item
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, t := range ts {
		if errs[i] != nil {
			f.pollErrs.Inc(1)
			f.log.Warn("poll warm feed", zap.String("tracker", t.Addr()), zap.Error(errs[i]))
			continue
		}
		feed := feeds[i]
		if c := f.cursors[t.Addr()]; c.epoch != feed.Epoch {
			f.log.Info("reading warm feed", zap.String("tracker", t.Addr()), zap.String("epoch", feed.Epoch),
				zap.Int("items", len(feed.Items)))
		}
		f.cursors[t.Addr()] = cursor{epoch: feed.Epoch, next: feed.Next}
		for _, it := range feed.Items {
			if !f.pending[it.Digest] {
				f.pending[it.Digest] = true
				out = append(out, it)
			}
		}
	}
	return out
}

// warmItem warms one item (until it expires) and reports the outcome.
func (f *Follower) warmItem(ctx context.Context, it Item) {
	wctx, cancel := context.WithDeadline(ctx, it.Expires)
	start := time.Now()
	err := f.warm(wctx, it.Repository, it.Digest)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the next board read lists it again
	}
	r := Report{Agent: f.agent.ID, Digest: it.Digest, OK: err == nil}
	if err != nil {
		r.Error = err.Error()
		f.fail.Inc(1)
		f.log.Warn("warm failed", zap.Stringer("digest", it.Digest), zap.Error(err))
	} else {
		f.ok.Inc(1)
		f.log.Info("warmed", zap.Stringer("digest", it.Digest), zap.Duration("took", time.Since(start)))
	}
	var wg sync.WaitGroup
	for _, t := range f.trackers() {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			if err := t.Report(cctx, r); err != nil && ctx.Err() == nil {
				f.log.Warn("report warm", zap.String("tracker", t.Addr()), zap.Stringer("digest", it.Digest), zap.Error(err))
			}
		})
	}
	wg.Wait()
}

// queue is the items waiting for a worker: unbounded (the board bounds it), so a poll
// never waits on the warming.
type queue struct {
	mu    sync.Mutex
	items []Item
	ready chan struct{} // has a token while items is not empty
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) push(items ...Item) {
	if len(items) == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, items...)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) pop(ctx context.Context) (Item, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			it := q.items[0]
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more { // pass the token on to the next worker
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			return it, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return Item{}, false
		case <-q.ready:
		}
	}
}
