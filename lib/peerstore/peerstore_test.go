package peerstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/p2p"
)

const ih = "0123456789abcdef0123456789abcdef01234567"

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func peer(n int, complete bool) p2p.Peer {
	return p2p.Peer{PeerID: fmt.Sprintf("%040x", n), IP: fmt.Sprintf("10.0.%d.%d", n/256, n%256), Port: 6881, Complete: complete}
}

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

func ids(ps []p2p.Peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.PeerID
		if p.Origin {
			out[i] = "origin:" + p.IP
		}
	}
	return out
}

func TestHandOutOrderAndExclusion(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Minute, 50)
	for n := 1; n <= 6; n++ {
		s.Announce(t0, ih, peer(n, n%2 == 0)) // 2, 4, 6 complete
	}
	origins := []p2p.Peer{{IP: "10.9.0.1", Port: 15201}, {IP: "10.9.0.2", Port: 15201}}
	for seed := range uint64(20) {
		got := s.Peers(t0, ih, peer(1, false).PeerID, origins, rng(seed))
		if len(got) != 7 {
			t.Fatalf("seed %d: %d peers, want 2 origins + 5 others: %v", seed, len(got), ids(got))
		}
		for i, p := range got {
			switch {
			case i < 2 && (!p.Origin || !p.Complete):
				t.Fatalf("seed %d: position %d is not an origin: %v", seed, i, ids(got))
			case i >= 2 && i < 5 && (p.Origin || !p.Complete):
				t.Fatalf("seed %d: position %d is not a complete peer: %v", seed, i, ids(got))
			case i >= 5 && (p.Origin || p.Complete):
				t.Fatalf("seed %d: position %d is not a downloading peer: %v", seed, i, ids(got))
			case p.PeerID == peer(1, false).PeerID:
				t.Fatalf("seed %d: caller handed itself: %v", seed, ids(got))
			}
		}
	}
	if origins[0].Origin {
		t.Fatal("Peers modified the origins slice")
	}
}

func TestHandOutIsShuffled(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Minute, 50)
	for n := 1; n <= 10; n++ {
		s.Announce(t0, ih, peer(n, false))
	}
	origins := []p2p.Peer{{IP: "10.9.0.1", Port: 1}, {IP: "10.9.0.2", Port: 1}, {IP: "10.9.0.3", Port: 1}}
	firstPeer, firstOrigin := map[string]bool{}, map[string]bool{}
	for seed := range uint64(50) {
		got := s.Peers(t0, ih, "", origins, rng(seed))
		firstOrigin[got[0].IP] = true
		firstPeer[got[3].PeerID] = true
	}
	if len(firstOrigin) < 2 || len(firstPeer) < 2 {
		t.Fatalf("hand-out not shuffled: first origins %v, first peers %v", firstOrigin, firstPeer)
	}
}

func TestExcludesCallerAddress(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Minute, 50)
	me := peer(1, false)
	s.Announce(t0, ih, me)
	s.Announce(t0, ih, peer(2, false))
	origins := []p2p.Peer{{IP: me.IP, Port: me.Port}} // nonsense, but must not hand out self
	got := s.Peers(t0, ih, me.PeerID, origins, rng(1))
	if want := []string{peer(2, false).PeerID}; !slices.Equal(ids(got), want) {
		t.Fatalf("got %v, want %v", ids(got), want)
	}
}

func TestRestartedPeerReplacesOldIncarnation(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Minute, 50)
	old := peer(1, true)
	s.Announce(t0, ih, old)
	fresh := old
	fresh.PeerID, fresh.Complete = fmt.Sprintf("%040x", 999), false
	s.Announce(t0, ih, fresh)
	if st := s.Stats(); st.Peers != 1 {
		t.Fatalf("stats %+v, want the old peer id dropped", st)
	}
	if got := s.Peers(t0, ih, "", nil, rng(1)); !slices.Equal(ids(got), []string{fresh.PeerID}) {
		t.Fatalf("got %v", ids(got))
	}
}

func TestUpsertMovesBetweenGroupsAndAddresses(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Minute, 50)
	p := peer(1, false)
	s.Announce(t0, ih, p)
	p.Complete, p.IP = true, "10.1.1.1"
	s.Announce(t0, ih, p)
	got := s.Peers(t0, ih, "", nil, rng(1))
	if len(got) != 1 || got[0] != p {
		t.Fatalf("got %+v, want %+v", got, p)
	}
	// The old address is free for another peer, which must not displace p.
	q := peer(1, false)
	q.PeerID = fmt.Sprintf("%040x", 2)
	s.Announce(t0, ih, q)
	if st := s.Stats(); st != (Stats{Swarms: 1, Peers: 2}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, 70*time.Second, 50)
	s.Announce(t0, ih, peer(1, false))
	s.Announce(t0, ih, peer(2, true))
	other := "fedcba9876543210fedcba9876543210fedcba98"
	s.Announce(t0, other, peer(3, false))

	at := func(d time.Duration) []string { return ids(s.Peers(t0.Add(d), ih, "", nil, rng(1))) }
	if got := at(10 * time.Second); len(got) != 2 {
		t.Fatalf("at ttl: %v, want both (expired only after ttl)", got)
	}
	if got := at(11 * time.Second); !slices.Equal(got, []string{peer(2, true).PeerID}) {
		t.Fatalf("after ttl: %v, want the seeder only", got)
	}
	if n := s.Expire(t0.Add(11 * time.Second)); n != 2 {
		t.Fatalf("expired %d, want 2", n)
	}
	if st := s.Stats(); st != (Stats{Swarms: 1, Peers: 1}) {
		t.Fatalf("stats %+v, want the empty swarm dropped", st)
	}
	s.Announce(t0.Add(60*time.Second), ih, peer(2, true)) // seeder re-announces
	if n := s.Expire(t0.Add(120 * time.Second)); n != 0 {
		t.Fatalf("expired %d, want the re-announced seeder kept", n)
	}
	if n := s.Expire(t0.Add(131 * time.Second)); n != 1 || s.Stats() != (Stats{}) {
		t.Fatalf("expired %d, stats %+v", n, s.Stats())
	}
}

func TestMaxPeers(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Minute, 5)
	for n := 1; n <= 100; n++ {
		s.Announce(t0, ih, peer(n, n <= 3))
	}
	origins := []p2p.Peer{{IP: "10.9.0.1", Port: 1}}
	got := s.Peers(t0, ih, "", origins, rng(7))
	if len(got) != 5 || !got[0].Origin {
		t.Fatalf("got %v", ids(got))
	}
	complete := 0
	for _, p := range got[1:] {
		if p.Complete {
			complete++
		}
	}
	if complete != 3 {
		t.Fatalf("got %v, want every complete peer before downloading ones", ids(got))
	}
	many := make([]p2p.Peer, 8)
	for i := range many {
		many[i] = p2p.Peer{IP: fmt.Sprintf("10.9.0.%d", i), Port: 1}
	}
	if got := s.Peers(t0, ih, "", many, rng(7)); len(got) != 5 {
		t.Fatalf("origins alone: %d peers, want 5", len(got))
	}
}

func TestUnknownSwarm(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Minute, 50)
	if got := s.Peers(t0, ih, "x", nil, rng(1)); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
	origins := []p2p.Peer{{IP: "10.9.0.1", Port: 1}}
	if got := s.Peers(t0, ih, "x", origins, rng(1)); len(got) != 1 || !got[0].Origin {
		t.Fatalf("got %v", got)
	}
}

// TestSamplingKeepsIndexes churns a swarm through announces, hand-outs and expiry and
// checks every internal index against the others.
func TestSamplingKeepsIndexes(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, 20*time.Second, 8)
	r := rng(42)
	now := t0
	for step := range 5000 {
		now = now.Add(100 * time.Millisecond)
		n := r.IntN(60)
		p := peer(n, r.IntN(3) == 0)
		if r.IntN(10) == 0 {
			p.PeerID = fmt.Sprintf("%040x", 1000+step) // a restart at the same address
		}
		s.Announce(now, ih, p)
		s.Peers(now, ih, p.PeerID, nil, r)
		if step%97 == 0 {
			s.Expire(now)
		}
		checkIndexes(t, s)
	}
}

func checkIndexes(t *testing.T, s *Store) {
	t.Helper()
	total := 0
	for i := range s.shards {
		sh := &s.shards[i]
		total += sh.peers
		count := 0
		for _, sw := range sh.swarms {
			count += len(sw.byID)
			if len(sw.byAddr) != len(sw.byID) || len(sw.groups[0])+len(sw.groups[1]) != len(sw.byID) {
				t.Fatalf("swarm sizes disagree: id %d addr %d groups %d+%d", len(sw.byID), len(sw.byAddr), len(sw.groups[0]), len(sw.groups[1]))
			}
			for g, list := range sw.groups {
				for idx, e := range list {
					if e.group != g || e.index != idx || sw.byID[e.peer.PeerID] != e || sw.byAddr[addr{e.peer.IP, e.peer.Port}] != e {
						t.Fatalf("entry %+v at group %d index %d is mis-indexed", e, g, idx)
					}
				}
			}
		}
		if count != sh.peers {
			t.Fatalf("shard counts %d peers, holds %d", sh.peers, count)
		}
	}
	if total != s.Stats().Peers {
		t.Fatal("stats disagree")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Minute, 50)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			r := rng(uint64(w))
			for n := range 500 {
				h := fmt.Sprintf("%040x", n%7)
				s.Announce(t0, h, peer(w*1000+n, n%2 == 0))
				s.Peers(t0, h, "", nil, r)
				if n%50 == 0 {
					s.Expire(t0)
					s.Stats()
				}
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Peers != 2000 || st.Swarms != 7 {
		t.Fatalf("stats %+v", st)
	}
}

func BenchmarkAnnounceAndPeers(b *testing.B) {
	s := New(10*time.Second, time.Minute, 50)
	const swarms, perSwarm = 100, 2000
	for h := range swarms {
		for n := range perSwarm {
			s.Announce(t0, fmt.Sprintf("%040x", h), peer(n, n%3 == 0))
		}
	}
	hashes := make([]string, swarms)
	for h := range hashes {
		hashes[h] = fmt.Sprintf("%040x", h)
	}
	origins := []p2p.Peer{{IP: "10.9.0.1", Port: 1}}
	b.RunParallel(func(pb *testing.PB) {
		r := rng(rand.Uint64())
		i := 0
		for pb.Next() {
			i++
			p := peer(i%perSwarm, i%3 == 0)
			h := hashes[i%swarms]
			s.Announce(t0, h, p)
			s.Peers(t0, h, p.PeerID, origins, r)
		}
	})
}

// AnnouncePeers is Announce then Peers, appending to the slice it is given.
func TestAnnouncePeersIsAnnounceThenPeers(t *testing.T) {
	t.Parallel()
	a, b := New(10*time.Second, time.Minute, 5), New(10*time.Second, time.Minute, 5)
	origins := []p2p.Peer{{IP: "10.9.0.1", Port: 15201}}
	dst := []p2p.Peer{{PeerID: "kept"}}
	for n := 1; n <= 12; n++ {
		me := peer(n, n%4 == 0)
		got := a.AnnouncePeers(t0, ih, me, origins, rng(uint64(n)), dst[:1])
		b.Announce(t0, ih, me)
		want := b.Peers(t0, ih, me.PeerID, origins, rng(uint64(n)))
		if got[0].PeerID != "kept" || !slices.Equal(got[1:], want) {
			t.Fatalf("announce %d: got %v, want [kept] + %v", n, ids(got), ids(want))
		}
		dst = got[:0]
	}
	if a.Stats() != b.Stats() {
		t.Fatalf("stats %+v, want %+v", a.Stats(), b.Stats())
	}
	checkIndexes(t, a)
}
