package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	tmeta "github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// testTimeout bounds every wait in these tests; it is a hang guard, not an assertion.
const testTimeout = 20 * time.Second

type node struct {
	*Engine
	store *blobstore.Store
	root  string
}

func newNode(t *testing.T, ip string, mutate ...func(*Config)) *node {
	t.Helper()
	root := t.TempDir()
	store, err := blobstore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ListenIP: ip}
	for _, f := range mutate {
		f(&cfg)
	}
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.Lock(os.Stderr), zap.WarnLevel)).Named(ip)
	e, err := New(cfg, store, log, tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close %s: %v", ip, err)
		}
	})
	return &node{Engine: e, store: store, root: root}
}

// fakeTracker is an in-memory PeerSource: it hands every announcer the origins of the
// blob and every other peer that announced it.
type fakeTracker struct {
	mu      sync.Mutex
	origins map[string][]Peer          // by infohash
	peers   map[string]map[string]Peer // by infohash, then peer id
}

func newFakeTracker() *fakeTracker {
	return &fakeTracker{origins: map[string][]Peer{}, peers: map[string]map[string]Peer{}}
}

func (f *fakeTracker) addOrigin(ih [20]byte, e *Engine) {
	ip, port := e.Addr()
	f.add(ih, Peer{PeerID: e.PeerID(), IP: ip, Port: port, Origin: true, Complete: true})
}

func (f *fakeTracker) add(ih [20]byte, p Peer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := fmt.Sprintf("%x", ih)
	f.origins[key] = append(f.origins[key], p)
}

func (f *fakeTracker) Announce(_ context.Context, a Announce) (AnnounceReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peers[a.InfoHash] == nil {
		f.peers[a.InfoHash] = map[string]Peer{}
	}
	f.peers[a.InfoHash][a.PeerID] = Peer{PeerID: a.PeerID, IP: a.IP, Port: a.Port, Complete: a.Complete}
	// Include the announcer: the engine must skip itself.
	out := append([]Peer(nil), f.origins[a.InfoHash]...)
	for _, p := range f.peers[a.InfoHash] {
		out = append(out, p)
	}
	return AnnounceReply{IntervalSeconds: 1, Peers: out}, nil
}

func (f *fakeTracker) lastAnnounce(ih [20]byte, peerID string) (Peer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.peers[fmt.Sprintf("%x", ih)][peerID]
	return p, ok
}

func randomBlob(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fetchAll fetches d through n and reads it as it arrives, returning the transfer and
// the sha256 of what was read.
func fetchAll(t *testing.T, n *node, d digest.Digest, info []byte, src PeerSource) (*Transfer, digest.Digest, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tx, err := n.Fetch(ctx, d, info, src, nil)
	if err != nil {
		return nil, "", err
	}
	r := tx.NewReader()
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return tx, "", err
	}
	return tx, digest.NewDigest(digest.SHA256, h), nil
}

func waitDone(t *testing.T, tx *Transfer) error {
	t.Helper()
	select {
	case <-tx.Done():
		return tx.Err()
	case <-time.After(testTimeout):
		t.Fatal("transfer not done")
		return nil
	}
}

// spy is a listener that records the source IPs of connections and closes them.
type spy struct {
	ln  net.Listener
	mu  sync.Mutex
	ips map[string]bool
	got chan struct{}
	wg  sync.WaitGroup
}

func newSpy(t *testing.T, ip string) *spy {
	t.Helper()
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &spy{ln: ln, ips: map[string]bool{}, got: make(chan struct{}, 1)}
	s.wg.Go(s.accept)
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *spy) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.ips[c.RemoteAddr().(*net.TCPAddr).IP.String()] = true
		s.mu.Unlock()
		c.Close()
		select {
		case s.got <- struct{}{}:
		default:
		}
	}
}

func (s *spy) peer() Peer {
	a := s.ln.Addr().(*net.TCPAddr)
	return Peer{PeerID: fmt.Sprintf("%040x", 1), IP: a.IP.String(), Port: a.Port}
}

func (s *spy) sourceIPs() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ips)
}

// TestSwarm: an origin seeds a blob to two agents fetching and streaming it at once;
// then, with the origin gone, a third agent gets every byte from the first two.
func TestSwarm(t *testing.T) {
	t.Parallel()
	data := randomBlob(24<<20, 1)
	d := digest.FromBytes(data)
	origin := newNode(t, "127.0.0.10")
	res, err := origin.store.Ingest(d, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if info, _, _ := metainfo.Parse(res.InfoBytes); info.PieceLength != 512<<10 {
		t.Fatalf("piece length %d, want 512 KiB", info.PieceLength)
	}
	if err := origin.Seed(d, res.InfoBytes); err != nil {
		t.Fatal(err)
	}
	tracker := newFakeTracker()
	tracker.addOrigin(res.InfoHash, origin.Engine)
	spy := newSpy(t, "127.0.0.9")
	tracker.add(res.InfoHash, spy.peer())

	agents := []*node{newNode(t, "127.0.0.2"), newNode(t, "127.0.0.3")}
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() {
			tx, got, err := fetchAll(t, a, d, res.InfoBytes, tracker)
			if err != nil {
				t.Errorf("%s: %v", a.cfg.ListenIP, err)
				return
			}
			if got != d {
				t.Errorf("%s streamed %s, want %s", a.cfg.ListenIP, got, d)
			}
			if err := waitDone(t, tx); err != nil {
				t.Errorf("%s: transfer: %v", a.cfg.ListenIP, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var received int64
	for _, a := range agents {
		checkStored(t, a, d, int64(len(data)))
		st := a.Stats()
		received += st.BytesFromOrigins + st.BytesFromPeers
		if st.BlobsCompleted != 1 {
			t.Errorf("%s: %d blobs completed, want 1", a.cfg.ListenIP, st.BlobsCompleted)
		}
		if p, ok := tracker.lastAnnounce(res.InfoHash, a.PeerID()); !ok || p.IP != a.cfg.ListenIP {
			t.Errorf("%s announced as %+v", a.cfg.ListenIP, p)
		}
	}
	if received < 2*int64(len(data)) {
		t.Errorf("agents received %d useful bytes, want at least %d", received, 2*len(data))
	}

	// The origin leaves; the third agent can only get the blob from the first two.
	if err := origin.Close(); err != nil {
		t.Fatal(err)
	}
	uploadedBefore := agents[0].Stats().BytesUploaded + agents[1].Stats().BytesUploaded
	third := newNode(t, "127.0.0.4")
	tx, got, err := fetchAll(t, third, d, res.InfoBytes, tracker)
	if err != nil {
		t.Fatal(err)
	}
	if got != d {
		t.Fatalf("third agent streamed %s", got)
	}
	if err := waitDone(t, tx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, third, d, int64(len(data)))
	st := third.Stats()
	if st.BytesFromOrigins != 0 || st.BytesFromPeers < int64(len(data)) {
		t.Errorf("third agent: %d bytes from origins, %d from peers; want 0 and at least %d", st.BytesFromOrigins, st.BytesFromPeers, len(data))
	}
	uploaded := agents[0].Stats().BytesUploaded + agents[1].Stats().BytesUploaded - uploadedBefore
	if uploaded < int64(len(data)) {
		t.Errorf("first agents uploaded %d bytes, want at least %d", uploaded, len(data))
	}

	// Outgoing connections come from each engine's own listen IP.
	select {
	case <-spy.got:
	case <-time.After(testTimeout):
		t.Fatal("no engine dialled the spy peer")
	}
	for ip := range spy.sourceIPs() {
		if ip != "127.0.0.2" && ip != "127.0.0.3" && ip != "127.0.0.4" {
			t.Errorf("spy peer was dialled from %s, not from an agent's listen IP", ip)
		}
	}
}

func checkStored(t *testing.T, n *node, d digest.Digest, size int64) {
	t.Helper()
	if got, err := n.store.Stat(d); err != nil || got != size {
		t.Errorf("%s: Stat = %d, %v", n.cfg.ListenIP, got, err)
	}
	f, err := n.store.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	_, _ = io.Copy(h, f)
	if digest.NewDigest(digest.SHA256, h) != d {
		t.Errorf("%s: stored blob differs", n.cfg.ListenIP)
	}
	if _, err := n.store.Info(d); err != nil {
		t.Errorf("%s: no info stored: %v", n.cfg.ListenIP, err)
	}
	if left, _ := filepath.Glob(filepath.Join(n.root, "partial", "sha256", "*")); len(left) != 0 {
		t.Errorf("%s: partial files left: %v", n.cfg.ListenIP, left)
	}
}

// renamed returns res's info with its name changed to d: pieces of one blob under the
// name of another.
func renamed(t *testing.T, infoBytes []byte, d digest.Digest) []byte {
	t.Helper()
	var info tmeta.Info
	if err := bencode.Unmarshal(infoBytes, &info); err != nil {
		t.Fatal(err)
	}
	info.Name = d.Encoded()
	b, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDigestMismatch: the pieces verify but the whole blob does not hash to the name
// in the info. Nothing is committed, the transfer and its reader fail.
func TestDigestMismatch(t *testing.T) {
	t.Parallel()
	data := randomBlob(3<<20, 2)
	claimed := digest.FromString("some other blob")
	res, err := metainfo.Generate(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	lie := renamed(t, res.InfoBytes, claimed)
	lieRes, err := metainfo.ResultOf(lie)
	if err != nil {
		t.Fatal(err)
	}

	// A broken origin holds the bytes under the wrong name.
	origin := newNode(t, "127.0.0.20")
	if err := os.WriteFile(origin.store.BlobPath(claimed), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := origin.Seed(claimed, lie); err != nil {
		t.Fatal(err)
	}
	tracker := newFakeTracker()
	tracker.addOrigin(lieRes.InfoHash, origin.Engine)

	agent := newNode(t, "127.0.0.21")
	tx, _, err := fetchAll(t, agent, claimed, lie, tracker)
	if !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Errorf("reading: %v, want ErrDigestMismatch", err)
	}
	if tx == nil {
		t.FailNow()
	}
	if err := waitDone(t, tx); !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Errorf("transfer: %v, want ErrDigestMismatch", err)
	}
	if _, err := agent.store.Stat(claimed); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("Stat: %v, want ErrNotFound", err)
	}
	if _, err := agent.store.Stat(res.Digest); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("Stat of the real digest: %v, want ErrNotFound", err)
	}
	if st := agent.Stats(); st.BlobsCompleted != 0 {
		t.Errorf("%d blobs completed", st.BlobsCompleted)
	}
}

func TestFetchRejectsInfoOfAnotherBlob(t *testing.T) {
	t.Parallel()
	agent := newNode(t, "127.0.0.30")
	res, _ := metainfo.Generate(bytes.NewReader([]byte("blob")), 1<<20)
	_, err := agent.Fetch(context.Background(), digest.FromString("other"), res.InfoBytes, newFakeTracker(), nil)
	if !errors.Is(err, metainfo.ErrInvalid) {
		t.Fatalf("Fetch: %v, want metainfo.ErrInvalid", err)
	}
	if _, err := agent.Fetch(context.Background(), res.Digest, []byte("junk"), newFakeTracker(), nil); !errors.Is(err, metainfo.ErrInvalid) {
		t.Fatalf("Fetch of junk info: %v, want metainfo.ErrInvalid", err)
	}
	if err := agent.Seed(res.Digest, res.InfoBytes); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Seed of a missing blob: %v, want ErrNotFound", err)
	}
}

// TestFetchCommitted: a blob already in the store is served at once, without peers,
// and announced as complete.
func TestFetchCommitted(t *testing.T) {
	t.Parallel()
	agent := newNode(t, "127.0.0.31")
	data := randomBlob(2<<20+3, 3)
	res, err := agent.store.Ingest(digest.FromBytes(data), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tracker := newFakeTracker()
	tx, got, err := fetchAll(t, agent, res.Digest, res.InfoBytes, tracker)
	if err != nil || got != res.Digest {
		t.Fatalf("fetch: %s, %v", got, err)
	}
	select {
	case <-tx.Done():
	default:
		t.Fatal("transfer of a committed blob not done")
	}
	if tx.Err() != nil || tx.Length() != int64(len(data)) {
		t.Fatalf("Err %v, Length %d", tx.Err(), tx.Length())
	}
	// Range reads, as http.ServeContent does them.
	r := tx.NewReader()
	defer r.Close()
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Fatalf("Seek to end: %d, %v", end, err)
	}
	if _, err := r.Seek(1<<20-5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 10)
	if _, err := io.ReadFull(r, part); err != nil || !bytes.Equal(part, data[1<<20-5:1<<20+5]) {
		t.Fatalf("range read across a piece boundary: %v", err)
	}
	// Fetching again returns the same torrent.
	again, err := agent.Fetch(context.Background(), res.Digest, res.InfoBytes, tracker, nil)
	if err != nil || again.a != tx.a {
		t.Fatalf("second Fetch: %v", err)
	}
	deadline := time.Now().Add(testTimeout)
	for {
		if p, ok := tracker.lastAnnounce(res.InfoHash, agent.PeerID()); ok {
			if !p.Complete {
				t.Fatal("announced as incomplete")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no announce")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := agent.Stats(); st.BlobsCompleted != 0 {
		t.Fatalf("%d blobs completed, want 0 (nothing downloaded)", st.BlobsCompleted)
	}
}

func TestFetchEmptyBlob(t *testing.T) {
	t.Parallel()
	agent := newNode(t, "127.0.0.32")
	res, _ := metainfo.Generate(bytes.NewReader(nil), 1<<20)
	tx, got, err := fetchAll(t, agent, res.Digest, res.InfoBytes, newFakeTracker())
	if err != nil || got != res.Digest || tx.Length() != 0 {
		t.Fatalf("fetch: %s, %v", got, err)
	}
	if err := waitDone(t, tx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, agent, res.Digest, 0)
}

func TestSeedIdleDrops(t *testing.T) {
	t.Parallel()
	origin := newNode(t, "127.0.0.33", func(c *Config) { c.SeedIdle = time.Millisecond })
	data := randomBlob(1<<20, 4)
	res, err := origin.store.Ingest(digest.FromBytes(data), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := origin.Seed(res.Digest, res.InfoBytes); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testTimeout)
	for origin.activeCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle torrent never dropped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := origin.store.Stat(res.Digest); err != nil {
		t.Fatalf("dropping the torrent touched the store: %v", err)
	}
	// Seeding again re-adds it, without rehashing.
	if err := origin.Seed(res.Digest, res.InfoBytes); err != nil {
		t.Fatal(err)
	}
}

func (e *Engine) activeCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.transfers)
}

func TestClosedEngine(t *testing.T) {
	t.Parallel()
	n := newNode(t, "127.0.0.34")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	data := []byte("x")
	res, _ := n.store.Ingest(digest.FromBytes(data), bytes.NewReader(data))
	if err := n.Seed(res.Digest, res.InfoBytes); !errors.Is(err, ErrClosed) {
		t.Fatalf("Seed after Close: %v", err)
	}
	if _, err := n.Fetch(context.Background(), res.Digest, res.InfoBytes, newFakeTracker(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Fetch after Close: %v", err)
	}
}
