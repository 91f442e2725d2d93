package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// New starts tally's report loop; Close must stop it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// scrape GETs the registry's handler and returns the Prometheus text.
func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	b, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, l+"\n") {
			t.Errorf("metrics lack %q; got:\n%s", l, text)
		}
	}
}

// TestCloseFlushes: counters incremented before Close are served afterwards, named
// <prefix>_<name>, with their tags as labels. The interval is long so only Close can
// have flushed them.
func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	reg, err := New("shoal_test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	reg.Scope.Counter("requests").Inc(2)
	reg.Scope.Tagged(map[string]string{"code": "BLOB_UNKNOWN"}).Counter("errors").Inc(1)
	reg.Scope.SubScope("p2p").Counter("blobs").Inc(3)
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	wantLines(t, scrape(t, reg),
		"# TYPE shoal_test_requests counter",
		"shoal_test_requests 2",
		`shoal_test_errors{code="BLOB_UNKNOWN"} 1`,
		"shoal_test_p2p_blobs 3",
		"# TYPE go_goroutines gauge", // the runtime's own metrics come along
	)
}

// TestIntervalFlushes: without Close, the report loop publishes on its interval. The
// loop runs in a synctest bubble, so the interval passes on the fake clock.
func TestIntervalFlushes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		reg, err := New("shoal_tick", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		reg.Scope.Counter("ticks").Inc(1)
		synctest.Wait()
		if text := scrape(t, reg); strings.Contains(text, "shoal_tick_ticks 1\n") {
			t.Fatalf("reported before the interval:\n%s", text)
		}
		time.Sleep(time.Minute) // fake time: returns once the loop has ticked
		synctest.Wait()
		wantLines(t, scrape(t, reg), "shoal_tick_ticks 1")
	})
}

// TestSanitizes: names, tag keys and tag values with characters Prometheus refuses are
// rewritten instead of making the reporter panic.
func TestSanitizes(t *testing.T) {
	t.Parallel()
	reg, err := New("shoal-sanitize", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	reg.Scope.Counter("cache.hits-total").Inc(4)
	reg.Scope.Tagged(map[string]string{"peer.kind": "origin-1.a"}).Counter("bytes.in").Inc(5)
	reg.Scope.SubScope("sub-scope").Gauge("queue.depth").Update(6)
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	wantLines(t, scrape(t, reg),
		"shoal_sanitize_cache_hits_total 4",
		`shoal_sanitize_bytes_in{peer_kind="origin_1_a"} 5`,
		"shoal_sanitize_sub_scope_queue_depth 6",
	)
}

// TestIndependentRegistries: two registries in one process (two components, or a test
// run twice) register the same names without colliding, and each serves only its own.
func TestIndependentRegistries(t *testing.T) {
	t.Parallel()
	a, err := New("shoal_same", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New("shoal_same", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a.Scope.Counter("requests").Inc(1)
	b.Scope.Counter("requests").Inc(7)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wantLines(t, scrape(t, a), "shoal_same_requests 1")
	wantLines(t, scrape(t, b), "shoal_same_requests 7")
}
