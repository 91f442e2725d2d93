package preheat

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	t0     = time.Date(2026, 8, 21, 10, 0, 0, 0, time.UTC)
	target = Target{Registry: "harbor.example.com", Repository: "library/busybox", Reference: "latest"}
	o1, o2 = Host{HostOrigin, "o1"}, Host{HostOrigin, "o2"}
	n1     = Host{HostAgent, "n1"}
)

// planned returns a RUNNING job over twoBlobs with all_peers on agent n1: pairs
// o2/a, o1/a, n1/a, o1/b, o3/b, n1/b; held marks pairs already warm.
func planned(t *testing.T, held func(Host, digest.Digest) bool) (*Job, []Pair) {
	t.Helper()
	j := NewJob(7, SourceDragonfly, target, ScopeAllPeers, t0)
	if err := j.Start(t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	as, err := Targets(twoBlobs, ScopeAllPeers, ownersOf, []string{"n1"})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := j.SetPlan(twoBlobs, as, held)
	if err != nil {
		t.Fatal(err)
	}
	return j, pending
}

func none(Host, digest.Digest) bool { return false }

func TestJobSuccess(t *testing.T) {
	t.Parallel()
	j, pending := planned(t, none)
	if len(pending) != 6 || j.State() != StateRunning {
		t.Fatalf("%d pending, state %s", len(pending), j.State())
	}
	must(t, j.Progress(o1, dB, 40))
	s := j.Snapshot()
	if s.BytesDone != 40 || s.BytesTotal != 3*10+3*100 {
		t.Errorf("bytes %d/%d, want 40/330", s.BytesDone, s.BytesTotal)
	}
	for _, p := range pending {
		must(t, j.Warmed(p.Host, p.Digest, nil))
	}
	if st, err := j.Finish(t0.Add(time.Minute)); err != nil || st != StateSuccess {
		t.Fatalf("Finish = %s, %v", st, err)
	}
	s = j.Snapshot()
	if s.BytesDone != 330 || s.Error != "" || s.Missing != nil || *s.FinishedAt != t0.Add(time.Minute) {
		t.Errorf("after success: %+v", s.Summary)
	}
	for _, h := range s.Hosts {
		if !h.OK || h.BlobsDone != h.BlobsTotal {
			t.Errorf("host %v not ok: %+v", h.Host, h)
		}
	}
}

// TestJobAlreadyWarm is the idempotence rule: a second job for content every host
// already holds has nothing to do and finishes at once.
func TestJobAlreadyWarm(t *testing.T) {
	t.Parallel()
	j, pending := planned(t, func(Host, digest.Digest) bool { return true })
	if len(pending) != 0 {
		t.Fatalf("pending %v", pending)
	}
	if st, _ := j.Finish(t0.Add(2 * time.Second)); st != StateSuccess {
		t.Fatalf("state %s", st)
	}
	if s := j.Snapshot(); s.BytesDone != s.BytesTotal || s.Blobs[1].HostsDone != 3 {
		t.Errorf("warm pairs not counted done: %+v", s)
	}

	// Half warm: only the agent's copies are work.
	j, pending = planned(t, func(h Host, _ digest.Digest) bool { return h.Kind == HostOrigin })
	if !slices.Equal(pending, []Pair{{n1, dA}, {n1, dB}}) {
		t.Errorf("pending %v", pending)
	}
	if s := j.Snapshot(); s.BytesDone != 2*10+2*100 {
		t.Errorf("held bytes %d, want 220", s.BytesDone)
	}
}

func TestJobFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		run         func(t *testing.T, j *Job)
		wantErr     []string // substrings of the job's error
		wantMissing []digest.Digest
	}{{
		name: "a copy fails",
		run: func(t *testing.T, j *Job) {
			for _, p := range Pending(mustTargets(t), none) {
				var err error
				if p.Host == n1 && p.Digest == dB {
					err = errors.New("agent n1: disk full")
				}
				must(t, j.Warmed(p.Host, p.Digest, err))
			}
			if st, _ := j.Finish(t0.Add(time.Minute)); st != StateFailure {
				t.Fatalf("state %s", st)
			}
			s := j.Snapshot()
			if h := s.Hosts[slices.IndexFunc(s.Hosts, func(h HostProgress) bool { return h.Host == n1 })]; h.OK ||
				h.Error != dB.String()+": agent n1: disk full" || h.BlobsDone != 1 {
				t.Errorf("host n1: %+v", h)
			}
			if b := s.Blobs[1]; b.HostsDone != 2 || b.Error != "agent n1: agent n1: disk full" {
				t.Errorf("blob b: %+v", b)
			}
		},
		wantErr:     []string{"1 copies failed; first: " + dB.String() + " on agent n1: agent n1: disk full", "; missing " + dB.String()},
		wantMissing: []digest.Digest{dB},
	}, {
		name: "timeout names what is not warm",
		run: func(t *testing.T, j *Job) {
			must(t, j.Warmed(o2, dA, nil))
			must(t, j.Warmed(o1, dA, nil))
			must(t, j.Warmed(n1, dA, nil))
			must(t, j.Fail(t0.Add(30*time.Minute), errors.New("timed out after 30m0s")))
		},
		wantErr:     []string{"timed out after 30m0s; missing " + dB.String()},
		wantMissing: []digest.Digest{dB},
	}, {
		name: "finish before every copy settled",
		run: func(t *testing.T, j *Job) {
			if st, _ := j.Finish(t0.Add(time.Minute)); st != StateFailure {
				t.Fatalf("state %s", st)
			}
		},
		wantErr:     []string{"6 copies never finished; missing " + dA.String() + ", " + dB.String()},
		wantMissing: []digest.Digest{dA, dB},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j, _ := planned(t, none)
			tc.run(t, j)
			s := j.Snapshot()
			if s.State != StateFailure || s.FinishedAt == nil {
				t.Fatalf("state %s finished %v", s.State, s.FinishedAt)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(s.Error, w) {
					t.Errorf("error %q lacks %q", s.Error, w)
				}
			}
			if !slices.Equal(s.Missing, tc.wantMissing) {
				t.Errorf("missing %v, want %v", s.Missing, tc.wantMissing)
			}
		})
	}
}

func TestJobFailsBeforePlan(t *testing.T) {
	t.Parallel()
	// No upstream for the registry: the job never starts.
	j := NewJob(1, SourceKraken, target, DefaultScope, t0)
	must(t, j.Fail(t0, errors.New(`no upstream registry for host "harbor.example.com"`)))
	if s := j.Snapshot(); s.State != StateFailure || s.StartedAt != nil || s.Missing != nil ||
		s.Error != `no upstream registry for host "harbor.example.com"` {
		t.Errorf("%+v", s.Summary)
	}

	// Expand found manifests missing: they are the missing digests, named once.
	j = NewJob(2, SourceKraken, target, DefaultScope, t0)
	must(t, j.Start(t0))
	must(t, j.Fail(t0, &MissingError{Repo: "library/busybox", Digests: []digest.Digest{dA}}))
	s := j.Snapshot()
	if !slices.Equal(s.Missing, []digest.Digest{dA}) || strings.Count(s.Error, dA.String()) != 1 {
		t.Errorf("%+v", s.Summary)
	}
}

func TestJobTransitions(t *testing.T) {
	t.Parallel()
	as := mustTargets(t)
	for name, call := range map[string]func(j *Job) error{
		"start twice":       func(j *Job) error { j.Start(t0); return j.Start(t0) },
		"plan before start": func(j *Job) error { _, err := j.SetPlan(twoBlobs, as, none); return err },
		"plan twice": func(j *Job) error {
			j.Start(t0)
			j.SetPlan(twoBlobs, as, none)
			_, err := j.SetPlan(twoBlobs, as, none)
			return err
		},
		"finish before plan": func(j *Job) error { j.Start(t0); _, err := j.Finish(t0); return err },
		"progress pending":   func(j *Job) error { return j.Progress(o1, dA, 1) },
		"fail twice":         func(j *Job) error { j.Fail(t0, errors.New("x")); return j.Fail(t0, errors.New("y")) },
		"warm after finish": func(j *Job) error {
			j.Start(t0)
			j.SetPlan(twoBlobs, as, none)
			j.Finish(t0)
			return j.Warmed(o1, dA, nil)
		},
	} {
		if err := call(NewJob(1, SourceKraken, target, ScopeAllPeers, t0)); !errors.Is(err, ErrTransition) {
			t.Errorf("%s: %v, want ErrTransition", name, err)
		}
	}
	j, _ := planned(t, none)
	if err := j.Progress(o1, digest.FromString("other"), 1); err == nil || !strings.Contains(err.Error(), "not assigned") {
		t.Errorf("unassigned pair: %v", err)
	}
	if err := j.Warmed(Host{HostAgent, "n9"}, dA, nil); err == nil {
		t.Error("unknown host accepted")
	}
	k := NewJob(1, SourceKraken, target, ScopeAllPeers, t0)
	must(t, k.Start(t0))
	stray := []Assignment{{Entry: Entry{Digest: digest.FromString("stray")}, Hosts: []Host{o1}}}
	if _, err := k.SetPlan(twoBlobs, stray, none); err == nil || !strings.Contains(err.Error(), "not in the plan") {
		t.Errorf("stray assignment: %v", err)
	}
}

// TestSnapshotJSON pins the field names GET /preheat/jobs/{id} serves.
func TestSnapshotJSON(t *testing.T) {
	t.Parallel()
	small := Plan{Repo: "library/busybox", Root: dA, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Entries: []Entry{{Digest: dA, Size: 10, Kind: KindManifest, MediaType: "application/vnd.oci.image.manifest.v1+json"}}}
	j := NewJob(7, SourceDragonfly, target, ScopeSingleSeedPeer, t0)
	must(t, j.Start(t0.Add(time.Second)))
	as, err := Targets(small, ScopeSingleSeedPeer, ownersOf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.SetPlan(small, as, none); err != nil {
		t.Fatal(err)
	}
	must(t, j.Progress(o2, dA, 4))
	got, err := json.Marshal(j.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":7,"source":"dragonfly","scope":"single_seed_peer","state":"RUNNING",` +
		`"target":{"registry":"harbor.example.com","repository":"library/busybox","reference":"latest"},` +
		`"digest":"` + dA.String() + `","media_type":"application/vnd.oci.image.manifest.v1+json",` +
		`"created_at":"2026-08-21T10:00:00Z","started_at":"2026-08-21T10:00:01Z","bytes_done":4,"bytes_total":10,` +
		`"blobs":[{"digest":"` + dA.String() + `","kind":"manifest","media_type":"application/vnd.oci.image.manifest.v1+json",` +
		`"size":10,"bytes_done":4,"bytes_total":10,"hosts_done":0,"hosts_total":1}],` +
		`"hosts":[{"kind":"origin","address":"o2","bytes_done":4,"bytes_total":10,"blobs_done":0,"blobs_total":1,"ok":false}]}`
	if string(got) != want {
		t.Errorf("JSON\n got %s\nwant %s", got, want)
	}
	// A snapshot shares nothing with the job.
	s := j.Snapshot()
	must(t, j.Warmed(o2, dA, nil))
	if s.Hosts[0].OK || s.BytesDone != 4 {
		t.Error("snapshot changed with the job")
	}
}

func mustTargets(t *testing.T) []Assignment {
	t.Helper()
	as, err := Targets(twoBlobs, ScopeAllPeers, ownersOf, []string{"n1"})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
