package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/blobstore"
)

// testStallTimeout is long enough that a loaded machine does not stall the healthy
// fetches of these tests, short enough to keep them quick.
const testStallTimeout = time.Second

// TestStalledSmallBlob: an origin that accepts a blob GET and sends nothing gets the
// client a 503 once stall_timeout passes with no byte, nothing is cached, and the
// blob is served once the origin sends again.
func TestStalledSmallBlob(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.originHang = make(chan struct{})
	a := newAgentWith(t, c, "127.0.0.90", func(cfg *Config) { cfg.StallTimeout = testStallTimeout })
	data := randomBlob(10_000, 4)
	d := c.add(data)
	path := "/v2/library/busybox/blobs/" + d.String()

	r := a.do(t, http.MethodGet, path)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("GET from a stalled origin: %d %s, want 503", r.status, r.body)
	}
	if e := ociError(t, r); !strings.Contains(e.Detail, "stall_timeout") {
		t.Errorf("error detail %q does not name stall_timeout", e.Detail)
	}
	if _, err := a.store.Stat(d); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("after a stalled fetch the store has the blob: %v", err)
	}
	recoverFromStall(t, c, a, path, data)
}

// TestStalledSwarmBlob: a blob fetched through the swarm with no peer and an origin
// that sends nothing: the client's response is cut off (a short body, the connection
// closed) once stall_timeout passes, never a hang and never wrong bytes; a retry once
// the origin sends gets the whole blob.
func TestStalledSwarmBlob(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.originHang = make(chan struct{})
	a := newAgentWith(t, c, "127.0.0.91", func(cfg *Config) { cfg.StallTimeout = testStallTimeout })
	data := randomBlob(2<<20+999, 5)
	d := c.add(data)
	path := "/v2/library/big/blobs/" + d.String()

	resp, err := a.hc.Get(a.url + path)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && err == nil:
		t.Fatalf("a stalled fetch answered the whole body (%d bytes)", len(body))
	case resp.StatusCode == http.StatusOK && !errors.Is(err, io.ErrUnexpectedEOF):
		t.Fatalf("body read: %v, want unexpected EOF (the connection closed)", err)
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable:
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	if !bytes.HasPrefix(data, body) {
		t.Fatalf("the %d bytes sent before the cut are not the blob's", len(body))
	}
	recoverFromStall(t, c, a, path, data)
}

// recoverFromStall checks the one stall was counted, lets the origin send again and
// checks the blob is then served whole.
func recoverFromStall(t *testing.T, c *cluster, a *agent, path string, data []byte) {
	t.Helper()
	if n := a.scope.Snapshot().Counters()["stalled+"]; n == nil || n.Value() != 1 {
		t.Errorf("stalled counter: %v", n)
	}
	c.mu.Lock()
	close(c.originHang)
	c.originHang = nil
	c.mu.Unlock()
	if r := a.do(t, http.MethodGet, path); r.status != http.StatusOK || !bytes.Equal(r.body, data) {
		t.Fatalf("GET once the origin sends: %d, %d bytes", r.status, len(r.body))
	}
}
