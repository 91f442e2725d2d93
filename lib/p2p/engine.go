// Package p2p shares blobs between hosts over BitTorrent: one anacrolix/torrent client
// per process, storing pieces straight into the blob store (no second copy), fed with
// peers by an announce loop per blob instead of the library's tracker client.
//
// Each blob is a single-file torrent whose info comes from lib/metainfo. An origin
// calls Seed for blobs it holds; an agent calls Fetch (pulling the pieces no peer holds
// from the origins over HTTP, see pull.go), reads verified bytes while the download
// runs, and keeps seeding the blob after it is committed until it has been idle for
// Config.SeedIdle. Outgoing connections are dialled from Config.ListenIP, so
// every process is known to its peers by its own address: the library bans peers that
// send bad data by IP, permanently and across torrents.
package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/metainfo"
)

var (
	// ErrClosed is returned by an Engine after Close.
	ErrClosed = errors.New("p2p engine closed")
	// ErrStopped is a Transfer's error when its torrent was dropped (engine closed or
	// idle) before the blob was committed.
	ErrStopped = errors.New("p2p transfer stopped before completion")
)

// Client settings from the measurements in the design notes.
const (
	dialTimeout        = 2 * time.Second
	halfOpenPerTorrent = 20
	halfOpenTotal      = 200
	maxUnverifiedBytes = 256 << 20
	pieceHashers       = 2
	maintainEvery      = time.Second
	peerIDPrefix       = "-SH0001-"
)

// Engine is one BitTorrent client over a blob store. Its methods are safe for
// concurrent use.
type Engine struct {
	cfg     Config
	store   *blobstore.Store
	log     *zap.Logger
	client  *torrent.Client
	storage *casStorage
	peerID  string // 40 hex
	rawID   [20]byte
	ip      netip.Addr
	port    int
	origins originSet
	m       *metrics

	ctx    context.Context // cancelled by Close; bounds the loops and announces
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	transfers map[digest.Digest]*active
}

// New starts a client listening on cfg.ListenIP:cfg.ListenPort over store. A nil log
// or scope discards logs or metrics.
func New(cfg Config, store *blobstore.Store, log *zap.Logger, scope tally.Scope) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("p2p config: %w", err)
	}
	cfg.applyDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	if scope == nil {
		scope = tally.NoopScope
	}
	rawID, err := newPeerID()
	if err != nil {
		return nil, fmt.Errorf("p2p peer id: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cfg:       cfg,
		store:     store,
		log:       log,
		peerID:    hex.EncodeToString(rawID),
		rawID:     [20]byte(rawID),
		ip:        netip.MustParseAddr(cfg.ListenIP), // checked by Validate
		m:         newMetrics(scope),
		ctx:       ctx,
		cancel:    cancel,
		transfers: map[digest.Digest]*active{},
	}
	e.storage = newCASStorage(store, log, e.m.blobCompleted, func(ct *casTorrent, seen os.FileInfo) {
		if err := e.quarantine(ct.d, ct, seen); err != nil {
			log.Error("quarantine corrupt blob", zap.Stringer("digest", ct.d), zap.Error(err))
		}
	})
	e.client, err = torrent.NewClient(e.clientConfig(rawID))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("p2p listen %s:%d: %w", cfg.ListenIP, cfg.ListenPort, err)
	}
	e.client.AddDialer(boundDialer(e.ip))
	e.port = e.client.LocalPort()
	e.wg.Add(1)
	go e.maintainLoop()
	log.Info("p2p engine started", zap.String("addr", e.addr().String()), zap.String("peer_id", e.peerID))
	return e, nil
}

func newPeerID() ([]byte, error) {
	id := make([]byte, 20)
	copy(id, peerIDPrefix)
	_, err := rand.Read(id[len(peerIDPrefix):])
	return id, err
}

// clientConfig is the datacenter configuration measured in the design notes: a closed,
// tracker-fed cluster on fast links, so no DHT, PEX, uTP, web torrents, trackers, port
// forwarding, encryption or upload limits; short timeouts and big request chunks.
func (e *Engine) clientConfig(peerID []byte) *torrent.ClientConfig {
	cc := torrent.NewDefaultClientConfig()
	cc.ListenHost = func(string) string { return e.cfg.ListenIP }
	cc.ListenPort = e.cfg.ListenPort
	cc.PublicIp4 = e.ip.AsSlice()
	cc.PeerID = string(peerID)
	cc.DefaultStorage = e.storage
	cc.Seed = true
	cc.NoDHT = true
	cc.DisablePEX = true
	cc.DisableUTP = true
	cc.DisableIPv6 = true
	cc.DisableWebtorrent = true
	cc.DisableWebseeds = true
	cc.DisableTrackers = true
	cc.NoDefaultPortForwarding = true
	cc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{}
	// The built-in dialers come from the listen sockets and dial from the kernel's
	// default source address (127.0.0.1 for every loopback peer); New adds one bound
	// to ListenIP instead.
	cc.DialForPeerConns = false
	cc.DialRateLimiter = rate.NewLimiter(rate.Inf, 0)
	// The library refuses every incoming connection from a /24 for 15 minutes after one
	// failed handshake from any address in it (a peer that dropped the torrent, a
	// duplicate connection closed early): in a cluster on one subnet that cuts a host
	// off from every peer that did not dial first.
	cc.DisableAcceptRateLimiting = true
	// A finite upload limiter stalls transfers in v1.61.0 and caps request sizes.
	cc.UploadRateLimiter = rate.NewLimiter(rate.Inf, 0)
	// Two agents that dial each other at once otherwise keep both connections, and
	// the client moves chunk requests between them (work stealing): each move can
	// bring a chunk twice. Agents received 14% of the blob redundantly with both
	// connections kept, 5-6% with one (docs/BENCHMARKS.md).
	cc.DropDuplicatePeerIds = true
	cc.EstablishedConnsPerTorrent = e.cfg.MaxConnsPerTorrent
	cc.HalfOpenConnsPerTorrent = halfOpenPerTorrent
	cc.TotalHalfOpenConns = halfOpenTotal
	cc.HandshakesTimeout = dialTimeout
	cc.NominalDialTimeout = dialTimeout
	cc.MinDialTimeout = dialTimeout / 2
	cc.MaxUnverifiedBytes = maxUnverifiedBytes
	cc.MaxAllocPeerRequestDataPerConn = max(cc.MaxAllocPeerRequestDataPerConn, 2*e.cfg.ChunkSize)
	cc.PieceHashersPerTorrent = pieceHashers
	cc.Slogger = slog.New(zapHandler{log: e.log.Named("torrent")})
	cc.Callbacks.ReceivedUsefulData = append(cc.Callbacks.ReceivedUsefulData, e.onUsefulData)
	cc.Callbacks.ReadExtendedHandshake = e.onExtendedHandshake
	return cc
}

// boundDialer dials peers over TCP from ip, with an ephemeral port.
func boundDialer(ip netip.Addr) torrent.Dialer {
	return torrent.NetworkDialer{
		Network: "tcp4",
		Dialer: &net.Dialer{
			LocalAddr: &net.TCPAddr{IP: ip.AsSlice()},
			KeepAlive: -1, // BitTorrent connections send their own keep-alives
		},
	}
}

// PeerID returns the engine's BitTorrent peer id, 40 hex characters.
func (e *Engine) PeerID() string { return e.peerID }

// Addr returns the address peers reach the engine at.
func (e *Engine) Addr() (ip string, port int) { return e.ip.String(), e.port }

func (e *Engine) addr() netip.AddrPort { return netip.AddrPortFrom(e.ip, uint16(e.port)) }

// Seed shares blob d, which must be committed in the store (else an error wrapping
// blobstore.ErrNotFound), until it has been idle for SeedIdle. Calling it again keeps
// the blob in the swarm. Seeding does not announce: origins are found through the
// tracker's own knowledge of them.
func (e *Engine) Seed(d digest.Digest, infoBytes []byte) error {
	res, err := checkInfo(d, infoBytes)
	if err != nil {
		return fmt.Errorf("p2p seed %s: %w", d, err)
	}
	if _, err := e.store.Stat(d); err != nil {
		return fmt.Errorf("p2p seed %s: %w", d, err)
	}
	if res.Size == 0 {
		return nil // nothing to share
	}
	if _, _, err := e.add(res, nil, false, nil); err != nil {
		return fmt.Errorf("p2p seed %s: %w", d, err)
	}
	return nil
}

// Fetch adds the torrent of blob d (or finds the one already active) and downloads it
// from the peers src hands out; a blob already committed is only seeded. With origin
// set, pieces no connected peer holds are pulled from the origins over HTTP (see
// pullPicker) and origins are not BitTorrent peers unless that fails; with origin nil,
// origins are BitTorrent peers like any other. The download goes on in the background
// whatever happens to ctx, which bounds this call and the reads of the returned
// Transfer's readers. After the commit the blob keeps being seeded until idle for
// SeedIdle.
func (e *Engine) Fetch(ctx context.Context, d digest.Digest, infoBytes []byte, src PeerSource, origin OriginRanges) (*Transfer, error) {
	if src == nil {
		return nil, fmt.Errorf("p2p fetch %s: no peer source", d)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("p2p fetch %s: %w", d, err)
	}
	res, err := checkInfo(d, infoBytes)
	if err != nil {
		return nil, fmt.Errorf("p2p fetch %s: %w", d, err)
	}
	if res.Size == 0 {
		return e.fetchEmpty(ctx, d)
	}
	if _, err := e.store.Info(d); errors.Is(err, blobstore.ErrNotFound) {
		if err := e.store.PutInfo(d, infoBytes); err != nil {
			return nil, fmt.Errorf("p2p fetch %s: %w", d, err)
		}
	}
	a, _, err := e.add(res, src, true, origin)
	if err != nil {
		return nil, fmt.Errorf("p2p fetch %s: %w", d, err)
	}
	return &Transfer{a: a, ctx: ctx}, nil
}

// fetchEmpty commits the empty blob directly: a torrent can't hold zero bytes.
func (e *Engine) fetchEmpty(ctx context.Context, d digest.Digest) (*Transfer, error) {
	if _, err := e.store.Ingest(d, bytes.NewReader(nil)); err != nil {
		return nil, fmt.Errorf("p2p fetch %s: %w", d, err)
	}
	ct := &casTorrent{d: d, done: make(chan struct{})}
	ct.finish(nil, true)
	return &Transfer{a: &active{d: d, ct: ct}, ctx: ctx}, nil
}

// checkInfo parses infoBytes and checks that it describes blob d.
func checkInfo(d digest.Digest, infoBytes []byte) (metainfo.Result, error) {
	res, err := metainfo.ResultOf(infoBytes)
	if err != nil {
		return res, err
	}
	if res.Digest != d {
		return res, fmt.Errorf("info names %s: %w", res.Digest, metainfo.ErrInvalid)
	}
	return res, nil
}

// add returns the active torrent of res's blob, adding it to the client if needed
// (opened reports that), starts its announce loop if src is given and none runs yet,
// and, if download, asks the client to download every piece from peers, and pulls
// from the origins with pull if given (only when the download starts here: one
// started without a pull has origins as peers already).
func (e *Engine) add(res metainfo.Result, src PeerSource, download bool, pull OriginRanges) (a *active, opened bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, false, ErrClosed
	}
	a, ok := e.transfers[res.Digest]
	if ok && a.failed() {
		e.removeLocked(a)
		ok = false
	}
	if ok && a.ih != res.InfoHash {
		return nil, false, fmt.Errorf("another torrent (%x) of the blob is active", a.ih)
	}
	if !ok {
		if a, err = e.open(res); err != nil {
			return nil, false, err
		}
		e.transfers[res.Digest] = a
		e.m.active.Update(float64(len(e.transfers)))
	}
	a.touch(time.Now())
	if download && !a.downloading {
		a.downloading = true
		if pull != nil && !a.committed() {
			e.startPullLocked(a, pull)
		}
		a.t.DownloadAll()
	}
	if src != nil && !a.announcing {
		a.announcing = true
		e.wg.Add(1)
		go e.announceLoop(a, src)
	}
	return a, !ok, nil
}

// open adds the torrent to the client, whose storage opens the blob or its partial file.
// No piece is wanted from peers until add asks for them.
func (e *Engine) open(res metainfo.Result) (*active, error) {
	t, isNew := e.client.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  res.InfoHash,
		InfoBytes: res.InfoBytes,
		ChunkSize: pp.Integer(e.cfg.ChunkSize),
	})
	if !isNew {
		// Every torrent the engine adds is in transfers until dropped.
		return nil, fmt.Errorf("torrent %x already in the client", res.InfoHash)
	}
	ct, err := e.storage.take(res.InfoHash)
	if err != nil {
		t.Drop()
		return nil, fmt.Errorf("open storage: %w", err)
	}
	a := &active{d: res.Digest, ih: res.InfoHash, length: res.Size, t: t, ct: ct,
		stop: make(chan struct{}), pokeCh: make(chan struct{}, 1), answered: make(chan struct{})}
	a.originPeers.Store(true)
	// The library's default on a failed chunk write disables every download of the
	// torrent and keeps it: readers then wait forever, and with the disk full the
	// client later panicked ("piece request order has {} and pending pieces has ...").
	// A chunk the storage refused because the HTTP pull completed its piece meanwhile
	// is no failure (with the default, that one late chunk hung a pull). Any other
	// write error fails the transfer.
	t.SetOnWriteChunkError(func(err error) {
		if errors.Is(err, errPieceComplete) {
			e.log.Debug("late chunk of a complete piece dropped", zap.Stringer("digest", res.Digest), zap.Error(err))
			return
		}
		go e.fail(a, fmt.Errorf("p2p fetch %s: write a chunk: %w", res.Digest, err))
	})
	return a, nil
}

// fail ends a's transfer with err (a write to its partial file failed: a full or
// broken disk): its readers get err at once, its torrent is dropped and its partial
// file removed, so the space is free again and the next fetch starts afresh.
func (e *Engine) fail(a *active, err error) {
	if a.committed() {
		return
	}
	e.log.Error("blob transfer failed", zap.Stringer("digest", a.d), zap.Error(err))
	a.ct.finish(err, false)
	e.remove(a)
}

// startPullLocked starts pulling a's pieces from the origins over HTTP, with the
// origins kept out of the client's peers. The caller holds e.mu and starts the
// announce loop only after this.
func (e *Engine) startPullLocked(a *active, open OriginRanges) {
	a.originPeers.Store(false)
	a.readers.Add(1) // not idle while pulling
	e.wg.Add(1)
	go e.pull(a, open)
}

// remove drops a's torrent from the client; the store keeps the blob if committed.
func (e *Engine) remove(a *active) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.removeLocked(a)
}

func (e *Engine) removeLocked(a *active) {
	if e.transfers[a.d] == a {
		delete(e.transfers, a.d)
	}
	a.halt()
	a.t.Drop()
	e.m.active.Update(float64(len(e.transfers)))
}

// maintainLoop samples the client's counters and drops idle torrents, every second.
func (e *Engine) maintainLoop() {
	defer e.wg.Done()
	tick := time.NewTicker(maintainEvery)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case now := <-tick.C:
			e.sample()
			e.dropIdle(now)
		}
	}
}

// dropIdle drops torrents with no peer connected and no reader open for SeedIdle.
func (e *Engine) dropIdle(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.transfers {
		if a.readers.Load() > 0 || len(a.t.PeerConns()) > 0 {
			a.touch(now)
			continue
		}
		if now.Sub(a.lastUsed()) > e.cfg.SeedIdle {
			e.log.Info("dropping idle torrent", zap.Stringer("digest", a.d), zap.Bool("committed", a.committed()))
			e.removeLocked(a)
		}
	}
}

// sample turns the client's cumulative counters into metric increments, and counts
// the peer connections of every torrent.
func (e *Engine) sample() {
	e.mu.Lock()
	conns := 0
	for _, a := range e.transfers {
		if a.t != nil {
			conns += len(a.t.PeerConns())
		}
	}
	e.mu.Unlock()
	e.m.peers.Update(float64(conns))
	cs := e.client.ConnStats()
	redundant := cs.BytesReadData.Int64() - cs.BytesReadUsefulData.Int64()
	if bad := e.m.sample(cs.BytesWrittenData.Int64(), redundant, cs.PiecesDirtiedBad.Int64()); bad > 0 {
		e.log.Warn("pieces failed verification", zap.Int64("pieces", bad))
	}
}

// onUsefulData is called by the client, possibly under its lock, for each chunk
// received that we needed.
func (e *Engine) onUsefulData(ev torrent.ReceivedUsefulDataEvent) {
	e.m.downloaded(e.origins.has(ev.Peer.RemoteAddr), int64(len(ev.Message.Piece)))
}

// onExtendedHandshake sets how many chunk requests we queue at a peer by lowering the
// queue length it offers (reqq, 1024 in this library), which the library reads after
// this callback: whole pieces at an origin (Config.OriginWindowPieces), PeerWindowBytes
// at other peers.
func (e *Engine) onExtendedHandshake(pc *torrent.PeerConn, m *pp.ExtendedHandshakeMessage) {
	limit := chunksIn(e.cfg.PeerWindowBytes, e.cfg.ChunkSize)
	if e.origins.has(pc.RemoteAddr) {
		info := pc.Torrent().Info()
		if info == nil {
			return
		}
		limit = e.cfg.OriginWindowPieces * chunksIn(info.PieceLength, e.cfg.ChunkSize)
	}
	if m.Reqq == 0 || m.Reqq > limit {
		m.Reqq = limit
	}
}

// chunksIn is how many chunk requests cover bytes: rounded up, at least one.
func chunksIn(bytes int64, chunkSize int) int {
	return int(max(1, (bytes+int64(chunkSize)-1)/int64(chunkSize)))
}

// Stats returns the engine's totals since New.
func (e *Engine) Stats() Stats {
	e.sample()
	return e.m.stats()
}

// Close drops every torrent (partial downloads are deleted, committed blobs stay),
// stops the loops and closes the client. Transfers not yet committed fail with
// ErrStopped.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	errs := e.client.Close()
	e.sample()
	e.mu.Lock()
	clear(e.transfers)
	e.m.active.Update(0)
	e.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("p2p close: %w", err)
	}
	return nil
}

// originSet holds the addresses the tracker marked as origins.
type originSet struct {
	mu    sync.RWMutex
	addrs map[netip.AddrPort]struct{}
}

func (s *originSet) add(a netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addrs == nil {
		s.addrs = map[netip.AddrPort]struct{}{}
	}
	s.addrs[a] = struct{}{}
}

// has reports whether a peer's address is an origin's. Origins never dial (they get
// no peers), so their connections are the ones we dialled, to the handed-out address.
func (s *originSet) has(addr interface{ String() string }) bool {
	if addr == nil {
		return false
	}
	a, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.addrs[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())]
	return ok
}

// Quarantine stops seeding blob d and moves its stored copy (the file seen, see
// blobstore.Quarantine) into quarantine: its bytes do not match its metainfo. Readers
// of the torrent fail; the next Fetch or Seed of d starts afresh from a new copy.
func (e *Engine) Quarantine(d digest.Digest, seen os.FileInfo) error {
	return e.quarantine(d, nil, seen)
}

// quarantine is Quarantine for the torrent whose storage is ct (any committed one
// of d when ct is nil): a newer transfer of d, started on a fresh copy, is left alone.
func (e *Engine) quarantine(d digest.Digest, ct *casTorrent, seen os.FileInfo) error {
	e.mu.Lock()
	if a, ok := e.transfers[d]; ok && a.committed() && (ct == nil || a.ct == ct) {
		e.removeLocked(a)
	}
	e.mu.Unlock()
	e.m.quarantined.Inc(1)
	if err := e.store.Quarantine(d, seen); err != nil {
		return fmt.Errorf("p2p quarantine %s: %w", d, err)
	}
	return nil
}

// ErrBusy is Evict's answer for a blob being downloaded, read or served to a peer.
var ErrBusy = errors.New("p2p: blob in use")

// Evict drops d's torrent, if any, and calls remove (which deletes d from the store)
// while no Seed or Fetch of d can start. A blob still downloading or with a reader
// open is not evicted: ErrBusy. Peers seeding from it are cut off; they have others. Dropping the torrent first means a later Fetch starts a
// fresh torrent instead of trusting pieces whose file is gone.
func (e *Engine) Evict(d digest.Digest, remove func() error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a, ok := e.transfers[d]; ok {
		if a.readers.Load() > 0 || !a.committed() {
			return ErrBusy
		}
		e.removeLocked(a)
	}
	return remove()
}
