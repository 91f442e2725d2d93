//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"
)

// TestSecondAgentPullsFromFirst pulls a layer through agent 1, stops every origin,
// then pulls the same layer through agent 2: every byte must come from agent 1, as its
// metrics show. The origins are started again afterwards.
func TestSecondAgentPullsFromFirst(t *testing.T) {
	repoTag := "e2e/swarm:v1"
	tool(t, "crane", "append", "--insecure", "-f", randomLayerTar(t, 24<<20), "-t", proxyRef(repoTag))
	m := parseManifest(t, tool(t, "crane", "manifest", "--insecure", proxyRef(repoTag)))
	layer := m.Layers[0].Digest
	a, b := dev.Agents[0], dev.Agents[1]

	first := tool(t, "crane", "blob", "--insecure", a.Registry+"/e2e/swarm@"+layer)
	if "sha256:"+sha256Hex([]byte(first)) != layer {
		t.Fatal("agent 1 served a wrong layer")
	}
	uploadedBefore := metric(t, a.Registry, "shoal_agent_p2p_bytes_uploaded", func(float64) bool { return true })

	for _, o := range dev.Origins {
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := dev.StartProcess(ctx, o.Name); err != nil {
				t.Errorf("restart %s: %v", o.Name, err)
			}
		}()
		if err := dev.StopProcess(o.Name); err != nil {
			t.Fatal(err)
		}
	}

	second := tool(t, "crane", "blob", "--insecure", b.Registry+"/e2e/swarm@"+layer)
	if "sha256:"+sha256Hex([]byte(second)) != layer {
		t.Fatal("agent 2 served a wrong layer")
	}
	size := float64(len(second))
	fromPeers := metric(t, b.Registry, "shoal_agent_p2p_bytes_downloaded", func(v float64) bool { return v >= size }, `source="peer"`)
	if fromPeers < size {
		t.Fatalf("agent 2 got %.0f bytes from peers, want at least the layer's %.0f", fromPeers, size)
	}
	uploaded := metric(t, a.Registry, "shoal_agent_p2p_bytes_uploaded", func(v float64) bool { return v-uploadedBefore >= size })
	if uploaded-uploadedBefore < size {
		t.Fatalf("agent 1 uploaded %.0f bytes, want at least %.0f", uploaded-uploadedBefore, size)
	}
}
