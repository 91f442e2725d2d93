package stall

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	const timeout = 30 * time.Second
	for _, tc := range []struct {
		name      string
		now, busy time.Time
		progress  time.Time
		stalled   bool
		wait      time.Duration
	}{
		{"idle: nothing to watch", t0.Add(time.Hour), time.Time{}, time.Time{}, false, 0},
		{"just started", t0, t0, time.Time{}, false, timeout},
		{"waiting, no progress, not yet", t0.Add(10 * time.Second), t0, time.Time{}, false, 20 * time.Second},
		{"waiting, no progress, at the timeout", t0.Add(timeout), t0, time.Time{}, true, 0},
		{"waiting, no progress, past it", t0.Add(time.Minute), t0, time.Time{}, true, 0},
		{"progress during the wait moves the deadline", t0.Add(40 * time.Second), t0, t0.Add(25 * time.Second), false, 15 * time.Second},
		{"progress long ago does not", t0.Add(timeout), t0, t0.Add(-time.Hour), true, 0},
		{"progress then silence", t0.Add(56 * time.Second), t0, t0.Add(25 * time.Second), true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stalled, wait := Decide(tc.now, tc.busy, tc.progress, timeout)
			if stalled != tc.stalled || wait != tc.wait {
				t.Errorf("Decide = %v, %s; want %v, %s", stalled, wait, tc.stalled, tc.wait)
			}
		})
	}
}

// blockingSource blocks each Read until its context is done.
type blockingSource struct{ ctx context.Context }

func (b blockingSource) Read([]byte) (int, error) {
	<-b.ctx.Done()
	return 0, context.Cause(b.ctx)
}
func (blockingSource) Seek(int64, int) (int64, error) { return 0, nil }
func (blockingSource) Close() error                   { return nil }

func TestStalledReadFails(t *testing.T) {
	ctx, w := New(context.Background(), 20*time.Millisecond)
	r := w.Reader(ctx, blockingSource{ctx})
	defer r.Close()
	_, err := r.Read(make([]byte, 10))
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("Read = %v, want ErrStalled", err)
	}
	if !errors.Is(context.Cause(ctx), ErrStalled) {
		t.Fatalf("context cause %v", context.Cause(ctx))
	}
}

// trickle returns one byte per Read after a pause, recording progress elsewhere too.
type trickle struct {
	left  int
	pause time.Duration
}

func (s *trickle) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	s.left--
	p[0] = 'x'
	return 1, nil
}
func (*trickle) Seek(int64, int) (int64, error) { return 0, nil }
func (*trickle) Close() error                   { return nil }

func TestSlowClientIsNotAStall(t *testing.T) {
	ctx, w := New(context.Background(), 100*time.Millisecond)
	r := w.Reader(ctx, &trickle{left: 3})
	defer r.Close()
	for range 3 {
		time.Sleep(300 * time.Millisecond) // the client takes its time between reads
		if _, err := r.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("context done: %v", context.Cause(ctx))
	}
}

// slowPiece blocks its one Read for a while, during which the source reports progress.
type slowPiece struct {
	ctx   context.Context
	for_  time.Duration
	alive *atomic.Int64
}

func (s slowPiece) Read(p []byte) (int, error) {
	end := time.Now().Add(s.for_)
	for time.Now().Before(end) {
		if err := s.ctx.Err(); err != nil {
			return 0, context.Cause(s.ctx)
		}
		s.alive.Store(time.Now().UnixNano())
		time.Sleep(2 * time.Millisecond)
	}
	return copy(p, "done"), nil
}
func (slowPiece) Seek(int64, int) (int64, error) { return 0, nil }
func (slowPiece) Close() error                   { return nil }

func TestProgressOfTheSourceKeepsAWaitAlive(t *testing.T) {
	var alive atomic.Int64
	// A timeout well above the source's 2 ms reports, so a loaded machine's scheduling
	// gaps are not taken for a stall; the read lasts three timeouts.
	ctx, w := New(context.Background(), 200*time.Millisecond)
	w.SetProgress(func() time.Time { return time.Unix(0, alive.Load()) })
	r := w.Reader(ctx, slowPiece{ctx: ctx, for_: 600 * time.Millisecond, alive: &alive})
	defer r.Close()
	b := make([]byte, 4)
	if _, err := r.Read(b); err != nil {
		t.Fatalf("Read = %v: the source kept working", err)
	}
}

func TestDisabledAndStopped(t *testing.T) {
	ctx, w := New(context.Background(), 0)
	r := w.Reader(ctx, nopSeekCloser{bytes.NewReader([]byte("abc"))})
	if b, err := io.ReadAll(r); err != nil || string(b) != "abc" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	r.Close()
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		t.Fatalf("a stopped watchdog's context: %v", context.Cause(ctx))
	}

	ctx, w = New(context.Background(), 10*time.Millisecond)
	w.Busy()
	w.Stop()
	time.Sleep(30 * time.Millisecond)
	if errors.Is(context.Cause(ctx), ErrStalled) {
		t.Fatal("a stopped watchdog fired")
	}
}

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }
