package preheat

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// DefaultKeepFinished is how many finished jobs a Registry keeps when told 0.
const DefaultKeepFinished = 1000

// ErrUnknownJob is wrapped when a job id was never issued or its job has been dropped.
var ErrUnknownJob = errors.New("preheat: unknown job")

// Registry holds jobs by id for the job API. Ids are increasing integers (Harbor's
// dragonfly driver requires an integer id) from 1, or from the first id given, never
// reused while the process lives; IDBase gives a first id no earlier process issued. Unfinished jobs are all kept (the caller bounds how many run or wait); of the
// finished ones only the newest keep are, the oldest finished dropped first. All
// methods are safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	keep     int
	next     int64
	jobs     map[int64]*Job
	finished []int64 // ids in the order their jobs finished
}

// NewRegistry keeps up to keep finished jobs; keep <= 0 means DefaultKeepFinished. The
// first job gets id first, or 1 when first <= 0.
func NewRegistry(keep int, first int64) *Registry {
	if keep <= 0 {
		keep = DefaultKeepFinished
	}
	return &Registry{keep: keep, next: max(first, 1) - 1, jobs: map[int64]*Job{}}
}

// IDBase is a first job id that no process started before now has reached: the start
// time in microseconds since 1970. A process issuing ids from its start time on would
// need over a million jobs a second to reach the base of one started after it, so a
// restarted proxy never answers an old id (Harbor may still poll it) with a new job.
// It stays below 2^53, so JavaScript reads it exactly.
func IDBase(now time.Time) int64 { return now.UnixMicro() }

// Create adds a PENDING job with the next id and returns its summary.
func (r *Registry) Create(source Source, target Target, scope Scope, now time.Time) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	j := NewJob(r.next, source, target, scope, now)
	r.jobs[j.id] = j
	return j.Summary()
}

// Update runs fn on job id under the registry's lock, so readers never see it half
// changed; fn must only call the job's methods (no I/O: it blocks every reader). fn's
// error is returned as is. A job that fn finishes counts towards the kept bound.
func (r *Registry) Update(id int64, fn func(*Job) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return fmt.Errorf("job %d: %w", id, ErrUnknownJob)
	}
	was := j.state.Finished()
	err := fn(j)
	if !was && j.state.Finished() {
		r.finished = append(r.finished, id)
		for len(r.finished) > r.keep {
			delete(r.jobs, r.finished[0])
			r.finished = r.finished[1:]
		}
	}
	return err
}

// Get returns job id in full; a miss wraps ErrUnknownJob.
func (r *Registry) Get(id int64) (Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return Snapshot{}, fmt.Errorf("job %d: %w", id, ErrUnknownJob)
	}
	return j.Snapshot(), nil
}

// List returns every job kept, by increasing id.
func (r *Registry) List() []Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Summary, 0, len(r.jobs))
	for _, id := range slices.Sorted(maps.Keys(r.jobs)) {
		out = append(out, r.jobs[id].Summary())
	}
	return out
}
