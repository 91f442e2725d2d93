package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/p2p"
)

// BenchmarkAnnounce measures the tracker's announce path in-process (router, access
// log, decode, store, hand-out of up to 50 peers, compact encode), without the HTTP server
// and the network: a populated tracker (500 blobs, 15,000 agents in ~3 swarms each,
// 20% complete, Zipf popularity as in test/perf/tracker) takes announces of its
// members in turn. The end-to-end figure on one core is `make bench-tracker`.
func BenchmarkAnnounce(b *testing.B) {
	const blobs, agents = 500, 15000
	rng := rand.New(rand.NewPCG(1, 2))
	results := make([]metainfo.Result, blobs)
	for i := range results {
		results[i] = makeBlob(b, fmt.Sprintf("blob %d", i))
	}
	o := newOrigin(b, "127.0.0.10", results...)
	tr := newTracker(b, o.url)
	h := tr.srv.Handler(nil)
	zipf := rand.NewZipf(rng, 1.1, 1, blobs-1)
	var bodies [][]byte
	for a := range agents {
		seen := map[uint64]bool{}
		for k := 1 + rng.IntN(5); len(seen) < k; {
			i := zipf.Uint64()
			if seen[i] {
				continue
			}
			seen[i] = true
			body, _ := json.Marshal(p2p.Announce{
				InfoHash: infoHash(results[i]), Digest: results[i].Digest.String(),
				PeerID: fmt.Sprintf("%040x", a+1), IP: fmt.Sprintf("10.1.%d.%d", a>>8, a&255),
				Port: 16001, Complete: rng.Float64() < 0.2,
			})
			bodies = append(bodies, body)
		}
	}
	rng.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	w := &discardWriter{h: http.Header{}}
	r := httptest.NewRequest(http.MethodPost, "/announce?compact=1", nil)
	body := &bytes.Reader{}
	do := func(data []byte) *discardWriter {
		clear(w.h)
		w.status, w.body = 0, w.body[:0]
		body.Reset(data)
		r.Body, r.ContentLength = io.NopCloser(body), int64(len(data))
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("announce: %d %s", w.status, w.body)
		}
		return w
	}
	for _, body := range bodies { // learn every blob, fill the store
		do(body)
	}
	var peers int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		w := do(bodies[i%len(bodies)])
		if i%64 == 0 {
			peers += 64 * bytes.Count(w.body, []byte(`["`)) // a compact entry opens with its peer id
		}
	}
	b.ReportMetric(float64(peers)/float64(b.N), "peers/op")
}

// discardWriter is a ResponseWriter that keeps the last answer, reused across requests
// so the benchmark measures the handler, not a recorder.
type discardWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}
