package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/peerstore"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
)

const (
	// maxBlobs bounds the metainfo cache (a small blob's info is ~1 KiB, a 4 GiB one's
	// ~20 KiB). Metainfo never changes for a digest, so an evicted entry is only a
	// refetch away.
	maxBlobs = 10000
	// touchEvery is how long a cached blob is trusted to be seeded by the origin that
	// served it. Past that, the next request for it asks that origin for the metainfo
	// again (in the background), which keeps the origin seeding: an origin drops a blob
	// idle for its p2p seed_idle (default 10m), which must stay above this.
	touchEvery = time.Minute
	// announceWait bounds how long an announce for a blob the tracker does not know
	// yet waits for an origin to take it up; the fetch itself goes on, and the origin
	// is handed out from the next announce.
	announceWait = 2 * time.Second
	// fetchTimeout bounds a metainfo fetch, during which an origin may be pulling the
	// whole blob from its backend.
	fetchTimeout = 10 * time.Minute
	// peerTimeout bounds asking an origin for its P2P address.
	peerTimeout = 10 * time.Second
	// maxAnnounceBody bounds an announce request body.
	maxAnnounceBody = 64 << 10
)

var (
	errBadRequest = errors.New("bad request")
	errNotFound   = errors.New("no origin holds the blob")
	errUpstream   = errors.New("origins failed")
)

// Server is the tracker's HTTP API over its peer store and the origins.
type Server struct {
	cfg     Config
	origins *originset.Set
	store   *peerstore.Store
	log     *zap.Logger
	m       serverMetrics
	now     func() time.Time // time.Now; a test clock in tests

	fetches singleflight.Group // metainfo, by digest
	peers   singleflight.Group // origin P2P addresses, by origin URL

	mu        sync.Mutex
	maxBlobs  int
	byDigest  map[digest.Digest]*blob
	byHash    map[string]*blob
	peerAddrs map[string]p2p.Peer // origins' P2P addresses by base URL, learnt on first need
}

// blob is a cached metainfo and the origin that last served it, so seeds it. It is
// never modified; a refresh replaces it.
type blob struct {
	digest   digest.Digest
	infoHash string // lower-case hex
	info     []byte
	origin   *originclient.Client
	touched  time.Time
}

type serverMetrics struct {
	announces, badRequests                 tally.Counter
	metainfoHits, metainfoMisses           tally.Counter
	originFetches, originErrors, refreshes tally.Counter
	swarms, peers, blobs                   tally.Gauge
}

// NewServer wires the tracker API. A blob's metainfo is asked of origins in the
// blob's placement order.
func NewServer(cfg Config, origins *originset.Set, store *peerstore.Store, log *zap.Logger, scope tally.Scope) *Server {
	return &Server{
		cfg:     cfg,
		origins: origins,
		store:   store,
		log:     log,
		now:     time.Now,
		m: serverMetrics{
			announces:      scope.Counter("announces"),
			badRequests:    scope.Counter("bad_requests"),
			metainfoHits:   scope.Counter("metainfo_hits"),
			metainfoMisses: scope.Counter("metainfo_misses"),
			originFetches:  scope.Counter("origin_metainfo_fetches"),
			originErrors:   scope.Counter("origin_errors"),
			refreshes:      scope.Counter("origin_refreshes"),
			swarms:         scope.Gauge("swarms"),
			peers:          scope.Gauge("peers"),
			blobs:          scope.Gauge("cached_metainfo"),
		},
		maxBlobs:  maxBlobs,
		byDigest:  make(map[digest.Digest]*blob),
		byHash:    make(map[string]*blob),
		peerAddrs: make(map[string]p2p.Peer),
	}
}

// Handler lists every route of the tracker.
func (s *Server) Handler(metrics http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(httpserver.AccessLog(s.log), backend.NamespaceMiddleware)
	httpserver.MountOps(r, metrics, nil)
	r.Get("/metainfo/{digest}", s.handle(s.getMetainfo))
	r.Post("/announce", s.handle(s.announce))
	return r
}

// ExpireLoop drops expired peers and updates the gauges every interval until ctx ends.
func (s *Server) ExpireLoop(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.expire()
		}
	}
}

func (s *Server) expire() {
	n := s.store.Expire(s.now())
	st := s.store.Stats()
	s.m.swarms.Update(float64(st.Swarms))
	s.m.peers.Update(float64(st.Peers))
	s.mu.Lock()
	s.m.blobs.Update(float64(len(s.byDigest)))
	s.mu.Unlock()
	if n > 0 {
		s.log.Debug("expired peers", zap.Int("peers", n), zap.Int("swarms", st.Swarms), zap.Int("left", st.Peers))
	}
}

// handle is the one error edge: it maps errors to statuses and codes.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		status, code := http.StatusInternalServerError, trackerclient.CodeInternal
		switch {
		case errors.Is(err, errBadRequest):
			status, code = http.StatusBadRequest, trackerclient.CodeBadRequest
			s.m.badRequests.Inc(1)
		case errors.Is(err, errNotFound):
			status, code = http.StatusNotFound, trackerclient.CodeNotFound
		case errors.Is(err, errUpstream):
			status, code = http.StatusBadGateway, trackerclient.CodeUpstream
			s.log.Warn("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		case r.Context().Err() != nil:
			return // the client has gone
		default:
			s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		}
		writeJSON(w, status, trackerclient.ErrorBody{Error: code, Message: err.Error()})
	}
}

// getMetainfo answers d's info dictionary from the cache, else from the first of d's
// origins that has it (which starts seeding it).
func (s *Server) getMetainfo(w http.ResponseWriter, r *http.Request) error {
	d, err := parseDigest(chi.URLParam(r, "digest"))
	if err != nil {
		return err
	}
	b := s.cached(d)
	if b != nil {
		s.m.metainfoHits.Inc(1)
	} else {
		s.m.metainfoMisses.Inc(1)
		select {
		case res := <-s.load(r.Context(), d):
			if res.Err != nil {
				return res.Err
			}
			b = res.Val.(*blob)
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Header().Set("Content-Length", strconv.Itoa(len(b.info)))
	_, _ = w.Write(b.info)
	return nil
}

// announce records the caller in its swarm and hands it out the swarm's origins and
// peers.
func (s *Server) announce(w http.ResponseWriter, r *http.Request) error {
	var a p2p.Announce
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAnnounceBody)).Decode(&a); err != nil {
		return fmt.Errorf("%w: announce body: %w", errBadRequest, err)
	}
	d, err := checkAnnounce(&a)
	if err != nil {
		return err
	}
	origins, err := s.swarmOrigins(r.Context(), a.InfoHash, d)
	if err != nil {
		return err
	}
	now := s.now()
	s.store.Announce(now, a.InfoHash, p2p.Peer{PeerID: a.PeerID, IP: a.IP, Port: a.Port, Complete: a.Complete})
	s.m.announces.Inc(1)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	interval := s.cfg.AnnounceInterval
	if a.Complete {
		interval = s.cfg.SeederInterval
	}
	writeJSON(w, http.StatusOK, p2p.AnnounceReply{
		IntervalSeconds: int(interval / time.Second),
		Peers:           s.store.Peers(now, a.InfoHash, a.PeerID, origins, rng),
	})
	return nil
}

// swarmOrigins returns the origins to hand out for infoHash: the one known to seed it.
// A blob the tracker has not seen since it started is fetched from the origins first
// (if the announce names its digest). It waits at most announceWait for origins.
func (s *Server) swarmOrigins(ctx context.Context, infoHash string, d digest.Digest) ([]p2p.Peer, error) {
	ctx, cancel := context.WithTimeout(ctx, announceWait)
	defer cancel()
	s.mu.Lock()
	b := s.byHash[infoHash]
	s.mu.Unlock()
	if b != nil {
		if d != "" && d != b.digest {
			return nil, fmt.Errorf("%w: info_hash %s is that of %s, not of digest %s", errBadRequest, infoHash, b.digest, d)
		}
		s.refreshIfStale(b)
	} else if d != "" {
		select {
		case res := <-s.load(ctx, d):
			if res.Err != nil {
				s.log.Debug("announce: no origin for blob", zap.Stringer("digest", d), zap.Error(res.Err))
				return nil, nil
			}
			b = res.Val.(*blob)
		case <-ctx.Done():
			return nil, nil
		}
		if b.infoHash != infoHash {
			return nil, fmt.Errorf("%w: info_hash %s is not that of digest %s (%s)", errBadRequest, infoHash, d, b.infoHash)
		}
	}
	if b == nil {
		return nil, nil
	}
	p, ok := s.originPeer(ctx, b.origin)
	if !ok {
		return nil, nil
	}
	return []p2p.Peer{p}, nil
}

// cached returns d's cached metainfo, or nil; a stale entry is returned and refreshed
// in the background.
func (s *Server) cached(d digest.Digest) *blob {
	s.mu.Lock()
	b := s.byDigest[d]
	s.mu.Unlock()
	if b != nil {
		s.refreshIfStale(b)
	}
	return b
}

// refreshIfStale asks the origins for b's metainfo again, in the background, if b was
// last served longer than touchEvery ago, so its origin keeps seeding it.
func (s *Server) refreshIfStale(b *blob) {
	if s.now().Sub(b.touched) <= touchEvery {
		return
	}
	s.m.refreshes.Inc(1)
	s.load(context.Background(), b.digest)
}

// load fetches d's metainfo from the origins and caches it. Concurrent loads of one
// digest share a fetch, detached from any request: a client hanging up must not waste
// an origin's half-done backend pull.
// ctx only lends its values (the namespace hint): the fetch outlives the request.
func (s *Server) load(ctx context.Context, d digest.Digest) <-chan singleflight.Result {
	return s.fetches.DoChan(d.String(), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		return s.fetch(ctx, d)
	})
}

// fetch asks d's origins in placement order (owners first, unhealthy ones last) for
// d's metainfo; the first to answer seeds d and is recorded as its holder. All
// answering 404 is errNotFound.
func (s *Server) fetch(ctx context.Context, d digest.Digest) (*blob, error) {
	var errs []error
	for _, o := range s.origins.Owners(d) {
		raw, err := o.Metainfo(ctx, d)
		if err != nil && !errors.Is(err, originclient.ErrNotFound) && ctx.Err() == nil {
			s.origins.MarkFailed(o.Addr())
		}
		if err == nil {
			var res metainfo.Result
			if res, err = metainfo.ResultOf(raw); err == nil && res.Digest != d {
				err = fmt.Errorf("%w: names %s", metainfo.ErrInvalid, res.Digest)
			}
			if err == nil {
				b := &blob{digest: d, infoHash: hex.EncodeToString(res.InfoHash[:]), info: raw, origin: o, touched: s.now()}
				s.put(b)
				s.m.originFetches.Inc(1)
				pctx, cancel := context.WithTimeout(ctx, peerTimeout)
				s.originPeer(pctx, o) // learn its address before the swarm announces
				cancel()
				return b, nil
			}
			err = fmt.Errorf("origin %s: metainfo %s: %w", o.Addr(), d, err)
		}
		if !errors.Is(err, originclient.ErrNotFound) {
			s.m.originErrors.Inc(1)
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("tracker metainfo %s: %w", d, errNotFound)
	}
	return nil, fmt.Errorf("tracker metainfo %s: %w: %w", d, errUpstream, errors.Join(errs...))
}

// put caches b, replacing an older entry of its digest; when full it evicts an
// arbitrary entry.
func (s *Server) put(b *blob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byDigest[b.digest] == nil && len(s.byDigest) >= s.maxBlobs {
		for d, victim := range s.byDigest {
			delete(s.byDigest, d)
			delete(s.byHash, victim.infoHash)
			break
		}
	}
	s.byDigest[b.digest] = b
	s.byHash[b.infoHash] = b
}

// originPeer returns origin o's P2P address as a hand-out entry, asking the origin
// once; false if it can't be learnt now (it is asked again next time).
func (s *Server) originPeer(ctx context.Context, o *originclient.Client) (p2p.Peer, bool) {
	s.mu.Lock()
	p, ok := s.peerAddrs[o.Addr()]
	s.mu.Unlock()
	if ok {
		return p, true
	}
	ch := s.peers.DoChan(o.Addr(), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
		defer cancel()
		pa, err := o.Peer(ctx)
		if err != nil {
			return nil, err
		}
		ip, err := netip.ParseAddr(pa.IP)
		if err != nil || ip.IsUnspecified() || pa.Port <= 0 || pa.Port > 65535 {
			return nil, fmt.Errorf("origin %s: bad peer address %s:%d", o.Addr(), pa.IP, pa.Port)
		}
		p := &p2p.Peer{IP: ip.Unmap().String(), Port: pa.Port, Origin: true, Complete: true}
		s.mu.Lock()
		s.peerAddrs[o.Addr()] = *p
		s.mu.Unlock()
		return p, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			s.m.originErrors.Inc(1)
			s.log.Warn("origin peer address", zap.String("origin", o.Addr()), zap.Error(res.Err))
			return p2p.Peer{}, false
		}
		return *res.Val.(*p2p.Peer), true
	case <-ctx.Done():
		return p2p.Peer{}, false
	}
}

// checkAnnounce validates a and normalises its hex and IP; it returns the digest if a
// names one.
func checkAnnounce(a *p2p.Announce) (digest.Digest, error) {
	a.InfoHash = strings.ToLower(a.InfoHash)
	if !isHex40(a.InfoHash) {
		return "", fmt.Errorf("%w: info_hash %q is not 40 hex characters", errBadRequest, a.InfoHash)
	}
	a.PeerID = strings.ToLower(a.PeerID)
	if !isHex40(a.PeerID) {
		return "", fmt.Errorf("%w: peer_id %q is not 40 hex characters", errBadRequest, a.PeerID)
	}
	ip, err := netip.ParseAddr(a.IP)
	if err != nil || ip.IsUnspecified() || ip.Zone() != "" {
		return "", fmt.Errorf("%w: ip %q is not a peer's address", errBadRequest, a.IP)
	}
	a.IP = ip.Unmap().String()
	if a.Port <= 0 || a.Port > 65535 {
		return "", fmt.Errorf("%w: port %d is out of range", errBadRequest, a.Port)
	}
	if a.Digest == "" {
		return "", nil
	}
	return parseDigest(a.Digest)
}

func isHex40(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("%w: digest %q is not a sha256 digest", errBadRequest, s)
	}
	return d, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
