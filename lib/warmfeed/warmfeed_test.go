package warmfeed_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/preheat"
	"github.com/shoal-p2p/shoal/lib/warmfeed"
	"github.com/shoal-p2p/shoal/lib/warmfeed/warmfeedtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLocalConformance(t *testing.T) {
	warmfeedtest.Run(t, func(*testing.T) warmfeed.Tracker {
		return &warmfeed.Local{Name: "local", Board: warmfeed.NewBoard("e1", 0)}
	})
}

func TestClientConformance(t *testing.T) {
	warmfeedtest.Run(t, func(t *testing.T) warmfeed.Tracker {
		r := chi.NewRouter()
		warmfeed.Routes(r, warmfeed.NewBoard("e1", 0), time.Now)
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		return warmfeed.NewClient(srv.URL, srv.Client())
	})
}

// TestHandlerRefusesBadBodies: malformed, unknown-field and oversized bodies are 400
// with a message, and store nothing.
func TestHandlerRefusesBadBodies(t *testing.T) {
	b := warmfeed.NewBoard("e1", 0)
	r := chi.NewRouter()
	warmfeed.Routes(r, b, time.Now)
	srv := httptest.NewServer(r)
	defer srv.Close()
	for name, body := range map[string]string{
		"not json":      "{",
		"unknown field": `{"digest":"` + dA.String() + `","expires":"2099-01-01T00:00:00Z","extra":1}`,
		"two values":    `{"digest":"` + dA.String() + `","expires":"2099-01-01T00:00:00Z"} {}`,
		"oversized":     `{"repository":"` + strings.Repeat("x", 70<<10) + `"}`,
	} {
		resp, err := http.Post(srv.URL+warmfeed.PathIntents, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "bad_request") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, msg)
		}
	}
	resp, err := http.Get(srv.URL + warmfeed.PathReports + "?digest=nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("reports of a bad digest: %d", resp.StatusCode)
	}
	if st := b.Expire(time.Now()); st != (warmfeed.Stats{}) {
		t.Errorf("stored: %+v", st)
	}
}

// node is one fake agent: its follower and the blobs it holds.
type node struct {
	id     string
	mu     sync.Mutex
	held   map[digest.Digest]bool
	warms  int
	fail   map[digest.Digest]error
	cancel context.CancelFunc
	done   chan struct{}
}

func (n *node) warm(_ context.Context, _ string, d digest.Digest) error {
	time.Sleep(time.Second) // a fetch takes a while
	n.mu.Lock()
	defer n.mu.Unlock()
	n.warms++
	if err := n.fail[d]; err != nil {
		return err
	}
	n.held[d] = true
	return nil
}

func (n *node) stop() { n.cancel(); <-n.done }

// swarm is trackers and agents in one process.
type swarm struct {
	mu       sync.Mutex
	trackers []*warmfeed.Local
	down     map[string]bool
	nodes    []*node
}

func newSwarm(trackers int) *swarm {
	s := &swarm{down: map[string]bool{}}
	for i := range trackers {
		s.trackers = append(s.trackers, s.tracker(fmt.Sprintf("tracker%d", i+1), "e1"))
	}
	return s
}

func (s *swarm) tracker(name, epoch string) *warmfeed.Local {
	return &warmfeed.Local{Name: name, Board: warmfeed.NewBoard(name+"-"+epoch, 5*time.Second),
		Down: func() error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.down[name] {
				return errors.New(name + " is down")
			}
			return nil
		}}
}

// restart replaces tracker i by one with an empty board of a new epoch.
func (s *swarm) restart(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trackers[i] = s.tracker(s.trackers[i].Name, "e2")
}

func (s *swarm) list() []warmfeed.Tracker {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]warmfeed.Tracker, len(s.trackers))
	for i, t := range s.trackers {
		out[i] = t
	}
	return out
}

func (s *swarm) setDown(name string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[name] = down
}

func (s *swarm) start(id string) *node {
	n := &node{id: id, held: map[digest.Digest]bool{}, fail: map[digest.Digest]error{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	f := warmfeed.NewFollower(warmfeed.FollowerConfig{PollInterval: time.Second, MaxBlobs: 2},
		warmfeed.Agent{ID: id, Name: "node " + id}, s.list, n.warm, zap.NewNop(), tally.NoopScope)
	go func() { defer close(n.done); _ = f.Run(ctx) }()
	s.nodes = append(s.nodes, n)
	return n
}

func publisher(t *testing.T, s *swarm) *warmfeed.Publisher {
	p := warmfeed.NewPublisher(s.list, time.Hour, zap.NewNop(), warmfeed.WithIntervals(500*time.Millisecond, 10*time.Second))
	t.Cleanup(p.Close)
	return p
}

// warmAll warms d on every agent at once, as a job's blobs do, and returns each error.
func warmAll(p *warmfeed.Publisher, agents []string, d digest.Digest) map[string]error {
	var mu sync.Mutex
	out := map[string]error{}
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			err := p.Warm(ctx, preheat.Host{Kind: preheat.HostAgent, Addr: a}, d)
			mu.Lock()
			out[a] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

var (
	dA = digest.FromString("layer a")
	dB = digest.FromString("layer b")
)

func TestWarmEveryAgent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSwarm(2)
		n1, n2, n3 := s.start("n1"), s.start("n2"), s.start("n3")
		defer func() { n1.stop(); n2.stop(); n3.stop() }()
		time.Sleep(1500 * time.Millisecond) // every agent has polled
		p := publisher(t, s)
		agents, err := p.Agents(context.Background())
		if err != nil || strings.Join(agents, ",") != "n1,n2,n3" {
			t.Fatalf("agents %v %v", agents, err)
		}
		n2.fail[dB] = errors.New("no room in data_dir")
		for _, d := range []digest.Digest{dA, dB} {
			errs := warmAll(p, agents, d)
			for _, a := range agents {
				want := a == "n2" && d == dB
				if (errs[a] != nil) != want {
					t.Errorf("warm %s on %s: %v", d, a, errs[a])
				}
			}
			if err := errs["n2"]; d == dB && (err == nil || !strings.Contains(err.Error(), "no room in data_dir")) {
				t.Errorf("n2's failure: %v", err)
			}
		}
		for _, n := range []*node{n1, n2, n3} {
			if !n.held[dA] || n.held[dB] == (n.id == "n2") {
				t.Errorf("%s holds %v", n.id, n.held)
			}
		}
		// Warm again: the agent that failed tries again (and now succeeds); the
		// others answer from their earlier success at once, without waiting.
		delete(n2.fail, dB)
		warms := n1.warms
		if errs := warmAll(p, agents, dB); errs["n1"] != nil || errs["n2"] != nil || errs["n3"] != nil {
			t.Fatalf("second warm: %v", errs)
		}
		if !n2.held[dB] {
			t.Error("n2 did not try again")
		}
		time.Sleep(3 * time.Second)
		if n1.warms != warms+1 {
			// it reads the blob again (it may have been evicted) and reports it held
			t.Errorf("n1 warmed %d times more, want 1", n1.warms-warms)
		}
	})
}

func TestWarmSurvivesATrackerDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSwarm(2)
		n1 := s.start("n1")
		defer n1.stop()
		time.Sleep(1500 * time.Millisecond)
		p := publisher(t, s)
		s.setDown("tracker1", true) // the one the agent reads
		if errs := warmAll(p, []string{"n1"}, dA); errs["n1"] != nil {
			t.Fatalf("with tracker1 down: %v", errs["n1"])
		}
		// tracker2 restarts empty (a new epoch): the agent reads it from the start,
		// and the publisher's repost puts the blob back.
		s.setDown("tracker1", false)
		s.restart(1)
		if errs := warmAll(p, []string{"n1"}, dB); errs["n1"] != nil {
			t.Fatalf("after tracker2's restart: %v", errs["n1"])
		}
		if !n1.held[dA] || !n1.held[dB] {
			t.Errorf("n1 holds %v", n1.held)
		}
	})
}

func TestWarmAgentGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSwarm(1)
		n1, n2 := s.start("n1"), s.start("n2")
		defer n1.stop()
		time.Sleep(1500 * time.Millisecond)
		n2.stop() // stops before it reads the blob
		errs := warmAll(publisher(t, s), []string{"n1", "n2"}, dA)
		if errs["n1"] != nil || !errors.Is(errs["n2"], warmfeed.ErrAgentGone) {
			t.Fatalf("errors %v", errs)
		}
	})
}

func TestWarmWithoutTrackers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := publisher(t, newSwarm(0))
		if _, err := p.Agents(context.Background()); !errors.Is(err, warmfeed.ErrNoTrackers) {
			t.Errorf("agents: %v", err)
		}
		if err := p.Warm(context.Background(), preheat.Host{Kind: preheat.HostAgent, Addr: "n1"}, dA); !errors.Is(err, warmfeed.ErrNoTrackers) {
			t.Errorf("warm: %v", err)
		}
		s := newSwarm(1)
		s.setDown("tracker1", true)
		if err := publisher(t, s).Warm(context.Background(), preheat.Host{Kind: preheat.HostAgent, Addr: "n1"}, dA); err == nil || !strings.Contains(err.Error(), "tracker1 is down") {
			t.Errorf("warm with every tracker down: %v", err)
		}
	})
}

func TestOutcome(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	ok := warmfeed.Report{Agent: "a", OK: true, At: t0}
	oldFail := warmfeed.Report{Agent: "a", Error: "old", At: t0}
	newFail := warmfeed.Report{Agent: "a", Error: "new", At: t0.Add(time.Second)}
	live := map[string]bool{"a": true}
	for _, c := range []struct {
		name    string
		st      warmfeed.WatchState
		done    bool
		errPart string
	}{
		{"no report yet", warmfeed.WatchState{Live: live}, false, ""},
		{"held", warmfeed.WatchState{Reports: map[string]warmfeed.Report{"a": ok}, Live: live}, true, ""},
		{"held, gone since", warmfeed.WatchState{Reports: map[string]warmfeed.Report{"a": ok}, Live: map[string]bool{}}, true, ""},
		{"old failure waits", warmfeed.WatchState{Reports: map[string]warmfeed.Report{"a": oldFail},
			Initial: map[string]warmfeed.Report{"a": oldFail}, Live: live}, false, ""},
		{"new failure", warmfeed.WatchState{Reports: map[string]warmfeed.Report{"a": newFail},
			Initial: map[string]warmfeed.Report{"a": oldFail}, Live: live}, true, "new"},
		{"failure, nothing before", warmfeed.WatchState{Reports: map[string]warmfeed.Report{"a": oldFail}, Live: live}, true, "old"},
		{"gone", warmfeed.WatchState{Live: map[string]bool{"b": true},
			MissingSince: map[string]time.Time{"a": t0}}, true, "no longer polls"},
		{"missing, not for long", warmfeed.WatchState{Live: map[string]bool{"b": true},
			MissingSince: map[string]time.Time{"a": t0.Add(50 * time.Second)}}, false, ""},
		{"liveness unknown", warmfeed.WatchState{}, false, ""},
	} {
		done, err := warmfeed.Outcome("a", c.st, t0.Add(time.Minute), 20*time.Second)
		if done != c.done || (err == nil) != (c.errPart == "") || (err != nil && !strings.Contains(err.Error(), c.errPart)) {
			t.Errorf("%s: done %v, err %v", c.name, done, err)
		}
	}
}

// TestWarmSurvivesTheOnlyTrackerRestarting: a lone tracker restarted mid-warm comes back
// with an empty board; its agents are missing from it only until their next poll,
// well inside DefaultGoneAfter, so none fails, and the publisher's repost lists the
// blob again.
func TestWarmSurvivesTheOnlyTrackerRestarting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSwarm(1)
		n1, n2 := s.start("n1"), s.start("n2")
		defer func() { n1.stop(); n2.stop() }()
		time.Sleep(1500 * time.Millisecond)
		p := publisher(t, s)
		n1.fail[dA] = errors.New("first try fails")
		go func() {
			time.Sleep(500 * time.Millisecond) // both agents are fetching
			s.restart(0)
		}()
		errs := warmAll(p, []string{"n1", "n2"}, dA)
		if errs["n2"] != nil || errs["n1"] == nil || errors.Is(errs["n1"], warmfeed.ErrAgentGone) {
			t.Fatalf("errors %v: want n2 warm and n1's own failure, nobody gone", errs)
		}
	})
}

// TestWarmOneAgentAfterAnother: a job warms a blob's agents one after another; the
// blob is posted once for all of them, so each agent fetches it once.
func TestWarmOneAgentAfterAnother(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSwarm(2)
		n1, n2, n3 := s.start("n1"), s.start("n2"), s.start("n3")
		defer func() { n1.stop(); n2.stop(); n3.stop() }()
		time.Sleep(1500 * time.Millisecond)
		p := publisher(t, s)
		for _, a := range []string{"n1", "n2", "n3"} {
			if err := p.Warm(context.Background(), preheat.Host{Kind: preheat.HostAgent, Addr: a}, dA); err != nil {
				t.Fatalf("warm on %s: %v", a, err)
			}
		}
		time.Sleep(5 * time.Second) // any second read would have happened by now
		for _, n := range []*node{n1, n2, n3} {
			if n.warms != 1 {
				t.Errorf("%s fetched the blob %d times, want once", n.id, n.warms)
			}
		}
	})
}
