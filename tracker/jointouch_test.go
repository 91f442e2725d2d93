package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/originclient"
)

// TestMetainfoRequestTouchesOrigin: a metainfo request (a peer about to join) answered
// from the cache asks the origin again in the background, with the request's namespace
// hint, so an origin restarted meanwhile (seeding nothing, its store maybe lost) takes
// the blob up before the peer announces, instead of after touchEvery.
func TestMetainfoRequestTouchesOrigin(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "layer pulled again after an origin restart")
	var (
		mu    sync.Mutex
		repos []string // the repository hint of each metainfo request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/peer" {
			_ = json.NewEncoder(w).Encode(originclient.PeerAddr{IP: "127.0.0.10", Port: 15201})
			return
		}
		mu.Lock()
		repos = append(repos, r.URL.Query().Get(backend.NamespaceParam))
		mu.Unlock()
		_, _ = w.Write(blob.InfoBytes)
	}))
	t.Cleanup(srv.Close)
	asked := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), repos...)
	}
	tr := newTracker(t, srv.URL)
	ctx := backend.WithNamespace(context.Background(), "team/app")

	if got, err := tr.client.Metainfo(ctx, blob.Digest); err != nil || !bytes.Equal(got, blob.InfoBytes) {
		t.Fatalf("metainfo: %v", err)
	}
	if got := asked(); len(got) != 1 {
		t.Fatalf("origin asked %d times, want once", len(got))
	}
	// Well within touchEvery: a hit, answered at once and refreshed.
	tr.clock.Advance(time.Second)
	if got, err := tr.client.Metainfo(ctx, blob.Digest); err != nil || !bytes.Equal(got, blob.InfoBytes) {
		t.Fatalf("metainfo from the cache: %v", err)
	}
	// The refresh runs in the background: wait for it to reach the origin.
	deadline := time.Now().Add(5 * time.Second)
	for len(asked()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := asked(); len(got) != 2 || got[1] != "team/app" {
		t.Fatalf("origin asked with hints %q, want a second request with team/app", got)
	}
	<-tr.srv.load(ctx, blob.Digest) // let the refresh finish before the leak check
}
