package p2p

import (
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at       time.Duration
		complete bool
		peers    int
		progress int64
		due      bool
		interval time.Duration // tracker's answer when due
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first announce at once", []step{{0, false, 0, 0, true, 3 * time.Second}}},
		{"downloading: every interval", []step{
			{0, false, 0, 0, true, 3 * time.Second},
			{time.Second, false, 2, 10, false, 0},
			{2 * time.Second, false, 2, 20, false, 0},
			{3 * time.Second, false, 2, 30, true, 3 * time.Second},
		}},
		{"no active peers: at once", []step{
			{0, false, 0, 0, true, 10 * time.Second},
			{time.Second, false, 0, 0, true, 10 * time.Second},
		}},
		{"stalled 5s: at once, then 5s grace", []step{
			{0, false, 0, 0, true, 30 * time.Second},
			{time.Second, false, 1, 10, false, 0},
			{5 * time.Second, false, 1, 10, false, 0},
			{6 * time.Second, false, 1, 10, true, 30 * time.Second},
			{7 * time.Second, false, 1, 10, false, 0},
			{11 * time.Second, false, 1, 10, true, 30 * time.Second},
		}},
		{"complete: every minute, peers or not", []step{
			{0, true, 0, 100, true, 3 * time.Second},
			{time.Second, true, 0, 100, false, 0},
			{59 * time.Second, true, 0, 100, false, 0},
			{60 * time.Second, true, 0, 100, true, 3 * time.Second},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSchedule(t0, 0)
			for i, st := range tc.steps {
				due := s.due(at(st.at), st.complete, st.peers, st.progress)
				if due != st.due {
					t.Fatalf("step %d at %s: due %v, want %v", i, st.at, due, st.due)
				}
				if due {
					s.announced(at(st.at), st.complete, st.interval)
				}
			}
		})
	}
}
