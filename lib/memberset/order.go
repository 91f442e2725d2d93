package memberset

import "github.com/shoal-p2p/shoal/lib/hashring"

// failThreshold is how many failures in a row (health checks or requests reported
// through MarkFailed) mark a member unhealthy; one successful check clears it.
const failThreshold = 2

// health is one member's health: failures in a row, and whether they reached
// failThreshold. The zero value is healthy: a member is trusted until it fails.
type health struct {
	fails int
	down  bool
}

// observe is h after one check or request that succeeded (ok) or failed.
func (h health) observe(ok bool) health {
	if ok {
		return health{}
	}
	h.fails++
	h.down = h.fails >= failThreshold
	return h
}

// order is the order in which to try members for key: rendezvous order over all
// members (its first replicas entries are key's owners, the rest follow in ring order,
// so a reader falls through past the owners to any member that still holds the blob),
// then every member that is down moved to the end, keeping the relative order of both
// groups. It is pure.
func order(key string, members []string, down map[string]bool) []string {
	ring := hashring.Owners(key, members, 0)
	out := make([]string, 0, len(ring))
	for _, m := range ring {
		if !down[m] {
			out = append(out, m)
		}
	}
	for _, m := range ring {
		if down[m] {
			out = append(out, m)
		}
	}
	return out
}
