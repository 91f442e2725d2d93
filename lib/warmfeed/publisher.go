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

// DefaultGoneAfter is how long an agent must be missing from every board's live list
// before a warm waiting for it fails: above the agents' default poll interval (5s)
// with a margin, so a restarted tracker (a new board, empty until the agents poll
// again) fails no agent.
const DefaultGoneAfter = 20 * time.Second

// Publisher is the proxy's side of the feed, a preheat.AgentWarmer: the first Warm of
// a blob posts it on every tracker's board; every Warm of that blob then waits for its
// agent's report, read from every tracker (the newest report of each agent wins). One
// watch per blob serves all its waiters. Safe for concurrent use.
type Publisher struct {
	trackers func() []Tracker
	ttl      time.Duration
	log      *zap.Logger

	// every is how often a watched blob's reports and the live agents are read again;
	// repost how often the blob is posted again (a restarted tracker forgot it); linger
	// how long a watch outlives its last waiter (a job warms a blob's agents one after
	// another: each would otherwise post it again, and every agent read it once more);
	// goneAfter how long an agent must be missing from every board before it counts as
	// gone (a restarted tracker lists an agent again only at its next poll).
	every, repost, linger, goneAfter time.Duration

	mu      sync.Mutex
	closed  bool
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
		repost: 10 * time.Second, linger: 10 * time.Second, goneAfter: DefaultGoneAfter,
		watches: map[digest.Digest]*watch{}}
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
	w.ask(agent.Addr)
	for {
		st := w.state()
		if done, err := Outcome(agent.Addr, st, time.Now(), p.goneAfter); done {
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
	// MissingSince is when the watch first found each agent not live, for the agents
	// not live now.
	MissingSince map[string]time.Time
	changed      <-chan struct{}
}

// Outcome decides one agent's warm of a blob from what the watch knows: done with nil
// once the agent reports it held (a success of an earlier warm counts: the agent holds
// it), done with its error once it reports a failure newer than those the watch found
// at its start (each tracker stamps the copy it gets, so "newer" compares stamps, and a
// tracker missing from one read cannot make an old failure look new), done with
// ErrAgentGone once it has been missing from the live agents for goneAfter (at now),
// else not done.
func Outcome(agent string, st WatchState, now time.Time, goneAfter time.Duration) (bool, error) {
	r, ok := st.Reports[agent]
	since, missing := st.MissingSince[agent]
	switch {
	case ok && r.OK:
		return true, nil
	case ok && r.At.After(st.Initial[agent].At):
		return true, fmt.Errorf("the agent reported: %s", r.Error)
	case st.Live != nil && !st.Live[agent] && missing && now.Sub(since) >= goneAfter:
		return true, fmt.Errorf("%s: %w for %s (stopped, or its poll_interval is 0)", agent, ErrAgentGone, now.Sub(since).Round(time.Second))
	}
	return false, nil
}

// watch follows one blob: it posts it, then reads its reports and the live agents
// every p.every, until its last waiter leaves.
type watch struct {
	// gate is held while the watch's first read, or a refresh, runs; err is the
	// failure of its first post (the watch then never starts). Both guarded by gate.
	gate sync.Mutex
	err  error

	refs   int
	cancel context.CancelFunc
	done   chan struct{}
	stop   *time.Timer // set while the watch lingers with no waiter

	mu    sync.Mutex
	st    WatchState
	ch    chan struct{}   // closed on the next change of st
	asked map[string]bool // the agents waited for
}

// hasFailure reports whether some agent's newest report of the blob is a failure.
func (w *watch) hasFailure() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.st.Reports {
		if !r.OK {
			return true
		}
	}
	return false
}

// ask records that agent is waited for, so its absence from the boards is timed.
func (w *watch) ask(agent string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked[agent] = true
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
		lingering := w.stop != nil
		if lingering {
			w.stop.Stop()
			w.stop = nil
		}
		p.mu.Unlock()
		// Wait for the watch's first read (or a refresh another waiter runs), so no
		// waiter judges reports against a state that is not yet the watch's.
		w.gate.Lock()
		defer w.gate.Unlock()
		if w.err != nil {
			p.release(d, w)
			return nil, w.err
		}
		if lingering && w.hasFailure() {
			// A new warm of a blob some agent failed: ask every agent again (those
			// holding it answer from their cache), and judge only newer failures.
			if err := p.post(ctx, d, true); err != nil {
				p.release(d, w)
				return nil, err
			}
			p.read(ctx, d, w, true)
		}
		return w, nil
	}
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("warmfeed: publisher closed")
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &watch{refs: 1, cancel: cancel, done: make(chan struct{}), ch: make(chan struct{}), asked: map[string]bool{}}
	w.gate.Lock()
	defer w.gate.Unlock()
	p.watches[d] = w
	p.mu.Unlock()

	if w.err = p.post(ctx, d, true); w.err == nil {
		p.read(ctx, d, w, true)
		go p.follow(wctx, d, w)
		return w, nil
	}
	close(w.done)
	p.mu.Lock()
	if p.watches[d] == w {
		delete(p.watches, d)
	}
	p.mu.Unlock()
	cancel()
	return nil, w.err
}

// release leaves d's watch; the last waiter to leave lets it linger, then end.
func (p *Publisher) release(d digest.Digest, w *watch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.refs--; w.refs > 0 {
		return
	}
	if p.closed || p.linger <= 0 {
		p.endLocked(d, w)
		return
	}
	w.stop = time.AfterFunc(p.linger, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if w.refs == 0 && p.watches[d] == w {
			p.endLocked(d, w)
		}
	})
}

// endLocked drops w (waiterless) and stops its goroutine; it does not wait for it.
func (p *Publisher) endLocked(d digest.Digest, w *watch) {
	if p.watches[d] == w {
		delete(p.watches, d)
	}
	if w.stop != nil {
		w.stop.Stop()
		w.stop = nil
	}
	w.cancel()
}

// Close ends every watch without waiters (lingering) and waits for their goroutines;
// later warms fail. Call it once the jobs using the publisher have ended.
func (p *Publisher) Close() {
	p.mu.Lock()
	p.closed = true
	var ended []*watch
	for d, w := range p.watches {
		if w.refs == 0 {
			p.endLocked(d, w)
			ended = append(ended, w)
		}
	}
	p.mu.Unlock()
	for _, w := range ended {
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
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	missing := map[string]time.Time{}
	if live != nil {
		for id := range w.asked {
			if live[id] {
				continue
			}
			if since, ok := w.st.MissingSince[id]; ok {
				missing[id] = since
			} else {
				missing[id] = now
			}
		}
	} else {
		missing = w.st.MissingSince // no answer: what was missing stays missing
	}
	w.st.Reports, w.st.Live, w.st.MissingSince = merged, live, missing
	if initial {
		w.st.Initial = merged
	}
	close(w.ch)
	w.ch = make(chan struct{})
}
