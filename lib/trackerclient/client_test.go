package trackerclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
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
