package p2p

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"
)

// OriginRanges opens n bytes of a blob from offset off at one of its origins (a ranged
// GET); the agent builds it on lib/originclient, trying the blob's origins in turn.
type OriginRanges func(ctx context.Context, off, n int64) (io.ReadCloser, error)

// Origin pull timing and limits.
const (
	pullIdle        = 200 * time.Millisecond // nothing to pull: look again after this
	pullStuckAfter  = 2 * time.Second        // nothing to pull this long: pull pieces others may be on
	pullPieceTime   = 2 * time.Minute        // one piece over HTTP, at most
	pullMaxFailures = 5                      // consecutive failed pieces before falling back to BT
	pullBackoff     = 250 * time.Millisecond // after a failure, doubled per failure
	pullCopyBuf     = 256 << 10
)

// pullPicker decides which piece an agent pulls from the origins next, so that the
// agents of a flash crowd pull different pieces without talking to each other: each
// walks forward through pieces nobody it knows of has, from a random start; when it
// reaches a piece that it or a peer already holds, it jumps into the middle of the
// largest run of pieces still uncovered, which is where another agent's walk is
// farthest away. The origins then send each piece about once and the swarm trades
// the rest (docs/ARCHITECTURE.md). It does no I/O.
type pullPicker struct {
	next int // the piece after the last one picked; -1 before the first pick
	rng  *rand.Rand
}

// walkerGap is how many pieces at the start of an uncovered run a jump leaves out:
// the agent that pulled the piece before the run is walking into it, pulling its
// first piece now and reaching the second before a piece pulled from scratch would
// be done.
const walkerGap = 2

func newPullPicker(seed uint64) *pullPicker {
	return &pullPicker{next: -1, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// pick returns the piece to pull given which pieces are covered (held here, held by a
// connected peer, or being pulled already), or -1 when none is worth pulling. Unless
// stuck, it leaves out the pieces other agents are probably walking into (walkerGap);
// stuck (nothing picked for a while) it takes any uncovered piece, in case the agent
// walking there is gone.
func (p *pullPicker) pick(covered []bool, stuck bool) int {
	if p.next >= 0 && p.next < len(covered) && !covered[p.next] {
		i := p.next
		p.next++
		return i
	}
	var i int
	switch {
	case p.next < 0:
		i = p.pickAny(covered)
	case stuck:
		i = p.pickGap(covered, 0)
	default:
		i = p.pickGap(covered, walkerGap)
	}
	if i >= 0 {
		p.next = i + 1
	}
	return i
}

// pickAny returns an uncovered piece chosen uniformly, or -1.
func (p *pullPicker) pickAny(covered []bool) int {
	free := 0
	for _, c := range covered {
		if !c {
			free++
		}
	}
	if free == 0 {
		return -1
	}
	k := p.rng.IntN(free)
	for i, c := range covered {
		if c {
			continue
		}
		if k == 0 {
			return i
		}
		k--
	}
	return -1
}

// pickGap returns a piece in the middle half of the longest run of uncovered pieces
// (ties broken at random), leaving out the first skip pieces of runs that follow a
// covered piece; -1 if no run is left.
func (p *pullPicker) pickGap(covered []bool, skip int) int {
	bestStart, bestLen, ties := -1, 0, 0
	for i := 0; i < len(covered); {
		if covered[i] {
			i++
			continue
		}
		start := i
		for i < len(covered) && !covered[i] {
			i++
		}
		if start > 0 {
			start += skip
		}
		n := i - start
		switch {
		case n <= 0:
		case n > bestLen:
			bestStart, bestLen, ties = start, n, 1
		case n == bestLen:
			ties++
			if p.rng.IntN(ties) == 0 {
				bestStart = start
			}
		}
	}
	if bestStart < 0 {
		return -1
	}
	lo, hi := bestLen/4, bestLen-1-bestLen/4
	return bestStart + lo + p.rng.IntN(hi-lo+1)
}

// pull fetches a's pieces from the origins over HTTP, Config.OriginWindowPieces at a
// time, until every piece is held here; pieces a connected peer holds are left to the
// swarm. After pullMaxFailures pieces in a row fail, it stops and lets the client
// fetch from the origins over BitTorrent instead. Runs in its own goroutine.
func (e *Engine) pull(a *active, open OriginRanges) {
	defer e.wg.Done()
	defer a.readers.Add(-1)
	defer a.touch(time.Now())
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-a.ct.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	ps := &pullState{a: a, picker: newPullPicker(rand.Uint64()), inflight: make([]bool, a.t.NumPieces())}
	var wg sync.WaitGroup
	for range e.cfg.OriginWindowPieces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.pullWorker(ctx, ps, open)
		}()
	}
	wg.Wait()
	if ps.gaveUp {
		e.log.Warn("pulling from origins over HTTP failed; fetching from them over BitTorrent",
			zap.Stringer("digest", a.d), zap.Error(ps.lastErr))
		a.originPeers.Store(true)
		a.poke()
	}
}

// pullState is what the workers of one pull share.
type pullState struct {
	a *active

	mu       sync.Mutex
	picker   *pullPicker
	inflight []bool
	failures int // consecutive
	gaveUp   bool
	lastErr  error
}

// claim picks the next piece to pull and marks it in flight, or returns -1.
func (ps *pullState) claim(covered []bool, stuck bool) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, f := range ps.inflight {
		covered[i] = covered[i] || f
	}
	i := ps.picker.pick(covered, stuck)
	if i >= 0 {
		ps.inflight[i] = true
	}
	return i
}

// release ends piece i's pull; it reports whether the workers should go on.
func (ps *pullState) release(i int, err error) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.inflight[i] = false
	if err == nil {
		ps.failures = 0
		return !ps.gaveUp
	}
	ps.failures++
	ps.lastErr = err
	if ps.failures >= pullMaxFailures {
		ps.gaveUp = true
	}
	return !ps.gaveUp
}

func (ps *pullState) backoff() time.Duration {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return min(pullBackoff<<max(ps.failures-1, 0), 4*time.Second)
}

func (e *Engine) pullWorker(ctx context.Context, ps *pullState, open OriginRanges) {
	a := ps.a
	buf := make([]byte, min(pullCopyBuf, a.ct.pieceLen))
	var idleSince time.Time // zero while pulling
	for ctx.Err() == nil {
		stuck := !idleSince.IsZero() && time.Since(idleSince) >= pullStuckAfter
		i := ps.claim(e.covered(a), stuck)
		if i < 0 {
			if idleSince.IsZero() {
				idleSince = time.Now()
			}
			sleepCtx(ctx, pullIdle)
			continue
		}
		idleSince = time.Time{}
		err := e.pullPiece(ctx, a, open, i, buf)
		if ctx.Err() != nil {
			return
		}
		if !ps.release(i, err) {
			return
		}
		if err != nil {
			e.log.Debug("pull piece from origin failed", zap.Stringer("digest", a.d), zap.Int("piece", i), zap.Error(err))
			sleepCtx(ctx, ps.backoff())
		}
	}
}

// pullPiece copies piece i from an origin into the blob's file and has the client
// verify it. A piece that completes meanwhile (from a peer) ends the pull early.
func (e *Engine) pullPiece(ctx context.Context, a *active, open OriginRanges, i int, buf []byte) error {
	ct := a.ct
	off := int64(i) * ct.pieceLen
	n := min(ct.pieceLen, ct.size-off)
	ctx, cancel := context.WithTimeout(ctx, pullPieceTime)
	defer cancel()
	body, err := open(ctx, off, n)
	if err != nil {
		return fmt.Errorf("open piece %d: %w", i, err)
	}
	defer body.Close()
	for done := int64(0); done < n; {
		m, err := io.ReadFull(body, buf[:min(int64(len(buf)), n-done)])
		if m > 0 {
			e.m.pulled(int64(m))
			written, werr := ct.writeUnverified(buf[:m], off+done, i)
			if werr != nil {
				return fmt.Errorf("write piece %d: %w", i, werr)
			}
			if !written {
				return nil // a peer completed it
			}
			done += int64(m)
		}
		if err != nil && done < n {
			return fmt.Errorf("read piece %d: %w", i, err)
		}
	}
	if err := a.t.Piece(i).VerifyDataContext(ctx); err != nil {
		return fmt.Errorf("verify piece %d: %w", i, err)
	}
	if !ct.pieceComplete(i) {
		return fmt.Errorf("piece %d from origin failed verification", i)
	}
	return nil
}

// covered returns which pieces are held here or by a connected peer that is not an
// origin: the pieces not worth pulling from an origin.
func (e *Engine) covered(a *active) []bool {
	covered := a.ct.pieces()
	for _, pc := range a.t.PeerConns() {
		if e.origins.has(pc.RemoteAddr) {
			continue
		}
		it := pc.PeerPieces().Iterator()
		for it.HasNext() {
			if i := int(it.Next()); i < len(covered) {
				covered[i] = true
			}
		}
	}
	return covered
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
