package p2p

import (
	"sync"
	"sync/atomic"

	"github.com/uber-go/tally/v4"
)

// Stats are an engine's totals since New.
type Stats struct {
	// BytesFromOrigins and BytesFromPeers count piece data received and needed, split
	// by whether the sender was handed out as an origin.
	BytesFromOrigins int64
	BytesFromPeers   int64
	// BytesPulled counts piece data read from origins over HTTP (Fetch with
	// OriginRanges), whether or not it was needed in the end.
	BytesPulled int64
	// BytesRedundant counts piece data received from peers that was not needed any
	// more (another peer, or a pull, delivered it first).
	BytesRedundant int64
	// BytesUploaded counts piece data sent to peers.
	BytesUploaded int64
	// BlobsCompleted counts downloads committed to the store.
	BlobsCompleted int64
	// BadPieces counts pieces that failed verification.
	BadPieces int64
}

// metrics reports to the scope the engine was given. Names carry no "p2p_" prefix:
// components pass a scope already named "p2p" (shoal_agent_p2p_bytes_downloaded).
type metrics struct {
	fromOrigins, fromPeers, fromOriginsHTTP, redundant, uploaded, completed, bad tally.Counter
	quarantined                                                                  tally.Counter
	active, peers                                                                tally.Gauge

	nFromOrigins, nFromPeers, nPulled, nCompleted atomic.Int64

	mu         sync.Mutex // guards the sampled totals
	nUploaded  int64
	nRedundant int64
	nBad       int64
}

func newMetrics(scope tally.Scope) *metrics {
	downloaded := func(source string) tally.Counter {
		return scope.Tagged(map[string]string{"source": source}).Counter("bytes_downloaded")
	}
	return &metrics{
		fromOrigins:     downloaded("origin"),
		fromPeers:       downloaded("peer"),
		fromOriginsHTTP: downloaded("origin_http"),
		redundant:       scope.Counter("bytes_redundant"),
		uploaded:        scope.Counter("bytes_uploaded"),
		completed:       scope.Counter("blobs_completed"),
		bad:             scope.Counter("bad_pieces"),
		quarantined:     scope.Counter("blobs_quarantined"),
		active:          scope.Gauge("active_torrents"),
		peers:           scope.Gauge("peer_connections"),
	}
}

func (m *metrics) downloaded(fromOrigin bool, n int64) {
	if fromOrigin {
		m.fromOrigins.Inc(n)
		m.nFromOrigins.Add(n)
		return
	}
	m.fromPeers.Inc(n)
	m.nFromPeers.Add(n)
}

// pulled counts n bytes read from an origin over HTTP.
func (m *metrics) pulled(n int64) {
	m.fromOriginsHTTP.Inc(n)
	m.nPulled.Add(n)
}

func (m *metrics) blobCompleted() {
	m.completed.Inc(1)
	m.nCompleted.Add(1)
}

// sample takes the client's cumulative upload, redundant and bad-piece totals,
// reports what is new, and returns the number of new bad pieces.
func (m *metrics) sample(uploaded, redundant, bad int64) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := uploaded - m.nUploaded; d > 0 {
		m.uploaded.Inc(d)
		m.nUploaded = uploaded
	}
	if d := redundant - m.nRedundant; d > 0 {
		m.redundant.Inc(d)
		m.nRedundant = redundant
	}
	d := bad - m.nBad
	if d > 0 {
		m.bad.Inc(d)
		m.nBad = bad
	}
	return max(d, 0)
}

func (m *metrics) stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{
		BytesFromOrigins: m.nFromOrigins.Load(),
		BytesFromPeers:   m.nFromPeers.Load(),
		BytesPulled:      m.nPulled.Load(),
		BytesRedundant:   m.nRedundant,
		BytesUploaded:    m.nUploaded,
		BlobsCompleted:   m.nCompleted.Load(),
		BadPieces:        m.nBad,
	}
}
