package preheat

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRegistryIDsAndBound(t *testing.T) {
	t.Parallel()
	r := NewRegistry(2, 0)
	var ids []int64
	for range 4 {
		ids = append(ids, r.Create(SourceDragonfly, target, ScopeAllPeers, t0).ID)
	}
	if !slices.Equal(ids, []int64{1, 2, 3, 4}) {
		t.Fatalf("ids %v, want 1..4", ids)
	}
	fail := func(j *Job) error { return j.Fail(t0, errors.New("no upstream")) }
	// Finish 3, then 1, then 4: with room for two finished jobs, 3 (finished first)
	// is dropped; 2 is unfinished and always kept.
	for _, id := range []int64{3, 1, 4} {
		must(t, r.Update(id, fail))
	}
	var kept []int64
	for _, s := range r.List() {
		kept = append(kept, s.ID)
	}
	if !slices.Equal(kept, []int64{1, 2, 4}) {
		t.Errorf("kept %v, want [1 2 4]", kept)
	}
	if _, err := r.Get(3); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("Get(dropped) = %v", err)
	}
	if err := r.Update(3, fail); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("Update(dropped) = %v", err)
	}
	if s, err := r.Get(1); err != nil || s.State != StateFailure || s.Error != "no upstream" {
		t.Errorf("Get(1) = %+v, %v", s.Summary, err)
	}
	// An id is never reused, even after drops.
	if id := r.Create(SourceKraken, target, DefaultScope, t0).ID; id != 5 {
		t.Errorf("next id %d, want 5", id)
	}
	// Update returns fn's error and a job failing inside counts once.
	if err := r.Update(1, fail); !errors.Is(err, ErrTransition) {
		t.Errorf("Update(finished, fail) = %v", err)
	}
	if NewRegistry(0, 0).keep != DefaultKeepFinished {
		t.Error("keep 0 is not the default")
	}
}

// TestRegistryConcurrent runs owners and readers at once; run with -race.
func TestRegistryConcurrent(t *testing.T) {
	t.Parallel()
	r := NewRegistry(10, 0)
	as := mustTargets(t)
	check := func(err error) { // t.Fatal must not run outside the test goroutine
		if err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { // an owner: one job, start to finish
			id := r.Create(SourceDragonfly, target, ScopeAllPeers, t0).ID
			check(r.Update(id, func(j *Job) error { return j.Start(t0) }))
			var pending []Pair
			check(r.Update(id, func(j *Job) (err error) { pending, err = j.SetPlan(twoBlobs, as, none); return err }))
			for _, p := range pending {
				check(r.Update(id, func(j *Job) error { return j.Progress(p.Host, p.Digest, 1) }))
				check(r.Update(id, func(j *Job) error { return j.Warmed(p.Host, p.Digest, nil) }))
			}
			check(r.Update(id, func(j *Job) error { _, err := j.Finish(t0.Add(time.Second)); return err }))
		})
		wg.Go(func() { // a reader polling like Harbor
			for range 50 {
				for _, s := range r.List() {
					if _, err := r.Get(s.ID); err != nil && !errors.Is(err, ErrUnknownJob) {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	list := r.List()
	if len(list) != 8 {
		t.Fatalf("%d jobs, want 8", len(list))
	}
	for _, s := range list {
		if s.State != StateSuccess || s.BytesDone != s.BytesTotal {
			t.Errorf("job %d: %s %d/%d", s.ID, s.State, s.BytesDone, s.BytesTotal)
		}
	}
}

// TestRegistryFirstID: ids start at the first id given, and IDBase of a later start is
// above every id an earlier process could have issued at a million jobs a second.
func TestRegistryFirstID(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := NewRegistry(0, IDBase(t0))
	a := r.Create(SourceDragonfly, Target{Repository: "a", Reference: "v1"}, ScopeAllSeedPeers, t0)
	b := r.Create(SourceDragonfly, Target{Repository: "a", Reference: "v1"}, ScopeAllSeedPeers, t0)
	if a.ID != IDBase(t0) || b.ID != a.ID+1 {
		t.Fatalf("ids %d, %d; want %d and the next", a.ID, b.ID, IDBase(t0))
	}
	if got := IDBase(t0.Add(time.Second)); got < a.ID+1_000_000 || got >= 1<<53 {
		t.Errorf("IDBase a second later = %d", got)
	}
}
