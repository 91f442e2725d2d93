package writeback

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/backendtest"
	"github.com/shoal-p2p/shoal/lib/backend/filesystem"
	"github.com/shoal-p2p/shoal/lib/taskqueue"
)

func open(t *testing.T, remote backend.Backend, dir string) *Backend {
	t.Helper()
	tasks, err := taskqueue.Open(filepath.Join(dir, "tasks.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tasks.Close() })
	b, err := New(remote, filepath.Join(dir, "pending"), tasks, zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		remote, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return open(t, remote, t.TempDir())
	})
}

// switchable fails every call while down: an object store that went away.
type switchable struct {
	backend.Backend
	mu   sync.Mutex
	down bool
}

var errDown = errors.New("remote unreachable")

func (s *switchable) isDown() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.down }

func (s *switchable) Upload(ctx context.Context, name string, r io.Reader) error {
	if s.isDown() {
		return errDown
	}
	return s.Backend.Upload(ctx, name, r)
}

func (s *switchable) Stat(ctx context.Context, name string) (backend.Info, error) {
	if s.isDown() {
		return backend.Info{}, errDown
	}
	return s.Backend.Stat(ctx, name)
}

// An upload acknowledged while the remote is down is readable at once and reaches the
// remote after a restart, once the remote is back; the local copy then goes.
func TestUploadWhileRemoteDownSurvivesRestart(t *testing.T) {
	fsRemote, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	remote := &switchable{Backend: fsRemote, down: true}
	dir := t.TempDir()
	b := open(t, remote, dir)
	name := backend.TagName("team/app", "v1")
	if err := b.Upload(t.Context(), name, bytes.NewReader([]byte("sha256:abc"))); err != nil {
		t.Fatalf("upload while the remote is down must be accepted: %v", err)
	}
	var buf bytes.Buffer
	if err := b.Download(t.Context(), name, &buf); err != nil || buf.String() != "sha256:abc" {
		t.Fatalf("pending object: %v %q", err, buf.String())
	}
	if _, err := fsRemote.Stat(t.Context(), name); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("remote has the object while down: %v", err)
	}
	b.tasks.Close() // the process goes away

	remote.mu.Lock()
	remote.down = false
	remote.mu.Unlock()
	b = open(t, remote, dir)
	if err := b.runner.RunDue(t.Context()); err != nil {
		t.Fatalf("write-back after restart: %v", err)
	}
	buf.Reset()
	if err := fsRemote.Download(t.Context(), name, &buf); err != nil || buf.String() != "sha256:abc" {
		t.Fatalf("remote copy: %v %q", err, buf.String())
	}
	if _, err := b.local.Stat(t.Context(), name); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("local copy kept after write-back: %v", err)
	}
	if n, _ := b.tasks.Len(); n != 0 {
		t.Fatalf("%d tasks left", n)
	}
}
