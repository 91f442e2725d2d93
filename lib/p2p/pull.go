package p2p

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
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
	pullStuckAfter  = 2 * time.Second        // nothing to pull this long: take any uncovered piece
	pullStallAfter  = 5 * time.Second        // no piece held here this long: pull pieces peers hold too
	pullPieceTime   = 2 * time.Minute        // one piece over HTTP, at most
	pullMaxFailures = 5                      // consecutive failed pieces before falling back to BT
	pullBackoff     = 250 * time.Millisecond // after a failure, doubled per failure
	pullCopyBuf     = 256 << 10
	// soloPullWindow is how many pieces an agent that knows no other agent pulls at
	// once: nobody shares the origin with it, and one piece at a time left the
	// loopback pull at ~330 MiB/s, four at ~390 (docs/BENCHMARKS.md).
	soloPullWindow = 4
)

// errLocalWrite marks a pull that failed writing here, not reading from the origin:
// retrying elsewhere cannot help.
var errLocalWrite = errors.New("write to the partial file failed")

// pickPull decides which piece an agent pulls from the origins next. The pieces are
// shared out among the swarm's agents by rendezvous hashing of (peer id, piece): each
// agent pulls its own share from the lowest piece up, leaving pieces a peer holds
// already to the swarm. With every agent's view of the swarm the same, the origins
// send each piece once. Done with its share, an agent helps the others: it takes the
// pieces it ranks next after their owner for, from the highest down, so it meets the
// owner, who works upwards, only at the end of the owner's share; this also covers the
// share of an agent that is gone. Only an agent with nothing to do for pullStuckAfter
// takes pieces it ranks lower for (another agent ranks next for them and may be
// pulling them). Views differ for a moment as agents join or leave. It does no I/O.
//
// rank[i] is the agent's place among the swarm for piece i (0: its owner); pieces it
// ranks after maxRank for are left alone. It returns the piece to pull, or -1 when
// none is left that is not covered (held here, held by a connected peer, or being
// pulled already).
func pickPull(covered []bool, rank []int, maxRank int) int {
	best := -1
	for i, c := range covered {
		switch {
		case c || rank[i] > maxRank:
		case rank[i] == 0:
			return i
		case best < 0 || rank[i] <= rank[best]:
			best = i
		}
	}
	return best
}

// pieceRanks returns self's place for each of n pieces among the swarm's members
// (self among them or not): members are ordered by a hash of (member, piece), the
// same order on every agent that knows the same members.
func pieceRanks(n int, self [20]byte, members [][20]byte) []int {
	selfKey := memberKey(self)
	keys := make([]uint64, 0, len(members))
	seen := map[[20]byte]bool{self: true}
	for _, m := range members {
		if !seen[m] {
			seen[m] = true
			keys = append(keys, memberKey(m))
		}
	}
	rank := make([]int, n)
	for i := range rank {
		mine := rendezvous(selfKey, i)
		for _, k := range keys {
			if h := rendezvous(k, i); h > mine || h == mine && k > selfKey {
				rank[i]++
			}
		}
	}
	return rank
}

func memberKey(id [20]byte) uint64 {
	h := fnv.New64a()
	h.Write(id[:])
	return h.Sum64()
}

// rendezvous is splitmix64 of a member's key and a piece index.
func rendezvous(key uint64, piece int) uint64 {
	z := key ^ (uint64(piece)+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// pull fetches a's pieces from the origins over HTTP, Config.OriginWindowPieces at a
// time (soloPullWindow while the agent knows no other agent), until every piece is
// held here; pieces a connected peer holds are left to the
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

	ps := &pullState{a: a, inflight: make([]bool, a.t.NumPieces())}
	var wg sync.WaitGroup
	for w := range max(e.cfg.OriginWindowPieces, soloPullWindow) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.pullWorker(ctx, ps, open, w >= e.cfg.OriginWindowPieces)
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
	inflight []bool
	failures int // consecutive
	gaveUp   bool
	lastErr  error
}

// claim picks the next piece to pull and marks it in flight, or returns -1.
func (ps *pullState) claim(covered []bool, rank []int, maxRank int) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, f := range ps.inflight {
		covered[i] = covered[i] || f
	}
	i := pickPull(covered, rank, maxRank)
	// covered was read before this lock: a piece another worker finished since then
	// is no longer in flight but held.
	for i >= 0 && ps.a.ct.pieceComplete(i) {
		covered[i] = true
		i = pickPull(covered, rank, maxRank)
	}
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

// pullWorker pulls pieces until the blob is whole; a solo worker only while the agent
// knows no other agent.
func (e *Engine) pullWorker(ctx context.Context, ps *pullState, open OriginRanges, solo bool) {
	a := ps.a
	buf := make([]byte, min(pullCopyBuf, a.ct.pieceLen))
	// Until the tracker has answered, every agent of a flash crowd would think itself
	// alone, owning every piece, and pull the same first ones.
	select {
	case <-a.answered:
	case <-ctx.Done():
		return
	}
	var idleSince time.Time // zero while there is something to pull
	held, progressAt := -1, time.Now()
	for ctx.Err() == nil {
		covered, members := e.swarmView(a)
		if solo && len(members) > 0 {
			sleepCtx(ctx, pullIdle)
			continue
		}
		maxRank := 1
		if !idleSince.IsZero() && time.Since(idleSince) >= pullStuckAfter {
			maxRank = len(covered) // any
		}
		if n := a.ct.held(); n != held {
			held, progressAt = n, time.Now()
		} else if time.Since(progressAt) >= pullStallAfter {
			// No piece arrived for a while although peers hold the missing ones: the
			// client is not fetching them (seen with anacrolix/torrent v1.61 in the
			// devcluster). Pull them; the origin is the source of truth.
			covered = a.ct.pieces()
		}
		i := ps.claim(covered, pieceRanks(len(covered), e.rawID, members), maxRank)
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
		if errors.Is(err, errLocalWrite) {
			e.fail(a, fmt.Errorf("p2p fetch %s: %w", a.d, err))
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
				return fmt.Errorf("write piece %d: %w: %w", i, errLocalWrite, werr)
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
	before := ct.verifyCount(i)
	if err := a.t.Piece(i).VerifyDataContext(ctx); err != nil {
		return fmt.Errorf("verify piece %d: %w", i, err)
	}
	if !ct.waitVerified(ctx, i, before) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("verify piece %d: %w", i, err)
		}
		return fmt.Errorf("piece %d from origin failed verification", i)
	}
	return nil
}

// swarmView returns which pieces are held here or by a connected peer that is not an
// origin (the pieces not worth pulling from an origin), and the peer ids of the swarm's
// agents: those connected, and those the tracker handed out last (connections take a
// moment in a flash crowd).
func (e *Engine) swarmView(a *active) (covered []bool, members [][20]byte) {
	covered = a.ct.pieces()
	members = a.handedOut()
	for _, pc := range a.t.PeerConns() {
		if e.origins.has(pc.RemoteAddr) {
			continue
		}
		members = append(members, pc.PeerID)
		it := pc.PeerPieces().Iterator()
		for it.HasNext() {
			if i := int(it.Next()); i < len(covered) {
				covered[i] = true
			}
		}
	}
	return covered, members
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
