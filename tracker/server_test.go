package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/peerstore"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeOrigin serves metainfo for the blobs it holds, and its P2P address.
type fakeOrigin struct {
	url      string
	ip       string
	blobs    map[digest.Digest][]byte
	metainfo atomic.Int64 // metainfo requests answered 200
	peer     atomic.Int64 // /peer requests
}

func newOrigin(t testing.TB, ip string, blobs ...metainfo.Result) *fakeOrigin {
	t.Helper()
	o := &fakeOrigin{ip: ip, blobs: map[digest.Digest][]byte{}}
	for _, b := range blobs {
		o.blobs[b.Digest] = b.InfoBytes
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/peer" {
			o.peer.Add(1)
			_ = json.NewEncoder(w).Encode(originclient.PeerAddr{IP: o.ip, Port: 15201})
			return
		}
		d := digest.Digest(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/blobs/"), "/metainfo"))
		info, ok := o.blobs[d]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(originclient.ErrorBody{Error: originclient.CodeNotFound})
			return
		}
		o.metainfo.Add(1)
		_, _ = w.Write(info)
	}))
	t.Cleanup(srv.Close)
	o.url = srv.URL
	return o
}

// downOrigin answers every request with 500.
func downOrigin(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "disk on fire", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type tracker struct {
	srv    *Server
	url    string
	client *trackerclient.Client
	clock  *clock
}

func newTracker(t testing.TB, origins ...string) *tracker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Origins.Static = origins
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	set, err := originset.New(cfg.Origins, nil, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	store := peerstore.New(cfg.PeerTTL, cfg.SeederInterval+cfg.PeerTTL, cfg.MaxPeers)
	s := NewServer(cfg, set, store, zap.NewNop(), tally.NoopScope)
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.now = c.Now
	hs := httptest.NewServer(s.Handler(nil))
	t.Cleanup(hs.Close)
	return &tracker{srv: s, url: hs.URL, client: trackerclient.New(hs.URL, hs.Client()), clock: c}
}

func makeBlob(t testing.TB, content string) metainfo.Result {
	t.Helper()
	data := []byte(content)
	res, err := metainfo.Generate(bytes.NewReader(data), metainfo.PieceLength(int64(len(data))))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func infoHash(b metainfo.Result) string { return hex.EncodeToString(b.InfoHash[:]) }

func agent(n int, b metainfo.Result, complete bool) p2p.Announce {
	return p2p.Announce{
		InfoHash: infoHash(b), Digest: b.Digest.String(), PeerID: fmt.Sprintf("%040x", n),
		IP: fmt.Sprintf("127.0.0.%d", n), Port: 16881, Complete: complete,
	}
}

func (tr *tracker) announce(t *testing.T, a p2p.Announce) p2p.AnnounceReply {
	t.Helper()
	reply, err := tr.client.Announce(context.Background(), a)
	if err != nil {
		t.Fatalf("announce %+v: %v", a, err)
	}
	return reply
}

func peerIDs(ps []p2p.Peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.PeerID
		if p.Origin {
			out[i] = "origin " + p.IP
		}
	}
	return out
}

func TestMetainfoServedAndCached(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "layer one")
	o := newOrigin(t, "127.0.0.10", blob)
	tr := newTracker(t, o.url)
	for range 3 {
		got, err := tr.client.Metainfo(context.Background(), blob.Digest)
		if err != nil || !bytes.Equal(got, blob.InfoBytes) {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	// Hits are answered from the cache; each also asks the origin again in the
	// background (TestMetainfoRequestTouchesOrigin), so only its address is asked once.
	if n := o.peer.Load(); n != 1 {
		t.Fatalf("origin address asked %d times, want once", n)
	}
	resp, err := http.Get(tr.url + "/metainfo/" + blob.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-bittorrent" {
		t.Fatalf("content type %q", ct)
	}
}

func TestMetainfoConcurrentMissesShareAFetch(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "popular layer")
	o := newOrigin(t, "127.0.0.10", blob)
	tr := newTracker(t, o.url)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := tr.client.Metainfo(context.Background(), blob.Digest); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := o.metainfo.Load(); n < 1 || n > 8 {
		t.Fatalf("origin asked %d times", n)
	}
}

func TestMetainfoNotFoundAndBadDigest(t *testing.T) {
	t.Parallel()
	o1, o2 := newOrigin(t, "127.0.0.10"), newOrigin(t, "127.0.0.11")
	tr := newTracker(t, o1.url, o2.url)
	_, err := tr.client.Metainfo(context.Background(), digest.FromString("nobody has me"))
	if !errors.Is(err, trackerclient.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	for _, d := range []string{"sha256:abc", "sha512:" + strings.Repeat("a", 128), "nonsense"} {
		resp, err := http.Get(tr.url + "/metainfo/" + d)
		if err != nil {
			t.Fatal(err)
		}
		var eb trackerclient.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || eb.Error != trackerclient.CodeBadRequest {
			t.Fatalf("%s: %d %+v, want 400 bad_request", d, resp.StatusCode, eb)
		}
	}
}

func TestMetainfoFallsThroughOrigins(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "only on one origin")
	empty := newOrigin(t, "127.0.0.10")
	holder := newOrigin(t, "127.0.0.11", blob)
	tr := newTracker(t, downOrigin(t), empty.url, holder.url)
	if _, err := tr.client.Metainfo(context.Background(), blob.Digest); err != nil {
		t.Fatal(err)
	}
	reply := tr.announce(t, agent(1, blob, false))
	if got := peerIDs(reply.Peers); len(got) != 1 || got[0] != "origin 127.0.0.11" {
		t.Fatalf("hand-out %v, want the origin that served the metainfo", got)
	}
	if !tr.srv.origins.Healthy(empty.url) {
		t.Fatal("an origin that answered 404 was reported as failing")
	}
}

// TestMetainfoAsksTheOwnerFirst: of origins that all hold a blob, the first in its
// placement order serves it, so every tracker sends a blob's swarm to the same origin.
func TestMetainfoAsksTheOwnerFirst(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "everywhere")
	origins := map[string]*fakeOrigin{}
	var urls []string
	for i := range 3 {
		o := newOrigin(t, fmt.Sprintf("127.0.0.%d", 10+i), blob)
		origins[o.url] = o
		urls = append(urls, o.url)
	}
	tr := newTracker(t, urls...)
	owner := origins[tr.srv.origins.Owners(blob.Digest)[0].Addr()]
	if _, err := tr.client.Metainfo(context.Background(), blob.Digest); err != nil {
		t.Fatal(err)
	}
	for _, o := range origins {
		want := int64(0)
		if o == owner {
			want = 1
		}
		if o.metainfo.Load() != want {
			t.Errorf("origin %s asked %d times, want %d", o.ip, o.metainfo.Load(), want)
		}
	}
	// The owner failing twice moves it last: the next owner serves the refresh.
	tr.srv.origins.MarkFailed(owner.url)
	tr.srv.origins.MarkFailed(owner.url)
	next := origins[tr.srv.origins.Owners(blob.Digest)[0].Addr()]
	tr.clock.Advance(2 * touchEvery)
	tr.announce(t, agent(1, blob, false))
	// The announce refreshes in the background; wait for it to land (calling load here
	// would start a second fetch once the first is done, so it is not waited on that way).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		tr.srv.mu.RLock()
		b := tr.srv.byDigest[blob.Digest]
		tr.srv.mu.RUnlock()
		if b != nil && b.origin.Addr() == next.url {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refresh never reached the next owner")
		}
	}
	if next == owner || next.metainfo.Load() != 1 {
		t.Fatalf("refresh asked %s %d times", next.ip, next.metainfo.Load())
	}
	if got := peerIDs(tr.announce(t, agent(2, blob, false)).Peers); got[0] != "origin "+next.ip {
		t.Fatalf("hand-out %v, want the origin now seeding, %s", got, next.ip)
	}
}

func TestMetainfoOriginsFailing(t *testing.T) {
	t.Parallel()
	tr := newTracker(t, downOrigin(t), newOrigin(t, "127.0.0.10").url)
	_, err := tr.client.Metainfo(context.Background(), digest.FromString("x"))
	if err == nil || errors.Is(err, trackerclient.ErrNotFound) || !strings.Contains(err.Error(), "502") {
		t.Fatalf("got %v, want 502: one origin failed, so the blob may exist", err)
	}
}

func TestMetainfoRejectsInfoOfAnotherBlob(t *testing.T) {
	t.Parallel()
	blob, other := makeBlob(t, "asked for"), makeBlob(t, "served instead")
	o := newOrigin(t, "127.0.0.10")
	o.blobs[blob.Digest] = other.InfoBytes
	tr := newTracker(t, o.url)
	if _, err := tr.client.Metainfo(context.Background(), blob.Digest); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("got %v, want 502", err)
	}
}

func TestAnnounceHandsOutOriginThenPeers(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "layer")
	o := newOrigin(t, "127.0.0.10", blob)
	tr := newTracker(t, o.url)
	if _, err := tr.client.Metainfo(context.Background(), blob.Digest); err != nil {
		t.Fatal(err)
	}

	first := tr.announce(t, agent(1, blob, false))
	if first.IntervalSeconds != 3 {
		t.Fatalf("interval %d, want 3", first.IntervalSeconds)
	}
	want := p2p.Peer{IP: "127.0.0.10", Port: 15201, Origin: true, Complete: true}
	if len(first.Peers) != 1 || first.Peers[0] != want {
		t.Fatalf("first agent got %+v, want only the origin", first.Peers)
	}

	second := tr.announce(t, agent(2, blob, false))
	got := peerIDs(second.Peers)
	if len(got) != 2 || got[0] != "origin 127.0.0.10" || got[1] != agent(1, blob, false).PeerID {
		t.Fatalf("second agent got %v, want the origin then the first agent", got)
	}
	a1 := second.Peers[1]
	if a1.IP != "127.0.0.1" || a1.Port != 16881 || a1.Origin || a1.Complete {
		t.Fatalf("first agent handed out as %+v", a1)
	}

	seeder := tr.announce(t, agent(3, blob, true))
	if seeder.IntervalSeconds != 60 {
		t.Fatalf("seeder interval %d, want 60", seeder.IntervalSeconds)
	}
	third := tr.announce(t, agent(4, blob, false))
	got = peerIDs(third.Peers)
	if len(got) != 4 || got[0] != "origin 127.0.0.10" || got[1] != agent(3, blob, true).PeerID {
		t.Fatalf("got %v, want the origin, the seeder, then the two downloading agents", got)
	}
	for _, id := range got {
		if id == agent(4, blob, false).PeerID {
			t.Fatalf("caller handed itself: %v", got)
		}
	}
	if n := o.metainfo.Load(); n != 1 {
		t.Fatalf("origin asked for metainfo %d times, want once", n)
	}
}

func TestAnnounceOfUnknownBlobFetchesFromOrigin(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "seen before the tracker restarted")
	o := newOrigin(t, "127.0.0.10", blob)
	tr := newTracker(t, o.url)
	reply := tr.announce(t, agent(1, blob, true))
	if got := peerIDs(reply.Peers); len(got) != 1 || got[0] != "origin 127.0.0.10" {
		t.Fatalf("got %v, want the origin", got)
	}
	if n := o.metainfo.Load(); n != 1 {
		t.Fatalf("origin asked %d times, want once (so it seeds)", n)
	}
	// Without a digest the tracker can't ask the origins, but still introduces peers.
	other := makeBlob(t, "unknown everywhere")
	a := agent(2, other, false)
	a.Digest = ""
	if reply := tr.announce(t, a); len(reply.Peers) != 0 {
		t.Fatalf("got %v", peerIDs(reply.Peers))
	}
	if reply := tr.announce(t, agent(3, other, false)); len(reply.Peers) != 1 || reply.Peers[0].Origin {
		t.Fatalf("got %v, want the other agent only", peerIDs(reply.Peers))
	}
}

func TestAnnounceBadInput(t *testing.T) {
	t.Parallel()
	blob, other := makeBlob(t, "layer"), makeBlob(t, "another layer")
	tr := newTracker(t, newOrigin(t, "127.0.0.10", blob, other).url)
	good, err := json.Marshal(agent(1, blob, false))
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(a *p2p.Announce)) string {
		a := agent(1, blob, false)
		f(&a)
		b, _ := json.Marshal(a)
		return string(b)
	}
	for name, body := range map[string]string{
		"not json":         "{",
		"short info_hash":  with(func(a *p2p.Announce) { a.InfoHash = "abcd" }),
		"non-hex infohash": with(func(a *p2p.Announce) { a.InfoHash = strings.Repeat("z", 40) }),
		"missing peer_id":  with(func(a *p2p.Announce) { a.PeerID = "" }),
		"bad ip":           with(func(a *p2p.Announce) { a.IP = "localhost" }),
		"unspecified ip":   with(func(a *p2p.Announce) { a.IP = "0.0.0.0" }),
		"port 0":           with(func(a *p2p.Announce) { a.Port = 0 }),
		"port too big":     with(func(a *p2p.Announce) { a.Port = 70000 }),
		"bad digest":       with(func(a *p2p.Announce) { a.Digest = "md5:abc" }),
		"mismatch":         with(func(a *p2p.Announce) { a.Digest = other.Digest.String() }),
	} {
		resp, err := http.Post(tr.url+"/announce", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var eb trackerclient.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || eb.Error != trackerclient.CodeBadRequest {
			t.Errorf("%s: %d %+v, want 400 bad_request", name, resp.StatusCode, eb)
		}
	}
	if st := tr.srv.store.Stats(); st.Peers != 0 {
		t.Fatalf("bad announces were stored: %+v", st)
	}
	resp, err := http.Post(tr.url+"/announce", "application/json", bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("good announce: %s", resp.Status)
	}
}

func TestPeersExpire(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "layer")
	tr := newTracker(t, newOrigin(t, "127.0.0.10", blob).url)
	tr.announce(t, agent(1, blob, false))
	tr.announce(t, agent(2, blob, true))
	tr.clock.Advance(11 * time.Second) // past peer_ttl, within a seeder's TTL
	tr.srv.expire()
	if st := tr.srv.store.Stats(); st != (peerstore.Stats{Swarms: 1, Peers: 1}) {
		t.Fatalf("stats %+v, want only the seeder left", st)
	}
	got := peerIDs(tr.announce(t, agent(3, blob, false)).Peers)
	if len(got) != 2 || got[1] != agent(2, blob, true).PeerID {
		t.Fatalf("got %v, want the origin and the seeder", got)
	}
}

// TestStaleBlobIsRefreshed checks that the origin is asked again for a blob still in
// demand, so that it does not stop seeding it while the tracker hands it out.
func TestStaleBlobIsRefreshed(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "long-lived layer")
	o := newOrigin(t, "127.0.0.10", blob)
	tr := newTracker(t, o.url)
	if _, err := tr.client.Metainfo(context.Background(), blob.Digest); err != nil {
		t.Fatal(err)
	}
	tr.clock.Advance(touchEvery / 2)
	tr.announce(t, agent(1, blob, false))
	if n := o.metainfo.Load(); n != 1 {
		t.Fatalf("origin asked %d times before touchEvery", n)
	}
	tr.clock.Advance(touchEvery)
	got, err := tr.client.Metainfo(context.Background(), blob.Digest)
	if err != nil || !bytes.Equal(got, blob.InfoBytes) {
		t.Fatalf("stale entry not served: %v", err)
	}
	<-tr.srv.load(context.Background(), blob.Digest) // joins or follows the background refresh
	if n := o.metainfo.Load(); n < 2 {
		t.Fatalf("origin asked %d times, want a refresh", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	a, b := makeBlob(t, "a"), makeBlob(t, "b")
	o := newOrigin(t, "127.0.0.10", a, b)
	tr := newTracker(t, o.url)
	tr.srv.maxBlobs = 1
	for _, d := range []digest.Digest{a.Digest, b.Digest, a.Digest} {
		if _, err := tr.client.Metainfo(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if n := o.metainfo.Load(); n != 3 {
		t.Fatalf("origin asked %d times, want 3 (a evicted by b)", n)
	}
	if len(tr.srv.byDigest) != 1 || len(tr.srv.byHash) != 1 {
		t.Fatalf("cache holds %d/%d entries", len(tr.srv.byDigest), len(tr.srv.byHash))
	}
}

func TestOps(t *testing.T) {
	t.Parallel()
	tr := newTracker(t, "http://127.0.0.1:1")
	resp, err := http.Get(tr.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %s", resp.Status)
	}
}

func TestExpireLoopStopsWithContext(t *testing.T) {
	t.Parallel()
	tr := newTracker(t, "http://127.0.0.1:1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- tr.srv.ExpireLoop(ctx, time.Millisecond) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAnnounceCompactAndObjectRepliesAgree(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "layer")
	tr := newTracker(t, newOrigin(t, "127.0.0.10", blob).url)
	tr.announce(t, agent(1, blob, true))
	tr.announce(t, agent(2, blob, false))
	post := func(query string) (p2p.AnnounceReply, string) {
		t.Helper()
		body, _ := json.Marshal(agent(3, blob, false))
		resp, err := http.Post(tr.url+"/announce"+query, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw := new(bytes.Buffer)
		if _, err := raw.ReadFrom(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %v", query, resp.Status, err)
		}
		reply, err := trackerclient.DecodeAnnounceReply(bytes.NewReader(raw.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		slices.SortFunc(reply.Peers, func(a, b p2p.Peer) int { return strings.Compare(a.PeerID, b.PeerID) })
		return reply, raw.String()
	}
	objects, rawObjects := post("")
	compact, rawCompact := post("?ns=x&compact=1")
	if !strings.Contains(rawObjects, `"peers":[{`) || !strings.Contains(rawCompact, `"compact_peers":[[`) {
		t.Fatalf("forms not as asked:\n%s\n%s", rawObjects, rawCompact)
	}
	want := []p2p.Peer{
		{IP: "127.0.0.10", Port: 15201, Origin: true, Complete: true},
		{PeerID: agent(1, blob, true).PeerID, IP: "127.0.0.1", Port: 16881, Complete: true},
		{PeerID: agent(2, blob, false).PeerID, IP: "127.0.0.2", Port: 16881},
	}
	for _, r := range []p2p.AnnounceReply{objects, compact} {
		if r.IntervalSeconds != 3 || !slices.Equal(r.Peers, want) {
			t.Fatalf("got %+v, want %+v", r, want)
		}
	}
}

// The compact form exists so that a full hand-out goes out in one write: net/http
// buffers 4 KiB of a connection's output, headers included.
func TestCompactReplyOfFiftyIPv4PeersFitsOneWrite(t *testing.T) {
	t.Parallel()
	peers := make([]p2p.Peer, 50)
	for i := range peers {
		peers[i] = p2p.Peer{PeerID: strings.Repeat("f", 40), IP: "255.255.255.255", Port: 65535, Complete: true}
	}
	headers := len("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nContent-Type: application/json\r\nDate: Mon, 30 Nov 2026 23:59:59 GMT\r\n\r\n")
	if n := len(appendReply(nil, 60, peers, true)) + headers; n > 4096 {
		t.Fatalf("answer of %d bytes, want at most 4096", n)
	}
}

func TestWantsCompact(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]bool{"": false, "compact=1": true, "ns=a&compact=1": true, "compact=0": false, "compact=10": false, "xcompact=1": false} {
		if wantsCompact(q) != want {
			t.Errorf("%q: got %v", q, !want)
		}
	}
}
