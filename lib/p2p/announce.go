package p2p

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/anacrolix/torrent"
	"go.uber.org/zap"
)

// Peer is a swarm member as the tracker hands it out.
type Peer struct {
	PeerID string `json:"peer_id"`
	IP     string `json:"ip"`
	Port   int    `json:"port"`
	// Origin marks a dedicated seeder; bytes from it count as source=origin.
	Origin bool `json:"origin"`
	// Complete marks a peer that holds the whole blob.
	Complete bool `json:"complete"`
}

// Announce tells the tracker that a peer takes part in a blob's swarm.
type Announce struct {
	// InfoHash is the torrent's infohash, 40 hex characters.
	InfoHash string `json:"info_hash"`
	// Digest is the blob's digest, "sha256:<hex>".
	Digest string `json:"digest"`
	// PeerID is the announcing engine's peer id, 40 hex characters.
	PeerID   string `json:"peer_id"`
	IP       string `json:"ip"`
	Port     int    `json:"port"`
	Complete bool   `json:"complete"`
}

// AnnounceReply is the tracker's answer: when to announce again, and peers to try.
type AnnounceReply struct {
	IntervalSeconds int    `json:"interval_seconds"`
	Peers           []Peer `json:"peers"`
}

// The compact form of a reply (POST /announce?compact=1, after BitTorrent's BEP 23)
// lists each peer as [peer_id, ip, port, flags] under "compact_peers" instead of an
// object under "peers": 50 IPv4 peers then fit the 4 KiB the tracker's HTTP server
// writes at once, so an answer costs one write(2) instead of two.
const (
	CompactOrigin   = 1 << 0 // flags bit: Peer.Origin
	CompactComplete = 1 << 1 // flags bit: Peer.Complete
)

// PeerSource finds the peers of a swarm: the tracker client, or a fake in tests.
// Implementations must be safe for concurrent use.
type PeerSource interface {
	Announce(ctx context.Context, a Announce) (AnnounceReply, error)
}

// Announce loop timing.
const (
	defaultInterval  = 3 * time.Second  // until the tracker says otherwise
	completeInterval = 60 * time.Second // once the blob is complete
	stallAfter       = 5 * time.Second  // no progress this long: ask for peers at once
	starveGap        = time.Second      // at most one starving announce per second
	loopTick         = 250 * time.Millisecond
	// A new download re-announces after fastStart, then twice as late each time until
	// the tracker's interval: in a flash crowd the first agents to announce learn of
	// the ones that announce just after them within a fraction of a second.
	fastStart       = 250 * time.Millisecond
	announceTimeout = 10 * time.Second
)

// announceLoop keeps a fetched torrent supplied with peers until it is dropped or the
// engine closes; schedule decides when to announce.
func (e *Engine) announceLoop(a *active, src PeerSource) {
	defer e.wg.Done()
	tick := time.NewTicker(loopTick)
	defer tick.Stop()
	done := a.ct.done
	if a.committed() {
		done = nil // nothing to wait for: announce as complete from the start
	}
	s := newSchedule(time.Now(), a.t.BytesCompleted())
	failures := 0
	for {
		now := time.Now()
		complete := a.committed()
		if s.due(now, complete, a.t.Stats().ActivePeers, a.t.BytesCompleted()) {
			interval, err := e.announce(a, src, complete)
			a.announced()
			failures = e.logAnnounce(a, err, failures)
			s.announced(now, complete, interval)
		}
		select {
		case <-e.ctx.Done():
			return
		case <-a.stop:
			return
		case <-done:
			done = nil
			if a.ct.err != nil {
				e.remove(a)
				return
			}
			s.now() // tell the tracker we are complete
		case <-a.pokeCh:
			s.now()
		case <-tick.C:
		}
	}
}

// logAnnounce logs the first failure of a run at warn, the rest at debug, and the
// recovery; it returns the new count of consecutive failures.
func (e *Engine) logAnnounce(a *active, err error, failures int) int {
	switch {
	case err == nil && failures > 0:
		e.log.Info("announce recovered", zap.Stringer("digest", a.d), zap.Int("failures", failures))
		return 0
	case err == nil:
		return 0
	case e.ctx.Err() != nil:
		return failures
	case failures == 0:
		e.log.Warn("announce failed", zap.Stringer("digest", a.d), zap.Error(err))
	default:
		e.log.Debug("announce failed", zap.Stringer("digest", a.d), zap.Error(err))
	}
	return failures + 1
}

// schedule decides when a torrent announces: at once, then after fastStart, doubling
// the gap until it reaches the interval, then every interval while downloading; at
// once (at most every starveGap) when there are no active peers or no progress for
// stallAfter; every completeInterval once complete. It does no I/O and is given the
// time.
type schedule struct {
	interval     time.Duration
	gap          time.Duration // fast-start gap, doubled per announce until interval
	next         time.Time     // zero: now
	last         time.Time     // last announce; zero: none yet
	progress     int64
	lastProgress time.Time
	starving     bool
}

func newSchedule(now time.Time, progress int64) *schedule {
	return &schedule{interval: defaultInterval, gap: fastStart, progress: progress, lastProgress: now}
}

// due reports whether to announce now, given the torrent's state.
func (s *schedule) due(now time.Time, complete bool, activePeers int, progress int64) bool {
	if progress != s.progress {
		s.progress, s.lastProgress = progress, now
	}
	s.starving = !complete && (activePeers == 0 || now.Sub(s.lastProgress) >= stallAfter) &&
		(s.last.IsZero() || now.Sub(s.last) >= starveGap)
	return s.starving || !now.Before(s.next)
}

// announced records an announce made at now; interval is the tracker's, 0 if unknown.
func (s *schedule) announced(now time.Time, complete bool, interval time.Duration) {
	if interval > 0 {
		s.interval = interval
	}
	s.last = now
	wait := s.interval
	if s.gap > 0 && s.gap < s.interval {
		wait = s.gap
		s.gap *= 2
	}
	s.next = now.Add(wait)
	if complete {
		s.next = now.Add(completeInterval)
	}
	if s.starving {
		s.lastProgress = now // give the new peers stallAfter before calling it stalled again
	}
}

// now makes the next due call true.
func (s *schedule) now() { s.next = time.Time{} }

// announce makes one announce and feeds the peers it returns to the torrent. It
// returns the tracker's interval (0 if it gave none).
func (e *Engine) announce(a *active, src PeerSource, complete bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(e.ctx, announceTimeout)
	defer cancel()
	reply, err := src.Announce(ctx, Announce{
		InfoHash: a.t.InfoHash().HexString(),
		Digest:   a.d.String(),
		PeerID:   e.peerID,
		IP:       e.ip.String(),
		Port:     e.port,
		Complete: complete,
	})
	if err != nil {
		return 0, fmt.Errorf("p2p announce %s: %w", a.d, err)
	}
	peers := e.peerInfos(reply.Peers, a.originPeers.Load())
	if len(peers) > 0 {
		a.t.AddPeers(peers)
	}
	a.setHandedOut(agentIDs(peers, &e.origins))
	return time.Duration(max(reply.IntervalSeconds, 0)) * time.Second, nil
}

// agentIDs returns the peer ids of the peers that are not origins.
func agentIDs(peers []torrent.PeerInfo, origins *originSet) [][20]byte {
	var ids [][20]byte
	for _, p := range peers {
		if p.Id != ([20]byte{}) && !origins.has(p.Addr) {
			ids = append(ids, p.Id)
		}
	}
	return ids
}

// peerInfos converts a hand-out for the client, skipping ourselves, malformed entries
// and, unless withOrigins, origins; it remembers which addresses are origins.
func (e *Engine) peerInfos(peers []Peer, withOrigins bool) []torrent.PeerInfo {
	out := make([]torrent.PeerInfo, 0, len(peers))
	for _, p := range peers {
		ip, err := netip.ParseAddr(p.IP)
		if err != nil || !ip.Is4() || p.Port <= 0 || p.Port > 65535 {
			continue
		}
		addr := netip.AddrPortFrom(ip, uint16(p.Port))
		if p.PeerID == e.peerID || addr == e.addr() {
			continue
		}
		if p.Origin {
			e.origins.add(addr)
			if !withOrigins {
				continue
			}
		}
		info := torrent.PeerInfo{
			Addr:   &net.TCPAddr{IP: ip.AsSlice(), Port: p.Port},
			Source: torrent.PeerSourceTracker,
		}
		if id, err := hex.DecodeString(p.PeerID); err == nil && len(id) == 20 {
			copy(info.Id[:], id)
		}
		out = append(out, info)
	}
	return out
}
