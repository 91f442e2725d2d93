// Package stall bounds how long a client waits on a transfer that makes no progress.
//
// A Watchdog watches one transfer: while its source is being waited on (a Read in
// flight, or a step before the first byte) and no progress is seen for the timeout,
// it cancels its context with ErrStalled. Whatever the transfer waits on under that
// context (an origin's response body, a piece of the swarm) then fails, so the client
// gets an error before the body starts or a closed connection, and retries. Time the
// transfer spends waiting on the client itself (a slow reader) is not counted.
//
// The decision is the pure function Decide; Watchdog is its shell around a timer.
package stall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultTimeout is the stall timeout when none is configured.
const DefaultTimeout = 30 * time.Second

// ErrStalled is the cause of a Watchdog's context once it fired.
var ErrStalled = errors.New("transfer stalled: no progress within the stall timeout")

// Decide says whether a transfer waited on since busySince, with its last progress
// at lastProgress (zero if none), is stalled at now; if not, wait is how long until it
// would be (0 when it is not being waited on: nothing to watch).
func Decide(now, busySince, lastProgress time.Time, timeout time.Duration) (stalled bool, wait time.Duration) {
	if busySince.IsZero() {
		return false, 0
	}
	since := busySince
	if lastProgress.After(since) {
		since = lastProgress
	}
	left := timeout - now.Sub(since)
	if left <= 0 {
		return true, 0
	}
	return false, left
}

// Watchdog cancels its context when the transfer it watches stalls (see Decide).
type Watchdog struct {
	timeout time.Duration
	cancel  context.CancelCauseFunc

	mu        sync.Mutex
	progress  func() time.Time // extra evidence of progress (SetProgress); may be nil
	timer     *time.Timer
	busySince time.Time
	last      time.Time // last progress seen through Progress
	stopped   bool
}

// New returns a context derived from parent that a Watchdog cancels with ErrStalled.
// A timeout <= 0 disables the watchdog. Stop it when the transfer ends.
func New(parent context.Context, timeout time.Duration) (context.Context, *Watchdog) {
	ctx, cancel := context.WithCancelCause(parent)
	w := &Watchdog{timeout: timeout, cancel: cancel}
	if timeout > 0 {
		w.timer = time.AfterFunc(timeout, w.fire)
		w.timer.Stop()
	}
	return ctx, w
}

// SetProgress adds a report of the source's last progress (zero if none), so a wait
// on a source that keeps working (a piece arriving chunk by chunk) is not a stall.
func (w *Watchdog) SetProgress(progress func() time.Time) {
	w.mu.Lock()
	w.progress = progress
	w.mu.Unlock()
}

// Progressing is r with each Read that returns bytes recorded as progress.
func (w *Watchdog) Progressing(r io.Reader) io.Reader { return progressing{r, w} }

type progressing struct {
	r io.Reader
	w *Watchdog
}

func (p progressing) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.Progress()
	}
	return n, err
}

// Busy marks the start of a wait on the source.
func (w *Watchdog) Busy() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.busySince = time.Now()
	w.timer.Reset(w.timeout)
}

// Idle marks the end of a wait on the source.
func (w *Watchdog) Idle() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.busySince = time.Time{}
	w.mu.Unlock()
}

// Progress records that the source delivered something.
func (w *Watchdog) Progress() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.last = time.Now()
	w.mu.Unlock()
}

// Stop releases the watchdog and its context; it never fires after.
func (w *Watchdog) Stop() {
	if w.timer != nil {
		w.mu.Lock()
		w.stopped = true
		w.timer.Stop()
		w.mu.Unlock()
	}
	w.cancel(context.Canceled)
}

func (w *Watchdog) fire() {
	w.mu.Lock()
	progress := w.progress
	w.mu.Unlock()
	var last time.Time
	if progress != nil {
		last = progress()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if w.last.After(last) {
		last = w.last
	}
	stalled, wait := Decide(time.Now(), w.busySince, last, w.timeout)
	switch {
	case stalled:
		w.stopped = true
		w.cancel(fmt.Errorf("%w (%s)", ErrStalled, w.timeout))
	case wait > 0:
		w.timer.Reset(wait)
	}
}

// Reader is r with each Read watched: busy while it runs, progress when it returns
// bytes. A Read cut off by the watchdog returns ErrStalled.
func (w *Watchdog) Reader(ctx context.Context, r io.ReadSeekCloser) io.ReadSeekCloser {
	return &reader{r: r, w: w, ctx: ctx}
}

type reader struct {
	r   io.ReadSeekCloser
	w   *Watchdog
	ctx context.Context
}

func (r *reader) Read(p []byte) (int, error) {
	r.w.Busy()
	n, err := r.r.Read(p)
	r.w.Idle()
	if n > 0 {
		r.w.Progress()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if cause := context.Cause(r.ctx); errors.Is(cause, ErrStalled) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
	}
	return n, err
}

func (r *reader) Seek(offset int64, whence int) (int64, error) { return r.r.Seek(offset, whence) }

func (r *reader) Close() error {
	err := r.r.Close()
	r.w.Stop()
	return err
}
