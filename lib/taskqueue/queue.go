// Package taskqueue is a durable queue of retryable per-blob tasks (write-back to the
// backend, replication to other origins) in a bbolt file, so a task acknowledged to a
// client survives a crash and restart. A blob with a pending task is pinned: the cache
// must not evict it.
//
// Layout of the bbolt file:
//
//	tasks/                  bucket
//	  <digest>\x00<kind>\x00<target>  -> JSON Task   (digest first: Pinned is a prefix seek)
package taskqueue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

var bucketTasks = []byte("tasks")

// Task is one unit of retryable work on a blob.
type Task struct {
	// Kind names the work, e.g. "writeback" or "replicate".
	Kind   string        `json:"kind"`
	Digest digest.Digest `json:"digest"`
	// Target is where the work goes, when the kind needs one (a replica's URL).
	Target string `json:"target,omitempty"`
	// Namespace is the repository the blob was pushed to: it picks the backend when
	// backends are chosen per namespace. Not part of Key.
	Namespace string `json:"namespace,omitempty"`
	// Attempts counts failed tries so far.
	Attempts int `json:"attempts"`
	// NotBefore is when the task may run next.
	NotBefore time.Time `json:"not_before"`
	LastError string    `json:"last_error,omitempty"`
}

// Key identifies a task; adding a task with an existing key is a no-op.
func (t Task) Key() string {
	return t.Digest.String() + "\x00" + t.Kind + "\x00" + t.Target
}

// Queue is the durable task set. Safe for concurrent use.
type Queue struct {
	db *bolt.DB
}

// Open opens (creating) the queue file at path.
func Open(path string) (*Queue, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("task queue %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTasks)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("task queue %s: %w", path, err)
	}
	return &Queue{db: db}, nil
}

// Close closes the file.
func (q *Queue) Close() error { return q.db.Close() }

// Add stores tasks durably (fsynced) in one transaction; existing keys are kept as
// they are. Tasks run no earlier than their NotBefore (zero: at once).
func (q *Queue) Add(tasks ...Task) error {
	return q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks)
		for _, t := range tasks {
			k := []byte(t.Key())
			if b.Get(k) != nil {
				continue
			}
			v, err := json.Marshal(t)
			if err != nil {
				return err
			}
			if err := b.Put(k, v); err != nil {
				return fmt.Errorf("add task %q: %w", t.Key(), err)
			}
		}
		return nil
	})
}

// Due returns up to limit tasks whose NotBefore has passed, oldest first.
func (q *Queue) Due(now time.Time, limit int) ([]Task, error) {
	var due []Task
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEach(func(_, v []byte) error {
			var t Task
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("corrupt task: %w", err)
			}
			if !t.NotBefore.After(now) {
				due = append(due, t)
			}
			return nil
		})
	})
	sort.SliceStable(due, func(i, j int) bool { return due[i].NotBefore.Before(due[j].NotBefore) })
	if limit > 0 && len(due) > limit {
		due = due[:limit]
	}
	return due, err
}

// Done removes a finished task.
func (q *Queue) Done(t Task) error {
	return q.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTasks).Delete([]byte(t.Key())) })
}

// Failed records a failed try and schedules the next after Backoff; it returns the
// task as stored.
func (q *Queue) Failed(t Task, now time.Time, cause error) (Task, error) {
	t.Attempts++
	t.NotBefore = now.Add(Backoff(t.Attempts))
	if cause != nil {
		t.LastError = cause.Error()
	}
	err := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks)
		k := []byte(t.Key())
		if b.Get(k) == nil {
			return nil // removed meanwhile
		}
		v, err := json.Marshal(t)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
	return t, err
}

// Pinned reports whether d has a pending task of any kind.
func (q *Queue) Pinned(d digest.Digest) (bool, error) {
	prefix := []byte(d.String() + "\x00")
	pinned := false
	err := q.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketTasks).Cursor().Seek(prefix)
		pinned = k != nil && bytes.HasPrefix(k, prefix)
		return nil
	})
	return pinned, err
}

// Len is the number of pending tasks.
func (q *Queue) Len() (int, error) {
	n := 0
	err := q.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketTasks).Stats().KeyN
		return nil
	})
	return n, err
}

// Backoff is the wait after the n-th failed try: 1 s doubling to at most 5 min.
func Backoff(attempts int) time.Duration {
	const limit = 5 * time.Minute
	if attempts <= 0 {
		return 0
	}
	d := time.Second
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= limit {
			return limit
		}
	}
	return d
}
