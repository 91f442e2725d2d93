package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/seekpos"
)

// headFirstReader streams a blob being fetched through the swarm: its first piece as
// a ranged GET from an origin, so the client gets bytes at once, then the swarm's
// verified pieces. In a cold flash crowd every agent needs the first piece at the
// same instant and only origins have it; through the swarm it took 0.5-0.8 s
// (docs/BENCHMARKS.md), over HTTP the first byte comes in one round trip. The origin
// is the cluster's source of truth, as for blobs fetched whole over HTTP (direct_below),
// and the client checks the digest of the whole blob. If the head fails, the swarm
// serves from where it stopped, that piece first.
type headFirstReader struct {
	ctx     context.Context
	d       digest.Digest
	tx      *p2p.Transfer
	origins *originset.Set
	log     *zap.Logger
	bytes   tally.Counter // head bytes read from origins
	headEnd func()        // if set, called once the head is read, has failed, or is skipped
	// prefetch, if set, is a GET of the whole head opened while the torrent was being
	// added; the reader takes it if the client starts at 0, else drops it.
	prefetch *headPrefetch

	headLen  int64         // bytes served by the head: the first piece
	pos      int64         // the client's position
	head     io.ReadCloser // open ranged GET, at headAt; nil if none
	headAt   int64
	headOff  bool              // the head failed: the swarm serves the rest
	swarm    io.ReadSeekCloser // nil until the client reads past the head
	swarmPos int64
}

func newHeadFirstReader(ctx context.Context, d digest.Digest, tx *p2p.Transfer, headLen int64, origins *originset.Set, log *zap.Logger, head tally.Counter) *headFirstReader {
	return &headFirstReader{ctx: ctx, d: d, tx: tx, origins: origins, log: log, bytes: head,
		headLen: min(headLen, tx.Length())}
}

func (r *headFirstReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !r.headOff && r.pos < r.headLen {
		if n, ok := r.readHead(p); ok {
			return n, nil
		}
	}
	if r.swarm == nil {
		r.dropPrefetch()
		if r.headEnd != nil {
			r.headEnd() // no head (the client started past it, or it failed)
		}
		if r.headOff {
			r.swarm = r.tx.NewReader() // the piece the head stopped in is wanted now
		} else {
			r.swarm = r.tx.NewPassiveReader()
		}
	}
	if r.swarmPos != r.pos {
		if _, err := r.swarm.Seek(r.pos, io.SeekStart); err != nil {
			return 0, err
		}
		r.swarmPos = r.pos
	}
	n, err := r.swarm.Read(p)
	r.pos += int64(n)
	r.swarmPos = r.pos
	return n, err
}

// readHead reads from the origin's ranged GET, opening it at pos if needed. It
// reports false, with nothing read, once the head has failed.
func (r *headFirstReader) readHead(p []byte) (int, bool) {
	if r.head != nil && r.headAt != r.pos {
		r.closeHead()
	}
	if r.head == nil {
		body, err := r.openHead()
		if err != nil {
			r.failHead(err)
			return 0, false
		}
		r.head, r.headAt = body, r.pos
	}
	p = p[:min(int64(len(p)), r.headLen-r.pos)]
	n, err := r.head.Read(p)
	r.pos += int64(n)
	r.headAt = r.pos
	r.bytes.Inc(int64(n))
	switch {
	case r.pos >= r.headLen:
		r.closeHead()
		if r.headEnd != nil {
			r.headEnd()
		}
	case err != nil && !errors.Is(err, io.EOF):
		r.failHead(err)
	case err != nil:
		r.failHead(io.ErrUnexpectedEOF)
	}
	return n, n > 0 || !r.headOff
}

func (r *headFirstReader) openHead() (io.ReadCloser, error) {
	if p := r.prefetch; p != nil && r.pos == 0 {
		r.prefetch = nil
		<-p.done
		return p.body, p.err
	}
	r.dropPrefetch()
	return openOriginRange(r.ctx, r.origins, r.d, r.pos, r.headLen-r.pos)
}

func (r *headFirstReader) dropPrefetch() {
	if r.prefetch != nil {
		r.prefetch.drop()
		r.prefetch = nil
	}
}

// headPrefetch is a ranged GET of a blob's head from its origins, opened before the
// reader needs it. In a flash crowd the origin's uplink fills within tens of
// milliseconds with the heads and pulls of the agents that asked first; a head asked
// for after the torrent is added (2-34 ms on a busy host) queued behind them.
type headPrefetch struct {
	done chan struct{}
	body io.ReadCloser // set, with err, before done closes
	err  error
}

func prefetchHead(ctx context.Context, origins *originset.Set, d digest.Digest, n int64) *headPrefetch {
	p := &headPrefetch{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.body, p.err = openOriginRange(ctx, origins, d, 0, n)
	}()
	return p
}

// drop closes the GET's body once it is open, if it opens.
func (p *headPrefetch) drop() {
	go func() {
		<-p.done
		if p.body != nil {
			p.body.Close()
		}
	}()
}

// openOriginRange opens n bytes of blob d from offset off at the first of d's origins
// (in placement order) that serves them, marking the ones that fail.
func openOriginRange(ctx context.Context, origins *originset.Set, d digest.Digest, off, n int64) (io.ReadCloser, error) {
	owners := origins.Owners(d)
	if len(owners) == 0 {
		return nil, errors.New("no origins known")
	}
	var errs []error
	for _, o := range owners {
		body, err := o.ReadRange(ctx, d, off, n)
		if err == nil {
			return body, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if !errors.Is(err, originclient.ErrNotFound) {
			origins.MarkFailed(o.Addr())
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (r *headFirstReader) failHead(err error) {
	r.closeHead()
	r.headOff = true
	if r.ctx.Err() == nil {
		r.log.Warn("blob head from origin failed; the swarm serves it", zap.Stringer("digest", r.d), zap.Int64("offset", r.pos), zap.Error(err))
	}
}

func (r *headFirstReader) closeHead() {
	if r.head != nil {
		r.head.Close()
		r.head = nil
	}
}

func (r *headFirstReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := seekpos.Resolve(r.pos, r.tx.Length(), offset, whence)
	if err != nil {
		return r.pos, fmt.Errorf("agent blob reader: %w", err)
	}
	r.pos = pos
	return pos, nil
}

func (r *headFirstReader) Close() error {
	r.dropPrefetch()
	if r.headEnd != nil {
		r.headEnd() // a reader closed before its head ended holds no pull back
	}
	r.closeHead()
	if r.swarm != nil {
		return r.swarm.Close()
	}
	return nil
}
