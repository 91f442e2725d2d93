// Package peerstore is the tracker's in-memory record of who takes part in which swarm,
// and its hand-out policy. It is a pure core: no goroutines, no clock, no I/O; every
// method is given the time, and Peers is given its randomness.
//
// Layout, per infohash (one swarm):
//
//	swarm
//	├── byID    peer id  -> entry   (an announce upserts by peer id)
//	├── byAddr  ip:port  -> entry   (a new peer id at a known address replaces the old one)
//	└── groups  [complete, downloading] []*entry, sampled in place by Peers
//
// Swarms are spread over shards by infohash, each with its own mutex, so announces of
// different blobs rarely contend. A peer is expired once it has not announced for its
// TTL (ttl while downloading, seederTTL once complete); expired peers are never handed
// out and are dropped by Expire.
package peerstore

import (
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"time"
	"unsafe"

	"github.com/shoal-p2p/shoal/lib/p2p"
)

const numShards = 32

// Stats counts what the store holds, expired peers included until Expire runs.
type Stats struct {
	Swarms int
	Peers  int
}

// Store holds the swarms. Safe for concurrent use.
type Store struct {
	ttl       time.Duration
	seederTTL time.Duration
	maxPeers  int
	seed      maphash.Seed
	shards    [numShards]shard
}

type shard struct {
	mu     sync.Mutex
	swarms map[string]*swarm
	peers  int
}

type swarm struct {
	byID   map[string]*entry
	byAddr map[addr]*entry
	groups [2][]*entry // groupComplete, groupDownloading
}

const (
	groupComplete = iota
	groupDownloading
)

type addr struct {
	ip   string
	port int
}

type entry struct {
	peer    p2p.Peer
	expires time.Time
	group   int
	index   int // position in swarm.groups[group]
	// inline holds the bytes of peer.PeerID and peer.IP as the entry was created,
	// when they fit: a hand-out copies the strings of ~50 random entries, and with
	// the strings inside the entry that costs no cache misses beyond the entry's
	// own. Written once, before any string refers to it; never modified after.
	inline [inlineLen]byte
}

// inlineLen fits a 40-hex peer id and an IPv6 address.
const inlineLen = 88

// newEntry returns an entry for p, holding its peer id and address strings itself
// when they fit.
func newEntry(p p2p.Peer) *entry {
	e := &entry{group: -1}
	if n := len(p.PeerID) + len(p.IP); n > 0 && n <= inlineLen {
		copy(e.inline[:], p.PeerID)
		copy(e.inline[len(p.PeerID):], p.IP)
		// The strings alias e.inline, which is never written again: immutable.
		p.PeerID = unsafe.String(&e.inline[0], len(p.PeerID))
		p.IP = unsafe.String(&e.inline[len(p.PeerID)], len(p.IP))
	}
	e.peer = p
	return e
}

// New returns an empty store. A peer still downloading is kept for ttl after its last
// announce, a complete one for seederTTL (raised to ttl if smaller): seeders announce
// less often. Peers hands out at most maxPeers (at least 1).
func New(ttl, seederTTL time.Duration, maxPeers int) *Store {
	s := &Store{ttl: ttl, seederTTL: max(seederTTL, ttl), maxPeers: max(maxPeers, 1), seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].swarms = make(map[string]*swarm)
	}
	return s
}

func (s *Store) shard(infoHash string) *shard {
	return &s.shards[maphash.String(s.seed, infoHash)%numShards]
}

// Announce records that p takes part in infoHash's swarm as of now: it upserts by
// p.PeerID (address and completeness follow the latest announce) and drops any other
// peer id announced from the same ip:port (an earlier run of the same agent). Origin
// is ignored. The caller validates p.
func (s *Store) Announce(now time.Time, infoHash string, p p2p.Peer) {
	sh := s.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s.announce(sh, now, infoHash, p)
}

// AnnouncePeers is Announce of p followed by Peers for it (excluding p), under one
// lock: the tracker's announce. The hand-out is appended to dst, which may be reused
// between calls.
func (s *Store) AnnouncePeers(now time.Time, infoHash string, p p2p.Peer, origins []p2p.Peer, rng *rand.Rand, dst []p2p.Peer) []p2p.Peer {
	sh := s.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw, self := s.announce(sh, now, infoHash, p)
	return s.handOut(dst, sw, self, now, origins, rng)
}

// announce is Announce with sh locked; it returns the swarm and p's entry.
func (s *Store) announce(sh *shard, now time.Time, infoHash string, p p2p.Peer) (*swarm, *entry) {
	p.Origin = false
	a := addr{p.IP, p.Port}
	ttl := s.ttl
	if p.Complete {
		ttl = s.seederTTL
	}
	sw := sh.swarms[infoHash]
	if sw == nil {
		sw = &swarm{byID: make(map[string]*entry), byAddr: make(map[addr]*entry)}
		sh.swarms[infoHash] = sw
	}
	e := sw.byID[p.PeerID]
	if e != nil && e.peer.IP == p.IP && e.peer.Port == p.Port {
		// The common case, a member announcing again from where it was: byAddr[a]
		// is e already, and e keeps its strings.
		p.PeerID, p.IP = e.peer.PeerID, e.peer.IP
	} else {
		if other := sw.byAddr[a]; other != nil && other.peer.PeerID != p.PeerID {
			sw.remove(other)
			sh.peers--
		}
		if e == nil {
			e = newEntry(p)
			p = e.peer
			sw.byID[p.PeerID] = e
			sh.peers++
		} else {
			delete(sw.byAddr, addr{e.peer.IP, e.peer.Port})
			p.PeerID = e.peer.PeerID
		}
		sw.byAddr[addr{p.IP, p.Port}] = e
	}
	e.peer = p
	e.expires = now.Add(ttl)
	group := groupDownloading
	if p.Complete {
		group = groupComplete
	}
	if e.group != group {
		if e.group >= 0 {
			sw.unlink(e)
		}
		e.group, e.index = group, len(sw.groups[group])
		sw.groups[group] = append(sw.groups[group], e)
	}
	return sw, e
}

// Peers returns the hand-out for a member of infoHash's swarm: origins first (marked
// Origin and Complete), then complete peers, then the rest, each group in random order
// drawn from rng, at most maxPeers in all. The peer with id exclude, and anything at
// its ip:port, is left out, as are expired peers. Origins must hold the blob; the slice
// is not modified. Peers reorders the store's internal lists (it samples them in place).
func (s *Store) Peers(now time.Time, infoHash, exclude string, origins []p2p.Peer, rng *rand.Rand) []p2p.Peer {
	sh := s.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw := sh.swarms[infoHash]
	var self *entry
	size := len(origins)
	if sw != nil {
		self = sw.byID[exclude]
		size += len(sw.byID)
	}
	return s.handOut(make([]p2p.Peer, 0, min(size, s.maxPeers)), sw, self, now, origins, rng)
}

// handOut appends the hand-out to out: see Peers. self is the caller's entry (nil if
// it is not in the swarm); sw may be nil. A swarm holds one entry per ip:port, so
// leaving out self leaves out everything at its address.
func (s *Store) handOut(out []p2p.Peer, sw *swarm, self *entry, now time.Time, origins []p2p.Peer, rng *rand.Rand) []p2p.Peer {
	first := len(out)
	for _, o := range origins {
		if self != nil && o.IP == self.peer.IP && o.Port == self.peer.Port {
			continue
		}
		o.Origin, o.Complete = true, true
		out = append(out, o)
	}
	got := out[first:]
	rng.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
	if len(got) >= s.maxPeers {
		return out[:first+s.maxPeers]
	}
	if sw == nil {
		return out
	}
	limit := first + s.maxPeers
	for g := range sw.groups {
		out = sample(out, limit, sw.groups[g], now, self, rng)
	}
	return out
}

// sample appends live members of list other than self to out in random order until
// out holds limit: a partial Fisher-Yates shuffle of list itself, so it costs
// O(maxPeers), not O(swarm).
func sample(out []p2p.Peer, limit int, list []*entry, now time.Time, self *entry, rng *rand.Rand) []p2p.Peer {
	for i := 0; i < len(list) && len(out) < limit; i++ {
		j := i + rng.IntN(len(list)-i)
		list[i], list[j] = list[j], list[i]
		list[i].index, list[j].index = i, j
		e := list[i]
		if e == self || now.After(e.expires) {
			continue
		}
		out = append(out, e.peer)
	}
	return out
}

// Expire drops the peers expired at now, and swarms left empty. It returns how many
// peers it dropped.
func (s *Store) Expire(now time.Time) int {
	dropped := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for ih, sw := range sh.swarms {
			for _, e := range sw.byID {
				if now.After(e.expires) {
					sw.remove(e)
					sh.peers--
					dropped++
				}
			}
			if len(sw.byID) == 0 {
				delete(sh.swarms, ih)
			}
		}
		sh.mu.Unlock()
	}
	return dropped
}

// Stats returns the number of swarms and peers held.
func (s *Store) Stats() Stats {
	var st Stats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Swarms += len(sh.swarms)
		st.Peers += sh.peers
		sh.mu.Unlock()
	}
	return st
}

// remove deletes e from every index of the swarm.
func (sw *swarm) remove(e *entry) {
	delete(sw.byID, e.peer.PeerID)
	if a := (addr{e.peer.IP, e.peer.Port}); sw.byAddr[a] == e {
		delete(sw.byAddr, a)
	}
	sw.unlink(e)
}

// unlink takes e out of its group list by swapping the last member into its place.
func (sw *swarm) unlink(e *entry) {
	list := sw.groups[e.group]
	last := len(list) - 1
	list[e.index] = list[last]
	list[e.index].index = e.index
	list[last] = nil
	sw.groups[e.group] = list[:last]
	e.group = -1
}
