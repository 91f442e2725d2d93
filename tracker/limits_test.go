package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/peerstore"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
)

// newTrackerMaxPeers is newTracker with max_peers n; it also returns the peer store,
// so a test can fill a swarm without an announce per peer.
func newTrackerMaxPeers(t *testing.T, n int, origins ...string) (*tracker, *peerstore.Store) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Origins.Static = origins
	cfg.MaxPeers = n
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	set, err := originset.New(cfg.Origins, nil, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	store := peerstore.New(cfg.PeerTTL, cfg.SeederInterval+cfg.PeerTTL, cfg.MaxPeers)
	s := NewServer(cfg, set, store, zap.NewNop(), tally.NoopScope)
	hs := httptest.NewServer(s.Handler(nil))
	t.Cleanup(hs.Close)
	return &tracker{srv: s, url: hs.URL, client: trackerclient.New(hs.URL, hs.Client())}, store
}

// A hand-out holds at most max_peers, the origin first, whatever number the client
// asks for: announces carry none, and a BitTorrent-style numwant (in the body or the
// query) is ignored.
func TestAnnounceHandsOutAtMostMaxPeers(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "crowded layer")
	o := newOrigin(t, "127.0.0.10", blob)
	tr, _ := newTrackerMaxPeers(t, 5, o.url)
	for n := 1; n <= 20; n++ {
		tr.announce(t, agent(n, blob, n%2 == 0))
	}
	if got := tr.announce(t, agent(21, blob, false)).Peers; len(got) != 5 || !got[0].Origin {
		t.Fatalf("hand-out %v, want 5 peers, the origin first", peerIDs(got))
	}
	a := agent(22, blob, false)
	body := fmt.Sprintf(`{"info_hash":%q,"digest":%q,"peer_id":%q,"ip":%q,"port":%d,"complete":false,"num_want":1000,"numwant":1000}`,
		a.InfoHash, a.Digest, a.PeerID, a.IP, a.Port)
	for _, query := range []string{"?numwant=1000", "?compact=1&numwant=1000"} {
		resp, err := http.Post(tr.url+"/announce"+query, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		reply, err := trackerclient.DecodeAnnounceReply(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil || len(reply.Peers) != 5 {
			t.Fatalf("%s asking for 1000: %d, %v, %d peers, want 5", query, resp.StatusCode, err, len(reply.Peers))
		}
	}
}

// At the most max_peers allows, with peers whose addresses are as long as they come,
// the reply in either form fits what an agent reads, and the agent's client decodes
// every peer.
func TestLargestHandOutFitsAnAgent(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "very crowded layer")
	o := newOrigin(t, "127.0.0.10", blob)
	tr, store := newTrackerMaxPeers(t, maxMaxPeers, o.url)
	now := tr.srv.now()
	for n := range 2 * maxMaxPeers {
		store.Announce(now, infoHash(blob), p2p.Peer{
			PeerID: fmt.Sprintf("%040x", n), IP: fmt.Sprintf("2001:db8:ffff:ffff:ffff:ffff:%04x:%04x", n>>16, n&0xffff), Port: 65535,
		})
	}
	a := agent(1, blob, false)
	reply, err := tr.client.Announce(context.Background(), a) // compact, as agents ask
	if err != nil || len(reply.Peers) != maxMaxPeers {
		t.Fatalf("agent's announce: %d peers, %v; want %d", len(reply.Peers), err, maxMaxPeers)
	}
	body := fmt.Sprintf(`{"info_hash":%q,"digest":%q,"peer_id":%q,"ip":%q,"port":%d,"complete":false}`,
		a.InfoHash, a.Digest, a.PeerID, a.IP, a.Port)
	resp, err := http.Post(tr.url+"/announce", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(raw) > 256<<10 {
		t.Fatalf("objects reply of %d peers is %d bytes, near the 1 MiB agents read", maxMaxPeers, len(raw))
	}
	if reply, err := trackerclient.DecodeAnnounceReply(strings.NewReader(string(raw))); err != nil || len(reply.Peers) != maxMaxPeers {
		t.Fatalf("objects reply: %d peers, %v", len(reply.Peers), err)
	}
}

func TestMaxPeersBounded(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Origins.Static = []string{"http://origin:15200"}
	cfg.MaxPeers = maxMaxPeers + 1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_peers: 1001 is not in 1..1000") {
		t.Fatalf("got %v, want max_peers named with its bound", err)
	}
}
