package memberset

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/hashring"
	"github.com/shoal-p2p/shoal/lib/originclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestObserve(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		events []bool
		want   health
	}{
		{"initial", nil, health{}},
		{"one failure", []bool{false}, health{fails: 1}},
		{"two failures", []bool{false, false}, health{fails: 2, down: true}},
		{"three failures", []bool{false, false, false}, health{fails: 3, down: true}},
		{"failure then success", []bool{false, true}, health{}},
		{"down then one success", []bool{false, false, true}, health{}},
		{"success resets the count", []bool{false, true, false}, health{fails: 1}},
	} {
		var h health
		for _, ok := range tc.events {
			h = h.observe(ok)
		}
		if h != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, h, tc.want)
		}
	}
}

func TestOrder(t *testing.T) {
	t.Parallel()
	members := []string{"http://a:1", "http://b:1", "http://c:1", "http://d:1"}
	const key = "sha256:0123"
	ring := hashring.Owners(key, members, 0)
	for _, tc := range []struct {
		name string
		down []string
		want []string
	}{
		{"all healthy: ring order", nil, ring},
		{"first owner down goes last", []string{ring[0]}, []string{ring[1], ring[2], ring[3], ring[0]}},
		{"down members keep their order", []string{ring[2], ring[0]}, []string{ring[1], ring[3], ring[0], ring[2]}},
		{"all down: ring order", members, ring},
		{"unknown down member ignored", []string{"http://z:1"}, ring},
	} {
		down := map[string]bool{}
		for _, m := range tc.down {
			down[m] = true
		}
		if got := order(key, members, down); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := order(key, nil, nil); len(got) != 0 {
		t.Errorf("no members: %v", got)
	}
}

func TestValidateNamesKeyAndFix(t *testing.T) {
	t.Parallel()
	for key, edit := range map[string]func(*Config){
		"neither set":     func(c *Config) { c.Static = nil },
		"both set":        func(c *Config) { c.DNS = "origins:15200" },
		"static[1]":       func(c *Config) { c.Static = append(c.Static, "origin2:15200") },
		"base URL":        func(c *Config) { c.Static = append(c.Static, "http://o:1/path") },
		"listed twice":    func(c *Config) { c.Static = append(c.Static, "http://origin1:15200/") },
		"dns:":            func(c *Config) { c.Static, c.DNS = nil, "origins" },
		"dns_interval":    func(c *Config) { c.DNSInterval = 0 },
		"replicas":        func(c *Config) { c.Replicas = 0 },
		"health_interval": func(c *Config) { c.HealthInterval = -time.Second },
	} {
		cfg := DefaultConfig()
		cfg.Static = []string{"http://origin1:15200"}
		edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "(") {
			t.Errorf("%s: got %v, want an error naming it and the fix", key, err)
		}
	}
	for _, cfg := range []Config{
		{Static: []string{"http://a:1", "https://b:2/"}, DNSInterval: 1, Replicas: 1, HealthInterval: 1},
		{DNS: "origins.svc:15200", DNSInterval: 1, Replicas: 5, HealthInterval: 1},
	} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// fakeOrigin serves GET /health, answering 500 while failing is set.
type fakeOrigin struct {
	url     string
	failing atomic.Bool
	checks  atomic.Int64
}

func newFakeOrigin(t *testing.T) *fakeOrigin {
	t.Helper()
	o := &fakeOrigin{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		o.checks.Add(1)
		if o.failing.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("OK\n"))
	}))
	t.Cleanup(srv.Close)
	o.url = srv.URL
	return o
}

type originSet = Set[*originclient.Client]

func newOrigins(cfg Config, hc *http.Client) (*originSet, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	return New("origin", cfg, func(b string) *originclient.Client { return originclient.New(b, hc) }, hc, zap.NewNop(), tally.NoopScope)
}

func newSet(t *testing.T, cfg Config) *originSet {
	t.Helper()
	s, err := newOrigins(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func staticConfig(urls ...string) Config {
	cfg := DefaultConfig()
	cfg.Static = urls
	return cfg
}

func addrs(cs []*originclient.Client) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Addr()
	}
	return out
}

func TestHealthChecksReorderOwners(t *testing.T) {
	t.Parallel()
	o1, o2, o3 := newFakeOrigin(t), newFakeOrigin(t), newFakeOrigin(t)
	s := newSet(t, staticConfig(o1.url, o2.url+"/", o3.url))
	d := digest.FromString("layer")
	ring := addrs(s.Owners(d))
	if want := hashring.Owners(d.String(), []string{o1.url, o2.url, o3.url}, 0); !slices.Equal(ring, want) {
		t.Fatalf("owners %v, want the ring order %v", ring, want)
	}
	if got := addrs(s.Members()); !slices.Equal(got, slices.Sorted(slices.Values(ring))) {
		t.Fatalf("members %v", got)
	}
	if s.Replicas() != 3 {
		t.Fatalf("replicas %d", s.Replicas())
	}

	// Make the first owner sick: one failed check is tolerated, the second moves it last.
	sick := map[string]*fakeOrigin{o1.url: o1, o2.url: o2, o3.url: o3}[ring[0]]
	sick.failing.Store(true)
	ctx := context.Background()
	s.checkOnce(ctx)
	if got := addrs(s.Owners(d)); !slices.Equal(got, ring) || !s.Healthy(ring[0]) {
		t.Fatalf("after one failure: %v, want unchanged %v", got, ring)
	}
	s.checkOnce(ctx)
	want := []string{ring[1], ring[2], ring[0]}
	if got := addrs(s.Owners(d)); !slices.Equal(got, want) || s.Healthy(ring[0]) {
		t.Fatalf("after two failures: %v, want %v", got, want)
	}
	// One good check brings it back.
	sick.failing.Store(false)
	s.checkOnce(ctx)
	if got := addrs(s.Owners(d)); !slices.Equal(got, ring) {
		t.Fatalf("after recovery: %v, want %v", got, ring)
	}
	for _, o := range []*fakeOrigin{o1, o2, o3} {
		if n := o.checks.Load(); n != 3 {
			t.Errorf("%s checked %d times, want 3", o.url, n)
		}
	}
}

func TestUnreachableOriginAndMarkFailed(t *testing.T) {
	t.Parallel()
	up := newFakeOrigin(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // connection refused from now on
	s := newSet(t, staticConfig(up.url, dead.URL))
	s.checkOnce(context.Background())
	s.checkOnce(context.Background())
	if s.Healthy(dead.URL) || !s.Healthy(up.url) {
		t.Fatal("a refused origin is still healthy, or a good one is not")
	}
	for i := range 10 {
		if got := addrs(s.Owners(digest.FromString(strconv.Itoa(i)))); got[0] != up.url {
			t.Fatalf("owners %v: the dead origin is not last", got)
		}
	}

	// Reported failures count like failed checks; unknown bases are ignored.
	s.MarkFailed(up.url)
	if !s.Healthy(up.url) {
		t.Fatal("one reported failure marked the origin down")
	}
	s.MarkFailed(up.url)
	s.MarkFailed("http://stranger:1")
	if s.Healthy(up.url) || s.Healthy("http://stranger:1") {
		t.Fatal("two reported failures did not mark the origin down")
	}
	s.checkOnce(context.Background())
	if !s.Healthy(up.url) {
		t.Fatal("a good check did not bring the origin back")
	}
	if _, ok := s.Member(dead.URL); !ok {
		t.Fatal("unhealthy origin is no longer a member")
	}
	if _, ok := s.Member("http://stranger:1"); ok {
		t.Fatal("stranger is a member")
	}
}

func TestDNSMembership(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.DNS = "origins.test:15200"
	s := newSet(t, cfg)
	if len(s.Members()) != 0 {
		t.Fatal("DNS set has members before resolving")
	}
	var answer atomic.Pointer[[]string]
	var failing atomic.Bool
	s.resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != "origins.test" {
			t.Errorf("resolved %q", host)
		}
		if failing.Load() {
			return nil, errors.New("SERVFAIL")
		}
		var out []netip.Addr
		for _, a := range *answer.Load() {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
	set := func(a ...string) { answer.Store(&a) }
	ctx := context.Background()

	set("10.0.0.2", "10.0.0.1", "10.0.0.1")
	s.resolveOnce(ctx)
	want := []string{"http://10.0.0.1:15200", "http://10.0.0.2:15200"}
	if got := addrs(s.Members()); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	first, _ := s.Member("http://10.0.0.1:15200")
	s.MarkFailed("http://10.0.0.1:15200")
	s.MarkFailed("http://10.0.0.1:15200")

	// A new record joins healthy; staying members keep their client and health.
	set("10.0.0.1", "10.0.0.3", "10.0.0.2")
	s.resolveOnce(ctx)
	if got := addrs(s.Members()); len(got) != 3 || got[2] != "http://10.0.0.3:15200" {
		t.Fatalf("members %v", got)
	}
	if c, _ := s.Member("http://10.0.0.1:15200"); c != first || s.Healthy(first.Addr()) {
		t.Fatal("a staying member lost its client or health")
	}
	if !s.Healthy("http://10.0.0.3:15200") {
		t.Fatal("new member is not healthy")
	}

	// Errors and empty answers keep the members; a shrunk answer drops the missing one.
	failing.Store(true)
	s.resolveOnce(ctx)
	failing.Store(false)
	set()
	s.resolveOnce(ctx)
	if n := len(s.Members()); n != 3 {
		t.Fatalf("%d members after failed resolutions, want 3 kept", n)
	}
	set("10.0.0.3")
	s.resolveOnce(ctx)
	if got := addrs(s.Members()); !slices.Equal(got, []string{"http://10.0.0.3:15200"}) {
		t.Fatalf("members %v", got)
	}
}

func TestRunResolvesAndStops(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.DNS = "origins.test:15200"
	s := newSet(t, cfg)
	resolved := make(chan struct{}, 1)
	s.resolve = func(context.Context, string) ([]netip.Addr, error) {
		select {
		case resolved <- struct{}{}:
		default:
		}
		return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	<-resolved
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(s.Members()); n != 1 {
		t.Fatalf("%d members, want the resolved one", n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := newOrigins(Config{}, nil); err == nil || !strings.Contains(err.Error(), "origins: ") {
		t.Fatalf("got %v, want an error under origins", err)
	}
}
