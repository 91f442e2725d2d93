package eviction

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/blobstore"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func cand(name string, size int64, age, idle time.Duration, pinned bool) Candidate {
	return Candidate{Entry: blobstore.Entry{Digest: digest.FromString(name), Size: size,
		Created: now.Add(-age), LastAccess: now.Add(-idle)}, Pinned: pinned}
}

func TestPlan(t *testing.T) {
	d := func(names ...string) []digest.Digest {
		var out []digest.Digest
		for _, n := range names {
			out = append(out, digest.FromString(n))
		}
		return out
	}
	cases := []struct {
		name  string
		cfg   Config
		cands []Candidate
		want  []digest.Digest
	}{
		{"tti", Config{TTI: time.Hour}, []Candidate{
			cand("idle", 1, 3*time.Hour, 2*time.Hour, false),
			cand("fresh", 1, 3*time.Hour, time.Minute, false),
			cand("idle-pinned", 1, 3*time.Hour, 2*time.Hour, true)}, d("idle")},
		{"ttl", Config{TTL: time.Hour}, []Candidate{
			cand("old", 1, 2*time.Hour, 0, false), cand("young", 1, time.Minute, 0, false)}, d("old")},
		{"under high watermark", Config{Capacity: 100}, []Candidate{
			cand("a", 50, 0, time.Hour, false), cand("b", 40, 0, time.Minute, false)}, nil},
		{"over high: LRU down to low, skipping pinned", Config{Capacity: 100}, []Candidate{
			cand("newest", 30, 0, time.Second, false),
			cand("oldest-pinned", 30, 0, 3*time.Hour, true),
			cand("old", 20, 0, 2*time.Hour, false),
			cand("mid", 15, 0, time.Hour, false)}, d("old")}, // 95 -> 75 <= 80
		{"disabled", Config{}, []Candidate{cand("a", 1e12, 1e6*time.Hour, 1e6*time.Hour, false)}, nil},
	}
	for _, c := range cases {
		if got := Plan(now, c.cands, c.cfg); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := (Config{TTI: time.Hour, Capacity: 10}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Config{{TTI: -1}, {Capacity: -1}, {HighWatermark: 0.5, LowWatermark: 0.7}, {HighWatermark: 1.5}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRunnerRemovesFromStoreButNotPinned(t *testing.T) {
	s, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(digest.FromString("keep"), strings.NewReader("keep")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(digest.FromString("drop"), strings.NewReader("drop")); err != nil {
		t.Fatal(err)
	}
	pinned := func(d digest.Digest) (bool, error) { return d == digest.FromString("keep"), nil }
	r := NewRunner(Config{TTL: time.Minute}, s, pinned, nil, zap.NewNop(), tally.NoopScope)
	removed, err := r.Once(time.Now().Add(time.Hour))
	if err != nil || !slices.Equal(removed, []digest.Digest{digest.FromString("drop")}) {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if _, err := s.Stat(digest.FromString("drop")); err == nil {
		t.Fatal("evicted blob still in the store")
	}
	if _, err := s.Stat(digest.FromString("keep")); err != nil {
		t.Fatalf("pinned blob evicted: %v", err)
	}
}
