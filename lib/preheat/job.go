package preheat

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Source says which contract started a job.
type Source string

const (
	// SourceKraken is POST /registry/notifications: Harbor's kraken provider, or a
	// registry's distribution notification envelope (one endpoint, one contract).
	SourceKraken    Source = "kraken"
	SourceDragonfly Source = "dragonfly" // Harbor's dragonfly provider: POST /oapi/v1/jobs
)

// State is a job's lifecycle: PENDING -> RUNNING -> SUCCESS or FAILURE, or PENDING ->
// FAILURE when it cannot start. The names are Dragonfly's (its wire adapter shows
// RUNNING as PENDING, the only non-final state Harbor knows).
type State string

const (
	StatePending State = "PENDING"
	StateRunning State = "RUNNING"
	StateSuccess State = "SUCCESS"
	StateFailure State = "FAILURE"
)

// Finished reports whether s is final.
func (s State) Finished() bool { return s == StateSuccess || s == StateFailure }

// ErrTransition is wrapped by a Job method called in a state that does not allow it.
var ErrTransition = errors.New("preheat: transition not allowed")

// Target is what a job warms, as the caller named it.
type Target struct {
	Registry   string `json:"registry"`   // host[:port] the image was named on, e.g. harbor.example.com
	Repository string `json:"repository"` // e.g. library/busybox
	Reference  string `json:"reference"`  // tag or digest
	// URL is the manifest URL the request named (dragonfly's args.url, kraken's
	// Target.Url), answered back to the caller as it sent it; "" when none.
	URL string `json:"url,omitempty"`
}

// Job is one preheat's record. It is not safe for concurrent use: one goroutine owns
// it (Registry.Update serialises that owner with readers). Every method is pure; the
// ones that move time take now.
type Job struct {
	id     int64
	source Source
	target Target
	scope  Scope

	state                      State
	created, started, finished time.Time

	plan    Plan
	planned bool
	hosts   []Host // in order of first assignment
	work    map[Pair]*progress
	order   []Pair // work's keys in assignment order

	err     string
	missing []digest.Digest
}

type progress struct {
	size    int64
	done    int64
	settled bool // warmed, or failed with err
	err     string
}

// NewJob is a PENDING job created at now.
func NewJob(id int64, source Source, target Target, scope Scope, now time.Time) *Job {
	return &Job{id: id, source: source, target: target, scope: scope,
		state: StatePending, created: now, work: map[Pair]*progress{}}
}

// ID is the job's id.
func (j *Job) ID() int64 { return j.id }

// State is the job's state.
func (j *Job) State() State { return j.state }

// Start moves a PENDING job to RUNNING.
func (j *Job) Start(now time.Time) error {
	if j.state != StatePending {
		return fmt.Errorf("start job %d: it is %s: %w", j.id, j.state, ErrTransition)
	}
	j.state, j.started = StateRunning, now
	return nil
}

// SetPlan gives a RUNNING job its plan and assignments (from Targets), once. Pairs
// held says are already warm count as done at once; SetPlan returns the rest, the
// work to do, in assignment order. An empty result means the caller may Finish now.
func (j *Job) SetPlan(p Plan, as []Assignment, held func(Host, digest.Digest) bool) ([]Pair, error) {
	if j.state != StateRunning || j.planned {
		return nil, fmt.Errorf("plan job %d: it is %s (planned %v): %w", j.id, j.state, j.planned, ErrTransition)
	}
	for _, a := range as {
		if !slices.ContainsFunc(p.Entries, func(e Entry) bool { return e.Digest == a.Entry.Digest }) {
			return nil, fmt.Errorf("plan job %d: %s is assigned but not in the plan", j.id, a.Entry.Digest)
		}
	}
	j.plan, j.planned = p, true
	for _, a := range as {
		for _, h := range a.Hosts {
			pr := Pair{h, a.Entry.Digest}
			if _, dup := j.work[pr]; dup {
				continue
			}
			if !slices.Contains(j.hosts, h) {
				j.hosts = append(j.hosts, h)
			}
			w := &progress{size: a.Entry.Size}
			j.work[pr] = w
			j.order = append(j.order, pr)
		}
	}
	pending := Pending(as, held)
	for pr, w := range j.work {
		if !slices.Contains(pending, pr) {
			w.done, w.settled = w.size, true
		}
	}
	return pending, nil
}

// Progress records that host h holds done bytes of d so far.
func (j *Job) Progress(h Host, d digest.Digest, done int64) error {
	w, err := j.pair("progress", h, d)
	if err != nil {
		return err
	}
	w.done = done
	return nil
}

// Warmed records that copying d to h ended: with err nil it is held whole, otherwise
// err says why not (and the job will fail naming d).
func (j *Job) Warmed(h Host, d digest.Digest, err error) error {
	w, perr := j.pair("warmed", h, d)
	if perr != nil {
		return perr
	}
	w.settled = true
	if err != nil {
		w.err = err.Error()
		return nil
	}
	w.err = ""
	w.done = max(w.done, w.size)
	return nil
}

func (j *Job) pair(op string, h Host, d digest.Digest) (*progress, error) {
	if j.state != StateRunning {
		return nil, fmt.Errorf("%s job %d: it is %s: %w", op, j.id, j.state, ErrTransition)
	}
	w, ok := j.work[Pair{h, d}]
	if !ok {
		return nil, fmt.Errorf("%s job %d: %s is not assigned to %s", op, j.id, d, h)
	}
	return w, nil
}

// Finish ends a RUNNING job that has a plan: SUCCESS when every pair is warm, else
// FAILURE naming the blobs some host lacks and the first host error. It returns the
// final state.
func (j *Job) Finish(now time.Time) (State, error) {
	if j.state != StateRunning || !j.planned {
		return j.state, fmt.Errorf("finish job %d: it is %s (planned %v): %w", j.id, j.state, j.planned, ErrTransition)
	}
	var failed, unsettled int
	first := ""
	for _, pr := range j.order {
		switch w := j.work[pr]; {
		case !w.settled:
			unsettled++
		case w.err != "":
			failed++
			if first == "" {
				first = fmt.Sprintf("%s on %s: %s", pr.Digest, pr.Host, w.err)
			}
		}
	}
	if failed == 0 && unsettled == 0 {
		j.state, j.finished = StateSuccess, now
		return j.state, nil
	}
	var cause string
	switch {
	case failed > 0 && unsettled > 0:
		cause = fmt.Sprintf("%d copies failed and %d never finished; first: %s", failed, unsettled, first)
	case failed > 0:
		cause = fmt.Sprintf("%d copies failed; first: %s", failed, first)
	default:
		cause = fmt.Sprintf("%d copies never finished", unsettled)
	}
	j.fail(now, cause, nil)
	return j.state, nil
}

// Fail ends a job that is not finished yet as FAILURE because of err: no upstream for
// the registry, an expansion error, the job's timeout. Missing names the plan's blobs
// not yet warm everywhere (if a plan was set) and the manifests a *MissingError in err
// names (if Expand found some absent).
func (j *Job) Fail(now time.Time, err error) error {
	if j.state.Finished() {
		return fmt.Errorf("fail job %d: it is %s: %w", j.id, j.state, ErrTransition)
	}
	var me *MissingError
	var absent []digest.Digest
	if errors.As(err, &me) {
		absent = me.Digests
	}
	j.fail(now, err.Error(), absent)
	return nil
}

// fail records FAILURE. The error ends with the missing digests unless cause already
// names them all (a MissingError's text does).
func (j *Job) fail(now time.Time, cause string, absent []digest.Digest) {
	j.missing = slices.Clone(absent)
	for _, pr := range j.order {
		if w := j.work[pr]; (!w.settled || w.err != "") && !slices.Contains(j.missing, pr.Digest) {
			j.missing = append(j.missing, pr.Digest)
		}
	}
	j.err = cause
	if len(j.missing) > len(absent) {
		s := make([]string, len(j.missing))
		for i, d := range j.missing {
			s[i] = d.String()
		}
		j.err += "; missing " + strings.Join(s, ", ")
	}
	j.state, j.finished = StateFailure, now
}
