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

// TestPullsSurviveAnOriginKilled kills the first owner of two layers, one while three
// agents pull it and one before they pull it: every pull completes with the right
// digest, from the other owner, the backend and the agents.
func TestPullsSurviveAnOriginKilled(t *testing.T) {
	repoTag := "e2e/origin-fault:v1"
	tool(t, "crane", "append", "--insecure", "-f", randomLayerTar(t, 48<<20), "-f", randomLayerTar(t, 16<<20), "-t", proxyRef(repoTag))
	m := parseManifest(t, tool(t, "crane", "manifest", "--insecure", proxyRef(repoTag)))
	during, after := m.Layers[0].Digest, m.Layers[1].Digest

	var bases []string
	byBase := map[string]cluster.Origin{}
	for _, o := range dev.Origins {
		bases = append(bases, "http://"+o.Addr)
		byBase["http://"+o.Addr] = o
	}
	victim := byBase[hashring.Owners(during, bases, 1)[0]]
	t.Logf("killing %s, first owner of %s", victim.Name, during)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dev.StartProcess(ctx, victim.Name); err != nil {
			t.Errorf("restart %s: %v", victim.Name, err)
		}
	}()

	pullAll := func(layer string, started chan<- struct{}) {
		var wg sync.WaitGroup
		for i := range dev.Agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := toolErr("crane", "blob", "--insecure", dev.Agents[i].Registry+"/e2e/origin-fault@"+layer)
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

	started := make(chan struct{})
	done := make(chan struct{})
	go func() { pullAll(during, started); close(done) }()
	<-started
	if err := dev.StopProcess(victim.Name); err != nil {
		t.Fatal(err)
	}
	<-done
	pullAll(after, nil)
}
