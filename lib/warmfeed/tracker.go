package warmfeed

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// Tracker is one tracker's board as the follower and publisher use it: *Client over
// HTTP, Local in process (the fake of tests). Safe for concurrent use.
type Tracker interface {
	Addr() string
	Publish(ctx context.Context, in Intent) (Item, error)
	Poll(ctx context.Context, a Agent, epoch string, after uint64) (Feed, error)
	Report(ctx context.Context, r Report) error
	Reports(ctx context.Context, d digest.Digest) ([]Report, error)
	Agents(ctx context.Context) ([]AgentStatus, error)
}

var (
	_ Tracker = (*Client)(nil)
	_ Tracker = (*Local)(nil)
)

// Local is a Board used in process, as a Tracker. Down makes every call fail, as a
// stopped tracker's would.
type Local struct {
	Name  string
	Board *Board
	Now   func() time.Time // time.Now when nil
	Down  func() error     // nil: always up
}

func (l *Local) Addr() string { return l.Name }

func (l *Local) now() time.Time {
	if l.Now == nil {
		return time.Now()
	}
	return l.Now()
}

func (l *Local) down(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.Down != nil {
		return l.Down()
	}
	return nil
}

func (l *Local) Publish(ctx context.Context, in Intent) (Item, error) {
	if err := l.down(ctx); err != nil {
		return Item{}, err
	}
	return l.Board.Publish(in, l.now())
}

func (l *Local) Poll(ctx context.Context, a Agent, epoch string, after uint64) (Feed, error) {
	if err := l.down(ctx); err != nil {
		return Feed{}, err
	}
	return l.Board.Poll(a, epoch, after, l.now())
}

func (l *Local) Report(ctx context.Context, r Report) error {
	if err := l.down(ctx); err != nil {
		return err
	}
	return l.Board.Report(r, l.now())
}

func (l *Local) Reports(ctx context.Context, d digest.Digest) ([]Report, error) {
	if err := l.down(ctx); err != nil {
		return nil, err
	}
	return l.Board.Reports(d, l.now()), nil
}

func (l *Local) Agents(ctx context.Context) ([]AgentStatus, error) {
	if err := l.down(ctx); err != nil {
		return nil, err
	}
	return l.Board.Agents(l.now()), nil
}
