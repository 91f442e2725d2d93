package trackerclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/p2p"
)

var blob = digest.FromString("blob")

func serve(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return New(srv.URL+"/", srv.Client())
}

func TestMetainfo(t *testing.T) {
	t.Parallel()
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/metainfo/"+blob.String() {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		_, _ = w.Write([]byte("d4:infoe"))
	})
	got, err := c.Metainfo(context.Background(), blob)
	if err != nil || string(got) != "d4:infoe" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestMetainfoNotFound(t *testing.T) {
	t.Parallel()
	c := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(ErrorBody{Error: CodeNotFound, Message: "no origin holds it"})
	})
	_, err := c.Metainfo(context.Background(), blob)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no origin holds it") {
		t.Fatalf("got %v, want ErrNotFound with the message", err)
	}
}

func TestServerErrorKeepsMessage(t *testing.T) {
	t.Parallel()
	c := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_ = json.NewEncoder(w).Encode(ErrorBody{Error: CodeUpstream, Message: "origins down"})
	})
	_, err := c.Metainfo(context.Background(), blob)
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "origins down") || !strings.Contains(err.Error(), "502") {
		t.Fatalf("got %v", err)
	}
	_, err = c.Announce(context.Background(), p2p.Announce{InfoHash: "ab"})
	if err == nil || !strings.Contains(err.Error(), "origins down") {
		t.Fatalf("announce: got %v", err)
	}
}

func TestAnnounce(t *testing.T) {
	t.Parallel()
	want := p2p.Announce{
		InfoHash: strings.Repeat("ab", 20), Digest: blob.String(), PeerID: strings.Repeat("01", 20),
		IP: "127.0.0.2", Port: 16881, Complete: true,
	}
	reply := p2p.AnnounceReply{IntervalSeconds: 3, Peers: []p2p.Peer{{IP: "127.0.0.10", Port: 15201, Origin: true, Complete: true}}}
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		var got p2p.Announce
		if r.Method != http.MethodPost || r.URL.Path != "/announce" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil || got != want {
			t.Errorf("body %+v, %v", got, err)
		}
		_ = json.NewEncoder(w).Encode(reply)
	})
	got, err := c.Announce(context.Background(), want)
	if err != nil || got.IntervalSeconds != 3 || len(got.Peers) != 1 || got.Peers[0] != reply.Peers[0] {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestAnnounceBadReply(t *testing.T) {
	t.Parallel()
	c := serve(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) })
	if _, err := c.Announce(context.Background(), p2p.Announce{}); err == nil || !strings.Contains(err.Error(), "bad reply") {
		t.Fatalf("got %v", err)
	}
}

func TestAnnounceAsksForCompactAndDecodesBothForms(t *testing.T) {
	t.Parallel()
	peers := []p2p.Peer{
		{IP: "127.0.0.10", Port: 15201, Origin: true, Complete: true},
		{PeerID: strings.Repeat("02", 20), IP: "127.0.0.3", Port: 16881, Complete: true},
		{PeerID: strings.Repeat("03", 20), IP: "::1", Port: 16882},
	}
	for name, body := range map[string]string{
		// An older tracker ignores ?compact=1 and answers with objects.
		"objects": `{"interval_seconds":3,"peers":[{"peer_id":"","ip":"127.0.0.10","port":15201,"origin":true,"complete":true},` +
			`{"peer_id":"` + peers[1].PeerID + `","ip":"127.0.0.3","port":16881,"origin":false,"complete":true},` +
			`{"peer_id":"` + peers[2].PeerID + `","ip":"::1","port":16882,"origin":false,"complete":false}]}`,
		"compact": `{"interval_seconds":3,"compact_peers":[["","127.0.0.10",15201,3],["` + peers[1].PeerID + `","127.0.0.3",16881,2],["` +
			peers[2].PeerID + `","::1",16882,0]]}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.RawQuery != "compact=1" {
					t.Errorf("query %q, want compact=1", r.URL.RawQuery)
				}
				_, _ = w.Write([]byte(body))
			})
			got, err := c.Announce(context.Background(), p2p.Announce{})
			if err != nil || got.IntervalSeconds != 3 || !slices.Equal(got.Peers, peers) {
				t.Fatalf("got %+v, %v; want %+v", got, err, peers)
			}
		})
	}
}

func TestDecodeAnnounceReplyRejectsBadCompactPeers(t *testing.T) {
	t.Parallel()
	for _, peer := range []string{`["id","127.0.0.1",1]`, `["id","127.0.0.1","1",0]`, `{"ip":"127.0.0.1"}`, `[1,"127.0.0.1",1,0]`} {
		_, err := DecodeAnnounceReply(strings.NewReader(`{"interval_seconds":3,"compact_peers":[` + peer + `]}`))
		if err == nil || !strings.Contains(err.Error(), "compact peer") {
			t.Errorf("%s: got %v, want a compact peer error", peer, err)
		}
	}
}
