package taskqueue

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestQueueSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.db")
	q, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("a")
	wb := Task{Kind: "writeback", Digest: d}
	rep := Task{Kind: "replicate", Digest: d, Target: "http://o2"}
	if err := q.Add(wb, rep, wb); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Failed(rep, t0, errors.New("down")); err != nil {
		t.Fatal(err)
	}
	q.Close()

	q, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, _ := q.Len(); n != 2 {
		t.Fatalf("%d tasks after reopen, want 2", n)
	}
	due, _ := q.Due(t0, 0)
	if len(due) != 1 || due[0].Kind != "writeback" {
		t.Fatalf("due at t0: %+v", due)
	}
	due, _ = q.Due(t0.Add(time.Second), 0)
	if len(due) != 2 || due[1].Attempts != 1 || due[1].LastError != "down" {
		t.Fatalf("due after backoff: %+v", due)
	}
	if p, _ := q.Pinned(d); !p {
		t.Fatal("blob with pending tasks is not pinned")
	}
	_ = q.Done(wb)
	_ = q.Done(rep)
	if p, _ := q.Pinned(d); p {
		t.Fatal("blob pinned after its tasks finished")
	}
	if p, _ := q.Pinned(digest.FromString("other")); p {
		t.Fatal("unrelated blob pinned")
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{0: 0, 1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 20: 5 * time.Minute} {
		if got := Backoff(n); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestRunnerRetriesUntilDone(t *testing.T) {
	q, err := Open(filepath.Join(t.TempDir(), "tasks.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var mu sync.Mutex
	calls := map[string]int{}
	finished := make(chan string, 10)
	h := func(_ context.Context, task Task) error {
		mu.Lock()
		defer mu.Unlock()
		calls[task.Target]++
		if task.Target == "flaky" && calls["flaky"] == 1 {
			return errors.New("first try fails")
		}
		finished <- task.Target
		return nil
	}
	r := NewRunner(q, h, 2, 10*time.Millisecond, zap.NewNop(), tally.NoopScope)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- r.Run(ctx) }()
	d := digest.FromString("x")
	if err := q.Add(Task{Kind: "k", Digest: d, Target: "ok"}, Task{Kind: "k", Digest: d, Target: "flaky"}); err != nil {
		t.Fatal(err)
	}
	r.Notify()
	got := map[string]bool{<-finished: true, <-finished: true}
	cancel()
	<-stopped
	if !got["ok"] || !got["flaky"] || calls["flaky"] != 2 {
		t.Fatalf("finished %v, calls %v", got, calls)
	}
	if n, _ := q.Len(); n != 0 {
		t.Fatalf("%d tasks left", n)
	}
}
