package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/originset"
)

// A head fetched ahead and then not wanted (the client asked for a range) is closed,
// so it does not hold a connection the origin is writing into.
func TestDroppedHeadPrefetchIsClosed(t *testing.T) {
	t.Parallel()
	closed, ended := make(chan struct{}), make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write([]byte("the first bytes"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done(): // the client closed the connection
			close(closed)
		case <-ended:
		}
	}))
	t.Cleanup(origin.Close)
	t.Cleanup(func() { close(ended) }) // runs first: lets a handler still waiting end
	cfg := originset.DefaultConfig()
	cfg.Static = []string{origin.URL}
	set, err := originset.New(cfg, origin.Client(), zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	p := prefetchHead(context.Background(), set, digest.FromString("blob"), 1<<20)
	p.drop()
	select {
	case <-closed:
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("the dropped head's connection is still open")
	}
	<-p.done
	if p.err != nil {
		t.Fatalf("prefetch: %v", p.err)
	}
}
