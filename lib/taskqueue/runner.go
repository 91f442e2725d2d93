package taskqueue

import (
	"context"
	"sync"
	"time"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
)

// Handler does one task; an error schedules a retry with backoff.
type Handler func(ctx context.Context, t Task) error

// Runner runs due tasks of a Queue with a bounded number of workers, never the same
// task twice at once. Tasks left by a crash run again after a restart.
type Runner struct {
	q       *Queue
	handle  Handler
	workers int
	poll    time.Duration
	log     *zap.Logger
	scope   tally.Scope
	wake    chan struct{}
}

// NewRunner returns a Runner; workers < 1 means 4, poll <= 0 means 1 s.
func NewRunner(q *Queue, h Handler, workers int, poll time.Duration, log *zap.Logger, scope tally.Scope) *Runner {
	if workers < 1 {
		workers = 4
	}
	if poll <= 0 {
		poll = time.Second
	}
	return &Runner{q: q, handle: h, workers: workers, poll: poll, log: log, scope: scope, wake: make(chan struct{}, 1)}
}

// Notify makes the runner look for due tasks now (after an Add).
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run schedules tasks until ctx ends, then waits for running ones.
func (r *Runner) Run(ctx context.Context) error {
	var (
		mu       sync.Mutex
		inflight = map[string]bool{}
		wg       sync.WaitGroup
		slots    = make(chan struct{}, r.workers)
		done     = make(chan struct{}, r.workers)
	)
	defer wg.Wait()
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		if n, err := r.q.Len(); err == nil {
			r.scope.Gauge("tasks_pending").Update(float64(n))
		}
		due, err := r.q.Due(time.Now(), 0)
		if err != nil {
			r.log.Error("read due tasks", zap.Error(err))
		}
		for _, t := range due {
			mu.Lock()
			busy := inflight[t.Key()]
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // all workers busy; a finishing one wakes the loop
			}
			mu.Lock()
			inflight[t.Key()] = true
			mu.Unlock()
			wg.Add(1)
			go func(t Task) {
				defer wg.Done()
				r.runOne(ctx, t)
				mu.Lock()
				delete(inflight, t.Key())
				mu.Unlock()
				<-slots
				select {
				case done <- struct{}{}:
				default:
				}
			}(t)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.wake:
		case <-done:
		}
	}
}

func (r *Runner) runOne(ctx context.Context, t Task) {
	start := time.Now()
	err := r.handle(ctx, t)
	tagged := r.scope.Tagged(map[string]string{"kind": t.Kind})
	if err == nil {
		if err := r.q.Done(t); err != nil {
			r.log.Error("finish task", zap.String("kind", t.Kind), zap.Stringer("digest", t.Digest), zap.Error(err))
		}
		tagged.Counter("tasks_done").Inc(1)
		r.log.Info("task done", zap.String("kind", t.Kind), zap.Stringer("digest", t.Digest),
			zap.String("target", t.Target), zap.Duration("took", time.Since(start)))
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the task stays due
	}
	tagged.Counter("tasks_failed").Inc(1)
	next, qerr := r.q.Failed(t, time.Now(), err)
	r.log.Warn("task failed, will retry", zap.String("kind", t.Kind), zap.Stringer("digest", t.Digest),
		zap.String("target", t.Target), zap.Int("attempts", next.Attempts), zap.Time("next", next.NotBefore),
		zap.Error(err), zap.NamedError("queue_error", qerr))
}

// RunDue runs every task due now, one at a time, and returns the first error; for
// tests and tools that want the queue drained synchronously.
func (r *Runner) RunDue(ctx context.Context) error {
	due, err := r.q.Due(time.Now(), 0)
	if err != nil {
		return err
	}
	for _, t := range due {
		if err := r.handle(ctx, t); err != nil {
			_, _ = r.q.Failed(t, time.Now(), err)
			return err
		}
		if err := r.q.Done(t); err != nil {
			return err
		}
	}
	return nil
}
