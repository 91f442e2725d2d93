// Package writeback decorates a Backend so that an Upload is acknowledged once it is
// durable on local disk and queued, and reaches the remote backend later, retried with
// backoff across crashes and restarts. Build-index uses it for tags, so a push is
// accepted while the object store is away. Meant for small objects: a pending
// object is read into memory to be sent.
//
// Reads see pending objects first: a tag pushed while the remote is down resolves.
//
// Each write is its own task, keyed by the name and the content's digest, and sends of
// one name never overlap: an older value finishing its send late can neither overwrite
// a newer one on the remote nor take the newer one's task with it.
package writeback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/filesystem"
	"github.com/shoal-p2p/shoal/lib/taskqueue"
)

const taskUpload = "upload"

// tryWait bounds the synchronous attempt to reach the remote in Upload.
const tryWait = 5 * time.Second

// Backend is a remote Backend with a durable local write-back queue.
type Backend struct {
	remote backend.Backend
	local  *filesystem.Backend // pending objects, by name
	tasks  *taskqueue.Queue
	runner *taskqueue.Runner
	log    *zap.Logger
	mu     sync.Mutex // orders local writes against the removal of sent copies
	// sending serializes the sends of one name (striped by name; a stripe is held by
	// sending a token into it).
	sending [64]chan struct{}
}

var _ backend.Backend = (*Backend)(nil)

// New decorates remote; pending objects are kept under dir, their queue in tasks.
func New(remote backend.Backend, dir string, tasks *taskqueue.Queue, log *zap.Logger, scope tally.Scope) (*Backend, error) {
	local, err := filesystem.New(filesystem.Config{Root: dir})
	if err != nil {
		return nil, fmt.Errorf("writeback: %w", err)
	}
	b := &Backend{remote: remote, local: local, tasks: tasks, log: log}
	for i := range b.sending {
		b.sending[i] = make(chan struct{}, 1)
	}
	b.runner = taskqueue.NewRunner(tasks, b.send, 2, time.Second, log, scope)
	return b, nil
}

// Run sends pending objects until ctx ends (also those left by a crash).
func (b *Backend) Run(ctx context.Context) error { return b.runner.Run(ctx) }

// Upload stores r locally and durably, queues it, and tries the remote once; it
// succeeds once the object is durable locally.
func (b *Backend) Upload(ctx context.Context, name string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("writeback upload %s: %w", name, err)
	}
	t := b.task(ctx, name, data)
	b.mu.Lock()
	err = b.local.Upload(ctx, name, bytes.NewReader(data))
	if err == nil {
		err = b.tasks.Add(t)
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("writeback upload %s: %w", name, err)
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tryWait)
	defer cancel()
	if err := b.send(tctx, t); err != nil {
		b.log.Warn("remote backend unreachable; upload queued", zap.String("name", name), zap.Error(err))
		b.runner.Notify()
		return nil
	}
	if err := b.tasks.Done(t); err != nil {
		b.log.Warn("finish write-back task", zap.String("name", name), zap.Error(err))
	}
	return nil
}

// task is the write-back of data as name; it keeps ctx's namespace for a routing
// backend.
func (b *Backend) task(ctx context.Context, name string, data []byte) taskqueue.Task {
	ns, _ := backend.NamespaceFrom(ctx)
	return taskqueue.Task{Kind: taskUpload, Digest: digest.FromBytes(data), Target: name, Namespace: ns}
}

// lockName waits until no other send of name runs, or ctx ends.
func (b *Backend) lockName(ctx context.Context, name string) (unlock func(), err error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	stripe := b.sending[h.Sum32()%uint32(len(b.sending))]
	select {
	case stripe <- struct{}{}:
		return func() { <-stripe }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// send copies the pending object to the remote if it is still t's content, and drops
// the local copy if it did not change meanwhile. A task with no digest (queued by an
// older version) sends whatever is pending.
func (b *Backend) send(ctx context.Context, t taskqueue.Task) error {
	unlock, err := b.lockName(ctx, t.Target)
	if err != nil {
		return fmt.Errorf("writeback send %s: %w", t.Target, err)
	}
	defer unlock()
	var buf bytes.Buffer
	if err := b.local.Download(ctx, t.Target, &buf); err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return nil // sent and removed by an earlier try
		}
		return err
	}
	sent := buf.Bytes()
	if t.Digest != "" && digest.FromBytes(sent) != t.Digest {
		return nil // overwritten since: the newer write's own task sends it
	}
	if err := b.remote.Upload(backend.WithNamespace(ctx, t.Namespace), t.Target, bytes.NewReader(sent)); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var now bytes.Buffer
	if err := b.local.Download(ctx, t.Target, &now); err == nil && bytes.Equal(now.Bytes(), sent) {
		return b.local.Remove(ctx, t.Target)
	}
	return nil
}

// Stat answers a pending object locally, else asks the remote.
func (b *Backend) Stat(ctx context.Context, name string) (backend.Info, error) {
	if info, err := b.local.Stat(ctx, name); err == nil {
		return info, nil
	}
	return b.remote.Stat(ctx, name)
}

// Download reads a pending object locally, else from the remote.
func (b *Backend) Download(ctx context.Context, name string, w io.Writer) error {
	var buf bytes.Buffer
	if err := b.local.Download(ctx, name, &buf); err == nil {
		_, err := w.Write(buf.Bytes())
		return err
	}
	return b.remote.Download(ctx, name, w)
}

// List merges pending objects into the remote's listing.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	remote, err := b.remote.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	local, err := b.local.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	all := append(remote, local...)
	slices.Sort(all)
	return slices.Compact(all), nil
}
