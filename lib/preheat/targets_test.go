package preheat

import (
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]Scope{
		"": DefaultScope, "single_seed_peer": ScopeSingleSeedPeer,
		"all_seed_peers": ScopeAllSeedPeers, "all_peers": ScopeAllPeers,
	} {
		if got, err := ParseScope(s); err != nil || got != want {
			t.Errorf("ParseScope(%q) = %q, %v; want %q", s, got, err, want)
		}
	}
	if _, err := ParseScope("ALL_PEERS"); err == nil || !strings.Contains(err.Error(), "want single_seed_peer") {
		t.Errorf("ParseScope(ALL_PEERS): %v", err)
	}
}

// twoBlobs is a plan of two blobs; owners are fixed per blob.
var (
	dA, dB   = digest.FromString("a"), digest.FromString("b")
	twoBlobs = Plan{Root: dA, Entries: []Entry{{Digest: dA, Size: 10, Kind: KindManifest}, {Digest: dB, Size: 100, Kind: KindLayer}}}
	owners   = map[digest.Digest][]string{dA: {"o2", "o1"}, dB: {"o1", "o3"}}
)

func ownersOf(d digest.Digest) []string { return owners[d] }

func render(as []Assignment) []string {
	var out []string
	for _, a := range as {
		var hs []string
		for _, h := range a.Hosts {
			hs = append(hs, h.String())
		}
		out = append(out, map[digest.Digest]string{dA: "a", dB: "b"}[a.Entry.Digest]+": "+strings.Join(hs, ", "))
	}
	return out
}

func TestTargets(t *testing.T) {
	t.Parallel()
	agents := []string{"n1:15100", "n2:15100", "n1:15100"} // a duplicate is warmed once
	for _, tc := range []struct {
		scope Scope
		want  []string
	}{
		{ScopeSingleSeedPeer, []string{"a: origin o2", "b: origin o1"}},
		{ScopeAllSeedPeers, []string{"a: origin o2, origin o1", "b: origin o1, origin o3"}},
		{ScopeAllPeers, []string{
			"a: origin o2, origin o1, agent n1:15100, agent n2:15100",
			"b: origin o1, origin o3, agent n1:15100, agent n2:15100"}},
	} {
		as, err := Targets(twoBlobs, tc.scope, ownersOf, agents)
		if err != nil {
			t.Fatalf("%s: %v", tc.scope, err)
		}
		if got := render(as); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.scope, got, tc.want)
		}
	}
	if as, err := Targets(twoBlobs, ScopeAllPeers, ownersOf, nil); err != nil || len(as[0].Hosts) != 2 {
		t.Errorf("all_peers without live agents: %v %v", render(as), err)
	}
	if _, err := Targets(twoBlobs, ScopeAllSeedPeers, func(digest.Digest) []string { return nil }, nil); err == nil ||
		!strings.Contains(err.Error(), "no origin owns "+dA.String()) {
		t.Errorf("no owners: %v", err)
	}
	if _, err := Targets(twoBlobs, "everywhere", ownersOf, nil); err == nil {
		t.Error("unknown scope accepted")
	}
}

func TestPendingAndDone(t *testing.T) {
	t.Parallel()
	as, err := Targets(twoBlobs, ScopeAllPeers, ownersOf, []string{"n1"})
	if err != nil {
		t.Fatal(err)
	}
	o1, n1 := Host{HostOrigin, "o1"}, Host{HostAgent, "n1"}
	for _, tc := range []struct {
		name string
		held map[Pair]bool
		want []Pair
	}{
		{"nothing warm", nil, []Pair{
			{Host{HostOrigin, "o2"}, dA}, {o1, dA}, {n1, dA}, {o1, dB}, {Host{HostOrigin, "o3"}, dB}, {n1, dB}}},
		{"origins warm, agent not", map[Pair]bool{
			{Host{HostOrigin, "o2"}, dA}: true, {o1, dA}: true, {o1, dB}: true, {Host{HostOrigin, "o3"}, dB}: true},
			[]Pair{{n1, dA}, {n1, dB}}},
		{"the same digest on another host does not count", map[Pair]bool{
			{Host{HostOrigin, "o2"}, dA}: true, {o1, dA}: true, {n1, dA}: true, {o1, dB}: true, {Host{HostOrigin, "o3"}, dB}: true,
			{Host{HostAgent, "n2"}, dB}: true}, []Pair{{n1, dB}}},
		{"all warm", map[Pair]bool{
			{Host{HostOrigin, "o2"}, dA}: true, {o1, dA}: true, {n1, dA}: true, {o1, dB}: true, {Host{HostOrigin, "o3"}, dB}: true,
			{n1, dB}: true}, nil},
	} {
		held := func(h Host, d digest.Digest) bool { return tc.held[Pair{h, d}] }
		if got := Pending(as, held); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Pending = %v, want %v", tc.name, got, tc.want)
		}
		if got := Done(as, held); got != (len(tc.want) == 0) {
			t.Errorf("%s: Done = %v", tc.name, got)
		}
	}
}
