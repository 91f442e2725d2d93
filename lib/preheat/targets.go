package preheat

import (
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Scope says how far a preheat spreads, in Dragonfly's words (Harbor sends them).
type Scope string

const (
	// ScopeSingleSeedPeer warms each blob on its first owner origin only.
	ScopeSingleSeedPeer Scope = "single_seed_peer"
	// ScopeAllSeedPeers warms each blob on every owner origin.
	ScopeAllSeedPeers Scope = "all_seed_peers"
	// ScopeAllPeers warms each blob on every owner origin and every live agent, so a
	// pull on any node afterwards is a local cache hit.
	ScopeAllPeers Scope = "all_peers"
)

// DefaultScope is the scope of a job that names none (Harbor sends "" unless the
// policy sets one; the Kraken contract has no scope at all). Every owner origin, not
// Dragonfly's single seed peer: agents fetch from any owner, and warming one only leaves
// the replica copy to the first pull.
const DefaultScope = ScopeAllSeedPeers

// ParseScope parses a scope as Harbor sends it; "" is DefaultScope.
func ParseScope(s string) (Scope, error) {
	switch sc := Scope(s); sc {
	case "":
		return DefaultScope, nil
	case ScopeSingleSeedPeer, ScopeAllSeedPeers, ScopeAllPeers:
		return sc, nil
	}
	return "", fmt.Errorf("scope %q: want %s, %s or %s", s, ScopeSingleSeedPeer, ScopeAllSeedPeers, ScopeAllPeers)
}

// HostKind says which tier a host is in.
type HostKind string

const (
	HostOrigin HostKind = "origin"
	HostAgent  HostKind = "agent"
)

// Host is one place a blob must end up. Addr is whatever the caller names hosts by
// (an origin's URL as in its placement, an agent's address).
type Host struct {
	Kind HostKind `json:"kind"`
	Addr string   `json:"address"`
}

func (h Host) String() string { return string(h.Kind) + " " + h.Addr }

// Assignment is one plan entry and the hosts that must hold it, in warming order:
// owner origins in placement order first (agents fill from them), then agents.
type Assignment struct {
	Entry Entry
	Hosts []Host
}

// Targets decides, for every entry of p in plan order, which hosts must hold it under
// scope. ownersOf returns a digest's owner origins in placement order (the hashring);
// agents are the live agents, used only by ScopeAllPeers. A blob without any owner is
// an error: there is nowhere to warm it, which means the origin set is empty.
func Targets(p Plan, scope Scope, ownersOf func(digest.Digest) []string, agents []string) ([]Assignment, error) {
	out := make([]Assignment, 0, len(p.Entries))
	for _, e := range p.Entries {
		owners := ownersOf(e.Digest)
		if len(owners) == 0 {
			return nil, fmt.Errorf("preheat %s: no origin owns %s; is the origin set empty?", p.Root, e.Digest)
		}
		var hosts []Host
		switch scope {
		case ScopeSingleSeedPeer:
			owners = owners[:1]
		case ScopeAllSeedPeers, ScopeAllPeers:
		default:
			return nil, fmt.Errorf("preheat %s: unknown scope %q", p.Root, scope)
		}
		for _, o := range owners {
			hosts = appendHost(hosts, Host{HostOrigin, o})
		}
		if scope == ScopeAllPeers {
			for _, a := range agents {
				hosts = appendHost(hosts, Host{HostAgent, a})
			}
		}
		out = append(out, Assignment{Entry: e, Hosts: hosts})
	}
	return out, nil
}

func appendHost(hs []Host, h Host) []Host {
	for _, o := range hs {
		if o == h {
			return hs
		}
	}
	return append(hs, h)
}

// Pair is one blob on one host: the unit of warming work.
type Pair struct {
	Host   Host
	Digest digest.Digest
}

// Pending lists the pairs of as that held says are not warm yet, in assignment order
// (so blobs follow plan order, and for each blob origins come before agents). held
// must answer from state already gathered (a listing, a cache index): Pending itself
// does no I/O.
func Pending(as []Assignment, held func(Host, digest.Digest) bool) []Pair {
	var out []Pair
	for _, a := range as {
		for _, h := range a.Hosts {
			if !held(h, a.Entry.Digest) {
				out = append(out, Pair{h, a.Entry.Digest})
			}
		}
	}
	return out
}

// Done reports whether every host already holds every blob assigned to it: a second
// job for content already warm finishes at once.
func Done(as []Assignment, held func(Host, digest.Digest) bool) bool {
	return len(Pending(as, held)) == 0
}
