//go:build e2e

package backends

import (
	"strings"
	"testing"
	"time"
)

// TestRegistryPullThrough: build-index and origins pull through from a distribution
// registry (tag_ttl 2s). An image pushed straight to the upstream pulls through an
// agent; a retag upstream is followed after the TTL; with the upstream stopped, the
// cached tag still resolves and the image pulls through another agent from the blobs
// the origins hold.
func TestRegistryPullThrough(t *testing.T) {
	e := newEnv(t, "registry")
	upstream := startUpstream(t, e)
	e.startCluster(t)

	repo, tag := "e2e/pullthrough", "v1"
	upRef := upstreamAddr + "/" + repo + ":" + tag
	digest := func(ref string) string {
		return strings.TrimSpace(tool(t, "crane", "digest", "--insecure", ref))
	}

	// Cold: nothing of the image is in the cluster yet.
	raw1 := pushImage(t, upRef, 512<<10, 6<<20)
	e.checkAgentPull(t, 0, repo, tag, raw1)
	if got, want := digest(e.agentRef(0, repo+":"+tag)), digest(upRef); got != want {
		t.Fatalf("agent1 resolves %s to %s, upstream to %s", tag, got, want)
	}

	// Retag upstream: a different image under the same tag.
	raw2 := pushImage(t, upRef, 512<<10, 6<<20)
	d2 := digestOf([]byte(raw2))
	if d2 == digestOf([]byte(raw1)) {
		t.Fatal("the second image has the first one's digest")
	}
	// Within the TTL the agent may still serve the old digest; either is fine.
	if got := digest(e.agentRef(0, repo+":"+tag)); got != d2 && got != digestOf([]byte(raw1)) {
		t.Fatalf("within the TTL agent1 resolves %s to %s, neither image", tag, got)
	}
	time.Sleep(3 * time.Second) // past tag_ttl (2s): a scenario, not a timing assertion
	if got := digest(e.agentRef(0, repo+":"+tag)); got != d2 {
		t.Fatalf("after the TTL agent1 resolves %s to %s, want the retagged %s", tag, got, d2)
	}
	e.checkAgentPull(t, 0, repo, tag, raw2)

	// Upstream down: the cached tag and the origins' blobs still serve another agent.
	upstream.Stop()
	time.Sleep(3 * time.Second) // past the TTL again: the tag is re-checked and the check fails
	e.checkAgentPull(t, 1, repo, tag, raw2)
}
