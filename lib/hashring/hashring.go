// Package hashring places keys on members by rendezvous (highest random weight)
// hashing: every member scores every key, and a key's owners are the members with the
// highest scores. Adding a member moves only the keys it now wins; removing one moves
// only the keys it held. The package is pure: no I/O, no clock, no randomness, so every
// process that knows the same members computes the same placement.
package hashring

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// Score is member's weight for key: the first 8 bytes of sha256(member ‖ 0 ‖ key).
// It is the same in every process and on every architecture.
func Score(member, key string) uint64 {
	buf := make([]byte, 0, len(member)+1+len(key))
	buf = append(buf, member...)
	buf = append(buf, 0) // "ab"+"c" and "a"+"bc" must not collide
	buf = append(buf, key...)
	sum := sha256.Sum256(buf)
	return binary.BigEndian.Uint64(sum[:8])
}

// Owners returns members ordered by their score for key, highest first, cut to the
// first n; n <= 0 or n > len(members) returns them all, still ordered. Ties (which
// sha256 makes practically impossible) are broken by member name, so the order is
// total. members is not modified; duplicates are the caller's to avoid.
func Owners(key string, members []string, n int) []string {
	type scored struct {
		member string
		score  uint64
	}
	all := make([]scored, len(members))
	for i, m := range members {
		all[i] = scored{m, Score(m, key)}
	}
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.member, b.member)
	})
	if n <= 0 || n > len(all) {
		n = len(all)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = all[i].member
	}
	return out
}
