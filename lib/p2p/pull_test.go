package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
)

func TestPickPull(t *testing.T) {
	covered := []bool{true, false, false, false, false, false}
	rank := []int{0, 1, 0, 2, 0, 1}
	if got := pickPull(covered, rank, 1); got != 2 {
		t.Fatalf("pick %d, want 2: the lowest owned piece not covered", got)
	}
	covered[2], covered[4] = true, true
	// Its share done, the agent takes the highest piece it ranks next for after the owner.
	if got := pickPull(covered, rank, 1); got != 5 {
		t.Fatalf("pick %d, want 5", got)
	}
	covered[1], covered[5] = true, true
	// Piece 3 has another agent next in line: left alone unless stuck.
	if got := pickPull(covered, rank, 1); got != -1 {
		t.Fatalf("pick %d, want -1", got)
	}
	if got := pickPull(covered, rank, len(rank)); got != 3 {
		t.Fatalf("stuck pick %d, want 3", got)
	}
	covered[3] = true
	if got := pickPull(covered, rank, len(rank)); got != -1 {
		t.Fatalf("pick %d with every piece covered, want -1", got)
	}
}

// TestPieceRanks: agents that know the same swarm share the pieces out exactly, each
// about evenly, and rank each piece differently; alone, an agent owns every piece.
func TestPieceRanks(t *testing.T) {
	const pieces, agents = 1024, 10
	ids := make([][20]byte, agents)
	for i := range ids {
		ids[i][0], ids[i][19] = byte(i), byte(7*i+1)
	}
	ranks := make([][]int, agents)
	for a := range agents {
		ranks[a] = pieceRanks(pieces, ids[a], ids)
		n := 0
		for _, r := range ranks[a] {
			if r == 0 {
				n++
			}
		}
		if n < pieces/agents/2 || n > 2*pieces/agents {
			t.Errorf("agent %d owns %d of %d pieces, want about %d", a, n, pieces, pieces/agents)
		}
	}
	for i := range pieces {
		seen := make([]bool, agents)
		for a := range agents {
			r := ranks[a][i]
			if r < 0 || r >= agents || seen[r] {
				t.Fatalf("piece %d: agent %d ranks %d, taken or out of range", i, a, r)
			}
			seen[r] = true
		}
	}
	for i, r := range pieceRanks(pieces, ids[0], nil) {
		if r != 0 {
			t.Fatalf("alone, piece %d ranks %d", i, r)
		}
	}
}

// rangesOf serves ranges of data, counting the bytes it hands out; fail makes it
// fail instead, slow makes each 64 KiB wait slow (an origin shared by many agents).
type rangesOf struct {
	data   []byte
	slow   time.Duration
	served atomic.Int64
	calls  atomic.Int64
	fail   atomic.Bool
}

func (r *rangesOf) open(_ context.Context, off, n int64) (io.ReadCloser, error) {
	r.calls.Add(1)
	if r.fail.Load() {
		return nil, errors.New("origin down")
	}
	return io.NopCloser(&slowReader{r: bytes.NewReader(r.data[off : off+n]), wait: r.slow, served: &r.served}), nil
}

type slowReader struct {
	r      io.Reader
	wait   time.Duration
	served *atomic.Int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.wait)
	n, err := s.r.Read(p[:min(len(p), 64<<10)])
	s.served.Add(int64(n))
	return n, err
}

// TestPullAloneFromOrigin: an agent with no peers at all gets every piece over HTTP;
// the origin is never a BitTorrent peer.
func TestPullAloneFromOrigin(t *testing.T) {
	t.Parallel()
	data := randomBlob(6<<20+12345, 21)
	d := digest.FromBytes(data)
	origin, res, tracker := seededOrigin(t, "127.0.0.40", data)
	agent := newNode(t, "127.0.0.41")
	src := &rangesOf{data: data}
	got := readAll(t, agent, d, res.InfoBytes, tracker, src.open)
	if got != d {
		t.Fatalf("read %s, want %s", got, d)
	}
	checkStored(t, agent, d, int64(len(data)))
	if up := origin.Stats().BytesUploaded; up != 0 {
		t.Errorf("origin sent %d bytes over BitTorrent, want 0 (pulled over HTTP)", up)
	}
	if pulled := agent.Stats().BytesPulled; pulled != int64(len(data)) {
		t.Errorf("pulled %d bytes, want the blob's %d", pulled, len(data))
	}
}

// TestPullFallsBackToBitTorrent: with the origins' HTTP down, the agent gives up the
// pull and fetches from the origin over BitTorrent.
func TestPullFallsBackToBitTorrent(t *testing.T) {
	t.Parallel()
	data := randomBlob(3<<20, 22)
	d := digest.FromBytes(data)
	_, res, tracker := seededOrigin(t, "127.0.0.42", data)
	agent := newNode(t, "127.0.0.43")
	src := &rangesOf{data: data}
	src.fail.Store(true)
	if got := readAll(t, agent, d, res.InfoBytes, tracker, src.open); got != d {
		t.Fatalf("read %s, want %s", got, d)
	}
	if calls := src.calls.Load(); calls < pullMaxFailures {
		t.Errorf("%d range requests before falling back, want %d", calls, pullMaxFailures)
	}
	if from := agent.Stats().BytesFromOrigins; from != int64(len(data)) {
		t.Errorf("%d bytes from the origin over BitTorrent, want %d", from, len(data))
	}
}

// TestPullSwarm: three agents pulling from a slow origin over HTTP and trading with
// each other all get the blob, pulling much less than the three blobs they'd pull
// without the swarm.
func TestPullSwarm(t *testing.T) {
	t.Parallel()
	data := randomBlob(24<<20, 23)
	d := digest.FromBytes(data)
	res, err := metainfo.Generate(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	tracker := newFakeTracker()
	src := &rangesOf{data: data, slow: 5 * time.Millisecond} // ~12 MiB/s per GET
	agents := []*node{newNode(t, "127.0.0.44"), newNode(t, "127.0.0.45"), newNode(t, "127.0.0.46")}
	var wg sync.WaitGroup
	got := make([]digest.Digest, len(agents))
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = readAll(t, a, d, res.InfoBytes, tracker, src.open)
		}()
	}
	wg.Wait()
	var fromPeers int64
	for i, a := range agents {
		if got[i] != d {
			t.Fatalf("agent %d read %s, want %s", i, got[i], d)
		}
		checkStored(t, a, d, int64(len(data)))
		fromPeers += a.Stats().BytesFromPeers
	}
	t.Logf("origin served %.2fx the blob over HTTP; agents traded %d bytes", float64(src.served.Load())/float64(len(data)), fromPeers)
	// Without the swarm each agent would pull the whole blob: 3x.
	if served := src.served.Load(); served >= 2*int64(len(data)) || fromPeers == 0 {
		t.Errorf("origin served %d bytes (%.2fx the blob), agents traded %d: the swarm was not used",
			served, float64(served)/float64(len(data)), fromPeers)
	}
}

// seededOrigin starts an engine seeding data, and a tracker that hands it out as the
// blob's origin.
func seededOrigin(t *testing.T, ip string, data []byte) (*node, metainfo.Result, *fakeTracker) {
	t.Helper()
	origin := newNode(t, ip)
	res, err := origin.store.Ingest(digest.FromBytes(data), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := origin.Seed(res.Digest, res.InfoBytes); err != nil {
		t.Fatal(err)
	}
	tracker := newFakeTracker()
	tracker.addOrigin(res.InfoHash, origin.Engine)
	return origin, res, tracker
}

// readAll fetches d through n, pulling from origin, and returns the sha256 of what a
// reader read.
func readAll(t *testing.T, n *node, d digest.Digest, info []byte, src PeerSource, origin OriginRanges) digest.Digest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tx, err := n.Fetch(ctx, d, info, src, origin)
	if err != nil {
		t.Error(err)
		return ""
	}
	r := tx.NewPassiveReader()
	defer r.Close()
	dg, err := digest.SHA256.FromReader(r)
	if err != nil {
		t.Error(err)
		return ""
	}
	if err := waitDone(t, tx); err != nil {
		t.Error(err)
	}
	return dg
}
