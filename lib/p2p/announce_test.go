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
		{"downloading: fast start, then every interval", []step{
			{0, false, 2, 0, true, 3 * time.Second},
			{200 * time.Millisecond, false, 2, 10, false, 0},
			{250 * time.Millisecond, false, 2, 10, true, 3 * time.Second},
			{500 * time.Millisecond, false, 2, 20, false, 0},
			{750 * time.Millisecond, false, 2, 20, true, 3 * time.Second},  // +500ms
			{1750 * time.Millisecond, false, 2, 30, true, 3 * time.Second}, // +1s
			{3500 * time.Millisecond, false, 2, 40, false, 0},
			{3750 * time.Millisecond, false, 2, 40, true, 3 * time.Second}, // +2s
			{6750 * time.Millisecond, false, 2, 50, true, 3 * time.Second}, // +3s, the interval
			{9 * time.Second, false, 2, 60, false, 0},
			{9750 * time.Millisecond, false, 2, 70, true, 3 * time.Second},
		}},
		{"no active peers: at once, at most every second", []step{
			{0, false, 0, 0, true, 10 * time.Second},
			{250 * time.Millisecond, false, 0, 0, true, 10 * time.Second}, // fast start
			{500 * time.Millisecond, false, 0, 0, false, 0},
			{1250 * time.Millisecond, false, 0, 0, true, 10 * time.Second},
		}},
		{"stalled 5s: at once, then 5s grace", []step{
			{0, false, 1, 0, true, 30 * time.Second},
			{250 * time.Millisecond, false, 1, 10, true, 30 * time.Second},
			{750 * time.Millisecond, false, 1, 10, true, 30 * time.Second},
			{1750 * time.Millisecond, false, 1, 10, true, 30 * time.Second},
			{3750 * time.Millisecond, false, 1, 10, true, 30 * time.Second},
			{5 * time.Second, false, 1, 10, false, 0},
			{5250 * time.Millisecond, false, 1, 10, true, 30 * time.Second}, // stalled since 250ms
			{6 * time.Second, false, 1, 10, false, 0},
			{10250 * time.Millisecond, false, 1, 10, true, 30 * time.Second},
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
