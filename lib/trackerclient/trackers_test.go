package trackerclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/p2p"
)

func TestMergeReplies(t *testing.T) {
	t.Parallel()
	a := p2p.Peer{PeerID: "a", IP: "10.0.0.1", Port: 1}
	b := p2p.Peer{PeerID: "b", IP: "10.0.0.2", Port: 1}
	aDone := a
	aDone.Complete = true
	o := p2p.Peer{IP: "10.0.0.9", Port: 9, Origin: true, Complete: true}
	for _, tc := range []struct {
		name    string
		replies []p2p.AnnounceReply
		want    p2p.AnnounceReply
	}{
		{"none", nil, p2p.AnnounceReply{}},
		{"one", []p2p.AnnounceReply{{IntervalSeconds: 3, Peers: []p2p.Peer{a, o}}}, p2p.AnnounceReply{IntervalSeconds: 3, Peers: []p2p.Peer{a, o}}},
		{"union, each peer once, first order", []p2p.AnnounceReply{
			{IntervalSeconds: 3, Peers: []p2p.Peer{a, o}},
			{IntervalSeconds: 3, Peers: []p2p.Peer{b, a, o}},
		}, p2p.AnnounceReply{IntervalSeconds: 3, Peers: []p2p.Peer{a, o, b}}},
		{"complete anywhere is complete", []p2p.AnnounceReply{
			{IntervalSeconds: 3, Peers: []p2p.Peer{a}},
			{IntervalSeconds: 3, Peers: []p2p.Peer{aDone}},
		}, p2p.AnnounceReply{IntervalSeconds: 3, Peers: []p2p.Peer{aDone}}},
		{"shortest interval, zero ignored", []p2p.AnnounceReply{
			{IntervalSeconds: 0}, {IntervalSeconds: 60}, {IntervalSeconds: 3},
		}, p2p.AnnounceReply{IntervalSeconds: 3}},
	} {
		if got := MergeReplies(tc.replies); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// fakeTracker answers announces with its own peer and metainfo requests with info,
// or 503 for both while down.
type fakeTracker struct {
	srv       *httptest.Server
	peer      p2p.Peer
	down      atomic.Bool
	announces atomic.Int64
	metainfos atomic.Int64
}

func newFakeTracker(t *testing.T, id string) *fakeTracker {
	t.Helper()
	f := &fakeTracker{peer: p2p.Peer{PeerID: id, IP: "10.0.0.1", Port: 1}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(ErrorBody{Error: CodeInternal, Message: "down"})
			return
		}
		switch {
		case r.URL.Path == "/health":
		case r.URL.Path == "/announce":
			f.announces.Add(1)
			_ = json.NewEncoder(w).Encode(p2p.AnnounceReply{IntervalSeconds: 3, Peers: []p2p.Peer{f.peer}})
		default:
			f.metainfos.Add(1)
			_, _ = w.Write([]byte("info-from-" + id))
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func newTrackers(t *testing.T, replicas int, fakes ...*fakeTracker) *Trackers {
	t.Helper()
	cfg := DefaultSetConfig()
	cfg.Replicas = replicas
	for _, f := range fakes {
		cfg.Static = append(cfg.Static, f.srv.URL)
	}
	ts, err := NewTrackers(cfg, nil, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func ids(r p2p.AnnounceReply) map[string]bool {
	out := map[string]bool{}
	for _, p := range r.Peers {
		out[p.PeerID] = true
	}
	return out
}

func TestAnnounceGoesToEveryOwnerAndFailsOver(t *testing.T) {
	t.Parallel()
	x, y, z := newFakeTracker(t, "x"), newFakeTracker(t, "y"), newFakeTracker(t, "z")
	ts := newTrackers(t, 2, x, y, z)
	ctx := context.Background()
	a := p2p.Announce{Digest: blob.String()}

	r, err := ts.Announce(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(r); len(got) != 2 || r.IntervalSeconds != 3 {
		t.Fatalf("hand-out %+v, want the peers of both owners", r)
	}
	owners := map[string]*fakeTracker{}
	for _, f := range []*fakeTracker{x, y, z} {
		if f.announces.Load() == 1 {
			owners[f.peer.PeerID] = f
		}
	}
	if len(owners) != 2 {
		t.Fatalf("announces reached %d trackers, want the 2 owners", len(owners))
	}

	// One owner down: the other still answers, the announce succeeds.
	var first *fakeTracker
	for _, f := range owners {
		first = f
		break
	}
	first.down.Store(true)
	r, err = ts.Announce(ctx, a)
	if err != nil || len(r.Peers) == 0 {
		t.Fatalf("with one owner down: %+v, %v", r, err)
	}
	// Every tracker down but one, which owns nothing: it takes the announces.
	for _, f := range owners {
		f.down.Store(true)
	}
	r, err = ts.Announce(ctx, a)
	if err != nil || len(r.Peers) != 1 || owners[r.Peers[0].PeerID] != nil {
		t.Fatalf("with both owners down: %+v, %v; want the third tracker's hand-out", r, err)
	}
	// All down: an error.
	x.down.Store(true)
	y.down.Store(true)
	z.down.Store(true)
	if _, err := ts.Announce(ctx, a); err == nil {
		t.Fatal("announce with every tracker down succeeded")
	}
}

func TestMetainfoFromFirstAnsweringTracker(t *testing.T) {
	t.Parallel()
	x, y := newFakeTracker(t, "x"), newFakeTracker(t, "y")
	ts := newTrackers(t, 2, x, y)
	ctx := context.Background()
	if _, err := ts.Metainfo(ctx, blob); err != nil {
		t.Fatal(err)
	}
	if n := x.metainfos.Load() + y.metainfos.Load(); n != 1 {
		t.Fatalf("%d metainfo requests, want 1", n)
	}
	x.down.Store(true)
	got, err := ts.Metainfo(ctx, blob)
	if err != nil || string(got) != "info-from-y" {
		t.Fatalf("got %q, %v; want y's answer", got, err)
	}
	y.down.Store(true)
	if _, err := ts.Metainfo(ctx, blob); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want an error that is not a miss", err)
	}
}

func TestMetainfoMissIsFinal(t *testing.T) {
	t.Parallel()
	var asked atomic.Int64
	miss := func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(ErrorBody{Error: CodeNotFound})
	}
	s1, s2 := httptest.NewServer(http.HandlerFunc(miss)), httptest.NewServer(http.HandlerFunc(miss))
	t.Cleanup(s1.Close)
	t.Cleanup(s2.Close)
	cfg := DefaultSetConfig()
	cfg.Static = []string{s1.URL, s2.URL}
	ts, err := NewTrackers(cfg, nil, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Metainfo(context.Background(), blob); !errors.Is(err, ErrNotFound) || asked.Load() != 1 {
		t.Fatalf("got %v after %d requests, want ErrNotFound after 1", err, asked.Load())
	}
}
