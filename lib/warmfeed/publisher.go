package warmfeed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/preheat"
)

// ErrNoTrackers is returned when the publisher has no tracker to post to.
var ErrNoTrackers = errors.New("warmfeed: no trackers configured")

// ErrAgentGone is wrapped when an agent stops polling before it reported.
var ErrAgentGone = errors.New("agent no longer polls the warm feed")

// Publisher is the proxy's side of the feed, a preheat.AgentWarmer: the first Warm of
// a blob posts it on every tracker's board; every Warm of that blob then waits for its
// agent's report, read from every tracker (the newest report of each agent wins). One
// watch per blob serves all its waiters. Safe for concurrent use.
type Publisher struct {
	trackers func() []Tracker
	ttl      time.Duration
	log      *zap.Logger

	// every is how often a watched blob's reports and the live agents are read again;
	// repost how often the blob is posted again (a restarted tracker forgot it).
	every, repost time.Duration

	mu      sync.Mutex
	watches map[digest.Digest]*watch
}

var _ preheat.AgentWarmer = (*Publisher)(nil)

// PublisherOption changes a Publisher's defaults.
type PublisherOption func(*Publisher)

// WithIntervals sets how often reports are read (every) and blobs posted again (repost).
func WithIntervals(every, repost time.Duration) PublisherOption {
	return func(p *Publisher) { p.every, p.repost = every, repost }
}

// NewPublisher returns a publisher posting to trackers (called at each use, so a DNS
// membership stays current). A posted blob stays on the boards for ttl (a job's
// timeout) unless posted again.
func NewPublisher(trackers func() []Tracker, ttl time.Duration, log *zap.Logger, opts ...PublisherOption) *Publisher {
	p := &Publisher{trackers: trackers, ttl: ttl, log: log, every: 500 * time.Millisecond,
		repost: 10 * time.Second, watches: map[digest.Digest]*watch{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Agents lists the ids of the agents live on any tracker's board.
func (p *Publisher) Agents(ctx context.Context) ([]string, error) {
	live, err := p.live(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// live is the union of every tracker's live agents; an error only when no tracker
// answered.
func (p *Publisher) live(ctx context.Context) (map[string]bool, error) {
	ts := p.trackers()
	if len(ts) == 0 {
		return nil, ErrNoTrackers
	}
	lists := make([][]AgentStatus, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			lists[i], errs[i] = t.Agents(cctx)
		})
	}
	wg.Wait()
	live, answered := map[string]bool{}, false
	for i, l := range lists {
		if errs[i] != nil {
			continue
		}
		answered = true
		for _, a := range l {
			live[a.ID] = true
		}
	}
	if !answered {
		return nil, fmt.Errorf("list live agents: %w", errors.Join(errs...))
	}
	return live, nil
}

// Warm returns once agent (an id from Agents) reports d held, or with the error it
// reported, or ErrAgentGone when it stops polling first.
func (p *Publisher) Warm(ctx context.Context, agent preheat.Host, d digest.Digest) error {
	w, err := p.acquire(ctx, d)
	if err != nil {
		return err
	}
	defer p.release(d, w)
	for {
		st := w.state()
		if done, err := Outcome(agent.Addr, st); done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-st.changed:
		}
	}
}

// WatchState is what a watch knows of one blob: the newest report of each agent, the
// reports it found when it started (older than this warm), and the live agents
// (nil when no tracker answered the last read).
type WatchState struct {
	Reports map[string]Report
	Initial map[string]Report
	Live    map[string]bool
	changed <-chan struct{}
}

// Outcome decides one agent's warm of a blob from what the watch knows: done with nil
// once the agent reports it held (a success of an earlier warm counts: the agent holds
// it), done with its error once it reports a failure newer than those the watch found
// at its start (each tracker stamps the copy it gets, so "newer" compares stamps, and a
// tracker missing from one read cannot make an old failure look new), done with
// ErrAgentGone once it is not live, else not done.
func Outcome(agent string, st WatchState) (bool, error) {
	r, ok := st.Reports[agent]
	switch {
	case ok && r.OK:
		return true, nil
	case ok && r.At.After(st.Initial[agent].At):
		return true, fmt.Errorf("the agent reported: %s", r.Error)
	case st.Live != nil && !st.Live[agent]:
		return true, fmt.Errorf("%s: %w (stopped, or its poll_interval is 0)", agent, ErrAgentGone)
	}
	return false, nil
}

// watch follows one blob: it posts it, then reads its reports and the live agents
// every p.every, until its last waiter leaves.
type watch struct {
	refs   int
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	st WatchState
	ch chan struct{} // closed on the next change of st
}

func (w *watch) state() WatchState {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.st
	st.changed = w.ch
	return st
}

// acquire joins d's watch, starting it (and posting d) when it is the first waiter. A
// post that no tracker accepts fails the warm.
func (p *Publisher) acquire(ctx context.Context, d digest.Digest) (*watch, error) {
	p.mu.Lock()
	if w, ok := p.watches[d]; ok {
		w.refs++
		p.mu.Unlock()
		return w, nil
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &watch{refs: 1, cancel: cancel, done: make(chan struct{}), ch: make(chan struct{})}
	p.watches[d] = w
	p.mu.Unlock()

	err := p.post(ctx, d, true)
	if err == nil {
		p.read(ctx, d, w, true)
		go p.follow(wctx, d, w)
		return w, nil
	}
	close(w.done)
	p.release(d, w)
	return nil, err
}

func (p *Publisher) release(d digest.Digest, w *watch) {
	p.mu.Lock()
	w.refs--
	last := w.refs == 0
	if last && p.watches[d] == w {
		delete(p.watches, d)
	}
	p.mu.Unlock()
	if last {
		w.cancel()
		<-w.done
	}
}

func (p *Publisher) follow(ctx context.Context, d digest.Digest, w *watch) {
	defer close(w.done)
	t := time.NewTicker(p.every)
	defer t.Stop()
	posted := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(posted) >= p.repost {
			if err := p.post(ctx, d, false); err != nil && ctx.Err() == nil {
				p.log.Warn("post warm again", zap.Stringer("digest", d), zap.Error(err))
			}
			posted = time.Now()
		}
		p.read(ctx, d, w, false)
	}
}

// post puts d on every tracker's board (again: for every follower to read once more);
// an error only when none took it.
func (p *Publisher) post(ctx context.Context, d digest.Digest, again bool) error {
	ts := p.trackers()
	if len(ts) == 0 {
		return ErrNoTrackers
	}
	in := Intent{Digest: d, Expires: time.Now().Add(p.ttl), Again: again}
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			_, errs[i] = t.Publish(cctx, in)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("post %s on the trackers' warm feed: %w", d, errors.Join(errs...))
}

// read merges every tracker's reports of d and the live agents into w's state.
func (p *Publisher) read(ctx context.Context, d digest.Digest, w *watch, initial bool) {
	ts := p.trackers()
	lists := make([][]Report, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			lists[i], _ = t.Reports(cctx, d) // a tracker down has none; the others do
		})
	}
	live, err := p.live(ctx)
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	merged := map[string]Report{}
	for _, l := range lists {
		for _, r := range l {
			if old, ok := merged[r.Agent]; !ok || r.At.After(old.At) {
				merged[r.Agent] = r
			}
		}
	}
	if err != nil {
		live = nil // unknown: nobody counts as gone
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.st.Reports, w.st.Live = merged, live
	if initial {
		w.st.Initial = merged
	}
	close(w.ch)
	w.ch = make(chan struct{})
}
