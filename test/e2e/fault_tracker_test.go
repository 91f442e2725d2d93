//go:build e2e

package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/hashring"
	"github.com/shoal-p2p/shoal/test/cluster"
)

// trackerNames maps the devcluster's tracker base URLs to their process names and
// addresses.
var trackerNames = map[string]struct{ name, addr string }{
	"http://" + cluster.TrackerAddr:  {"tracker", cluster.TrackerAddr},
	"http://" + cluster.Tracker2Addr: {"tracker2", cluster.Tracker2Addr},
}

// pullOnEveryAgent pulls layer of repo through every agent at once and checks each
// digest; started is closed once the pulls are under way.
func pullOnEveryAgent(t *testing.T, repo, layer string, started chan<- struct{}) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range dev.Agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := toolErr("crane", "blob", "--insecure", dev.Agents[i].Registry+"/"+repo+"@"+layer)
			if err != nil {
				t.Errorf("agent %d pull %s: %v", i+1, layer, err)
				return
			}
			if got := "sha256:" + sha256Hex([]byte(out)); got != layer {
				t.Errorf("agent %d pulled %s, want %s", i+1, got, layer)
			}
		}()
	}
	if started != nil {
		close(started)
	}
	wg.Wait()
}

func restartOnExit(t *testing.T, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range names {
			if err := dev.StartProcess(ctx, n); err != nil {
				t.Logf("restart %s: %v", n, err)
			}
		}
	})
}

// TestFaultTrackerKilled: with two trackers, the first owner tracker of a layer is
// killed while every agent pulls it: the pulls complete with the right digest and
// bytes still move peer to peer (through the other tracker). Then both trackers are
// down (the one-tracker case): a new layer still pulls everywhere, from the origins.
// Restarted, the trackers take the swarms over again without an agent restart.
func TestFaultTrackerKilled(t *testing.T) {
	repo := "e2e/fault-tracker"
	tool(t, "crane", "append", "--insecure", "-f", randomLayerTar(t, 48<<20), "-f", randomLayerTar(t, 24<<20), "-f", randomLayerTar(t, 24<<20), "-t", proxyRef(repo+":v1"))
	m := parseManifest(t, tool(t, "crane", "manifest", "--insecure", proxyRef(repo+":v1")))
	during, without, after := m.Layers[0].Digest, m.Layers[1].Digest, m.Layers[2].Digest

	bases := []string{"http://" + cluster.TrackerAddr, "http://" + cluster.Tracker2Addr}
	victim := trackerNames[hashring.Owners(during, bases, 1)[0]]
	other := trackerNames[hashring.Owners(during, bases, 0)[1]]
	restartOnExit(t, victim.name, other.name)

	peerBytes := func() float64 {
		var sum float64
		for _, a := range dev.Agents {
			sum += metric(t, a.Registry, "shoal_agent_p2p_bytes_downloaded", func(float64) bool { return true }, "source", "peer")
		}
		return sum
	}
	before := peerBytes()
	started := make(chan struct{})
	done := make(chan struct{})
	go func() { pullOnEveryAgent(t, repo, during, started); close(done) }()
	<-started
	time.Sleep(300 * time.Millisecond) // the swarm is forming on both trackers
	t.Logf("killing %s, first owner tracker of %s, mid-pull", victim.name, during)
	if err := dev.Kill(victim.name); err != nil {
		t.Fatal(err)
	}
	<-done
	t.Logf("peer-to-peer bytes during the pull with one tracker left: %.0f", peerBytes()-before)
	if n := metric(t, other.addr, "shoal_tracker_announces", func(v float64) bool { return v > 0 }); n == 0 {
		t.Errorf("%s, still up, got no announces", other.name)
	}

	// No tracker at all: pulls come from the origins.
	if err := dev.Kill(other.name); err != nil {
		t.Fatal(err)
	}
	t.Logf("both trackers down: pulling %s", without)
	pullOnEveryAgent(t, repo, without, nil)

	// Restarted trackers are announced to again, by the same agents.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []string{victim.name, other.name} {
		if err := dev.StartProcess(ctx, n); err != nil {
			t.Fatalf("restart %s: %v", n, err)
		}
	}
	pullOnEveryAgent(t, repo, after, nil)
	for _, tr := range []struct{ name, addr string }{victim, other} {
		if n := metric(t, tr.addr, "shoal_tracker_announces", func(v float64) bool { return v > 0 }); n == 0 {
			t.Errorf("restarted %s got no announces: the agents did not come back to it", tr.name)
		}
	}
}
