package hashring

import (
	"fmt"
	"slices"
	"testing"
)

var three = []string{"http://10.0.0.1:15200", "http://10.0.0.2:15200", "http://10.0.0.3:15200"}

func TestOwnersLengthAndOrder(t *testing.T) {
	t.Parallel()
	full := Owners("sha256:abc", three, 0)
	for _, tc := range []struct {
		n    int
		want []string
	}{
		{0, full}, {-1, full}, {4, full}, {3, full},
		{1, full[:1]}, {2, full[:2]},
	} {
		if got := Owners("sha256:abc", three, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("n=%d: got %v, want %v", tc.n, got, tc.want)
		}
	}
	if got := Owners("k", nil, 2); len(got) != 0 {
		t.Errorf("no members: got %v", got)
	}
	sorted := slices.Clone(full)
	slices.Sort(sorted)
	if want := slices.Sorted(slices.Values(three)); !slices.Equal(sorted, want) {
		t.Errorf("full order %v is not a permutation of %v", full, three)
	}
}

// TestDeterministic pins placements computed once: they must never change between
// processes, releases or architectures, or a cluster mid-upgrade would disagree.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	if got, want := Score("a", "b"), uint64(0x59b271ae1bbcb1d3); got != want {
		t.Errorf("Score(a, b) = %#x, want %#x", got, want)
	}
	want := []string{"http://10.0.0.3:15200", "http://10.0.0.2:15200", "http://10.0.0.1:15200"}
	if got := Owners("sha256:abc", three, 0); !slices.Equal(got, want) {
		t.Errorf("Owners(sha256:abc) = %v, want %v", got, want)
	}
	if Score("ab", "c") == Score("a", "bc") {
		t.Error("member and key boundary is ambiguous")
	}
	reversed := slices.Clone(three)
	slices.Reverse(reversed)
	for i := range 100 {
		key := fmt.Sprintf("key-%d", i)
		if a, b := Owners(key, three, 0), Owners(key, reversed, 0); !slices.Equal(a, b) {
			t.Fatalf("%s: order depends on the input order: %v vs %v", key, a, b)
		}
	}
}

func TestAddingAMemberMovesKeysOnlyToIt(t *testing.T) {
	t.Parallel()
	grown := append(slices.Clone(three), "http://10.0.0.4:15200")
	moved := 0
	for i := range 10000 {
		key := fmt.Sprintf("sha256:%064x", i)
		before, after := Owners(key, three, 2), Owners(key, grown, 2)
		// Every owner after is an owner before or the new member, and removing the new
		// member from the full order gives back the old full order.
		for _, m := range after {
			if m != grown[3] && !slices.Contains(before, m) {
				t.Fatalf("%s: owners %v -> %v: moved to an old member", key, before, after)
			}
		}
		full := slices.DeleteFunc(Owners(key, grown, 0), func(m string) bool { return m == grown[3] })
		if !slices.Equal(full, Owners(key, three, 0)) {
			t.Fatalf("%s: relative order of old members changed", key)
		}
		if !slices.Equal(before, after) {
			moved++
		}
	}
	// The new member takes about half of the keys' owner slots: with 2 owners of 4, a
	// key changes owners when the new member is in its top 2 (probability 1/2).
	if moved < 4000 || moved > 6000 {
		t.Fatalf("%d of 10000 keys changed owners, want about 5000", moved)
	}
}

func TestDistributionIsEven(t *testing.T) {
	t.Parallel()
	members := []string{"a:1", "b:1", "c:1", "d:1", "e:1"}
	first := map[string]int{}
	owned := map[string]int{}
	const keys = 10000
	for i := range keys {
		o := Owners(fmt.Sprintf("sha256:%064x", i), members, 2)
		first[o[0]]++
		for _, m := range o {
			owned[m]++
		}
	}
	for _, m := range members {
		// Expected 2000 first places and 4000 owner slots each; allow ±15%.
		if n := first[m]; n < 1700 || n > 2300 {
			t.Errorf("%s is first for %d keys, want about 2000", m, n)
		}
		if n := owned[m]; n < 3400 || n > 4600 {
			t.Errorf("%s owns %d keys, want about 4000", m, n)
		}
	}
}
