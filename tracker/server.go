package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/shoal-p2p/shoal/lib/warmfeed"
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
	board   *warmfeed.Board
	log     *zap.Logger
	m       serverMetrics
	now     func() time.Time // time.Now; a test clock in tests

	fetches singleflight.Group // metainfo, by digest
	peers   singleflight.Group // origin P2P addresses, by origin URL

	mu        sync.RWMutex // guards the maps below; announces only read them
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
	warmIntents, warmAgents, warmReports   tally.Gauge
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
			warmIntents:    scope.Gauge("warm_intents"),
			warmAgents:     scope.Gauge("warm_agents"),
			warmReports:    scope.Gauge("warm_reports"),
		},
		// A random epoch: followers of this board tell it from the one before a restart.
		board:     warmfeed.NewBoard(strconv.FormatUint(rand.Uint64(), 36), cfg.Warm.AgentTTL),
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
	warmfeed.Routes(r, s.board, func() time.Time { return s.now() })
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
	s.mu.RLock()
	s.m.blobs.Update(float64(len(s.byDigest)))
	s.mu.RUnlock()
	ws := s.board.Expire(s.now())
	s.m.warmIntents.Update(float64(ws.Intents))
	s.m.warmAgents.Update(float64(ws.Agents))
	s.m.warmReports.Update(float64(ws.Reports))
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
	b := s.cached(r.Context(), d)
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
// peers. It is the tracker's hot path (every agent, every few seconds, per blob): the
// body, hand-out and reply live in pooled buffers and the reply is encoded by hand.
func (s *Server) announce(w http.ResponseWriter, r *http.Request) error {
	ab := announceBufs.Get().(*announceBuf)
	defer ab.release()
	var err error
	if ab.body, err = readBody(w, r, ab.body[:0]); err != nil {
		return fmt.Errorf("%w: announce body: %w", errBadRequest, err)
	}
	a, ok := parseAnnounce(ab.body)
	if !ok {
		if err := json.Unmarshal(ab.body, &a); err != nil {
			return fmt.Errorf("%w: announce body: %w", errBadRequest, err)
		}
	}
	if err := checkAnnounce(&a); err != nil {
		return err
	}
	origins, err := s.swarmOrigins(r.Context(), a.InfoHash, a.Digest, ab.origins[:0])
	if err != nil {
		return err
	}
	ab.origins = origins
	now := s.now()
	ab.peers = s.store.AnnouncePeers(now, a.InfoHash, p2p.Peer{PeerID: a.PeerID, IP: a.IP, Port: a.Port, Complete: a.Complete}, origins, ab.rng, ab.peers[:0])
	s.m.announces.Inc(1)
	interval := s.cfg.AnnounceInterval
	if a.Complete {
		interval = s.cfg.SeederInterval
	}
	ab.out = appendReply(ab.out[:0], int(interval/time.Second), ab.peers, wantsCompact(r.URL.RawQuery))
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(ab.out))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ab.out)
	return nil
}

var jsonContentType = []string{"application/json"}

// announceBuf is one announce's scratch space, reused through announceBufs.
type announceBuf struct {
	body    []byte
	out     []byte
	origins []p2p.Peer
	peers   []p2p.Peer
	rng     *rand.Rand
}

var announceBufs = sync.Pool{New: func() any {
	return &announceBuf{rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}}

func (ab *announceBuf) release() {
	if cap(ab.body) > maxAnnounceBody || cap(ab.out) > 1<<20 {
		return // an outsized request or hand-out: let it go
	}
	clear(ab.origins[:cap(ab.origins)]) // drop references to strings
	clear(ab.peers[:cap(ab.peers)])
	announceBufs.Put(ab)
}

// readBody appends r's body to buf, at most maxAnnounceBody bytes.
func readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, maxAnnounceBody)
	if n := r.ContentLength; n > 0 && n <= maxAnnounceBody && int64(cap(buf)) < n+1 {
		buf = make([]byte, 0, n+1) // +1: the read that sees EOF needs room
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// appendReply appends the JSON of p2p.AnnounceReply{interval, peers} to b, as
// encoding/json would write it (and a newline, as json.Encoder does), or its compact
// form (see p2p.CompactOrigin).
func appendReply(b []byte, interval int, peers []p2p.Peer, compact bool) []byte {
	b = append(b, `{"interval_seconds":`...)
	b = strconv.AppendInt(b, int64(interval), 10)
	if compact {
		b = append(b, `,"compact_peers":[`...)
	} else {
		b = append(b, `,"peers":[`...)
	}
	for i, p := range peers {
		if i > 0 {
			b = append(b, ',')
		}
		if compact {
			b = appendCompactPeer(b, p)
		} else {
			b = appendPeer(b, p)
		}
	}
	return append(b, "]}\n"...)
}

func appendPeer(b []byte, p p2p.Peer) []byte {
	b = append(b, `{"peer_id":`...)
	b = appendString(b, p.PeerID)
	b = append(b, `,"ip":`...)
	b = appendString(b, p.IP)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(p.Port), 10)
	b = append(b, `,"origin":`...)
	b = strconv.AppendBool(b, p.Origin)
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, p.Complete)
	return append(b, '}')
}

// appendCompactPeer appends ["<peer id>","<ip>",<port>,<flags>].
func appendCompactPeer(b []byte, p p2p.Peer) []byte {
	flags := 0
	if p.Origin {
		flags |= p2p.CompactOrigin
	}
	if p.Complete {
		flags |= p2p.CompactComplete
	}
	b = append(b, '[')
	b = appendString(b, p.PeerID)
	b = append(b, ',')
	b = appendString(b, p.IP)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(p.Port), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(flags), 10)
	return append(b, ']')
}

// wantsCompact reports whether an announce's query asks for the compact reply
// (compact=1), without parsing the query into a map.
func wantsCompact(rawQuery string) bool {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		if kv == "compact=1" {
			return true
		}
	}
	return false
}

// appendString appends s as a JSON string. Peer ids and addresses are validated hex
// and IP literals, so it only copies; anything that would need escaping goes through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON[s[i]] {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON marks the bytes encoding/json copies into a string as they are.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// swarmOrigins appends to dst the origins to hand out for infoHash: the one known to
// seed it. A blob the tracker has not seen since it started is fetched from the
// origins first (if the announce names its digest, "" if not). It waits at most
// announceWait for origins.
func (s *Server) swarmOrigins(ctx context.Context, infoHash, dgst string, dst []p2p.Peer) ([]p2p.Peer, error) {
	s.mu.RLock()
	b := s.byHash[infoHash]
	var p p2p.Peer
	var ok bool
	if b != nil {
		p, ok = s.peerAddrs[b.origin.Addr()]
	}
	s.mu.RUnlock()
	if b != nil && (dgst == "" || dgst == b.digest.String()) {
		s.refreshIfStale(b)
		if ok { // the common case: a blob and origin known
			return append(dst, p), nil
		}
	}
	var d digest.Digest
	if dgst != "" {
		var err error
		if d, err = parseDigest(dgst); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, announceWait)
	defer cancel()
	if b != nil {
		if d != "" && d != b.digest {
			return nil, fmt.Errorf("%w: info_hash %s is that of %s, not of digest %s", errBadRequest, infoHash, b.digest, d)
		}
	} else if d != "" {
		select {
		case res := <-s.load(ctx, d):
			if res.Err != nil {
				s.log.Debug("announce: no origin for blob", zap.Stringer("digest", d), zap.Error(res.Err))
				return dst, nil
			}
			b = res.Val.(*blob)
		case <-ctx.Done():
			return dst, nil
		}
		if b.infoHash != infoHash {
			return nil, fmt.Errorf("%w: info_hash %s is not that of digest %s (%s)", errBadRequest, infoHash, d, b.infoHash)
		}
	}
	if b == nil {
		return dst, nil
	}
	p, ok = s.originPeer(ctx, b.origin)
	if !ok {
		return dst, nil
	}
	return append(dst, p), nil
}

// cached returns d's cached metainfo, or nil. A hit is also refreshed in the
// background, with ctx's namespace hint: a metainfo request is a peer about to join
// the swarm, and an origin restarted since it was last asked seeds nothing (and may
// have lost the blob, which it then fetches from its backend again) until asked, so
// waiting for touchEvery would stall the new peer. Each peer asks once per blob
// (agents keep the metainfo), and concurrent refreshes share one fetch.
func (s *Server) cached(ctx context.Context, d digest.Digest) *blob {
	s.mu.RLock()
	b := s.byDigest[d]
	s.mu.RUnlock()
	if b != nil {
		s.m.refreshes.Inc(1)
		s.load(ctx, b.digest)
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
	s.mu.RLock()
	p, ok := s.peerAddrs[o.Addr()]
	s.mu.RUnlock()
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

// checkAnnounce validates a and normalises its hex and IP. Its digest is checked by
// swarmOrigins, only when it is not that of a known blob.
func checkAnnounce(a *p2p.Announce) error {
	a.InfoHash = strings.ToLower(a.InfoHash)
	if !isHex40(a.InfoHash) {
		return fmt.Errorf("%w: info_hash %q is not 40 hex characters", errBadRequest, a.InfoHash)
	}
	a.PeerID = strings.ToLower(a.PeerID)
	if !isHex40(a.PeerID) {
		return fmt.Errorf("%w: peer_id %q is not 40 hex characters", errBadRequest, a.PeerID)
	}
	ip, err := netip.ParseAddr(a.IP)
	if err != nil || ip.IsUnspecified() || ip.Zone() != "" {
		return fmt.Errorf("%w: ip %q is not a peer's address", errBadRequest, a.IP)
	}
	if !ip.Is4() { // an IPv4 literal that parses is canonical already
		a.IP = ip.Unmap().String()
	}
	if a.Port <= 0 || a.Port > 65535 {
		return fmt.Errorf("%w: port %d is out of range", errBadRequest, a.Port)
	}
	return nil
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
