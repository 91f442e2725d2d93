package writeback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

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

// gated is a remote that holds the Upload of one content until release is closed (a
// slow object store), and fails every call while down.
type gated struct {
	switchable
	hold    string
	started chan struct{} // closed when the held Upload arrives
	release chan struct{}
}

func (g *gated) Upload(ctx context.Context, name string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !g.isDown() && string(data) == g.hold {
		close(g.started)
		<-g.release
		return g.Backend.Upload(ctx, name, bytes.NewReader(data)) // it got through before
	}
	return g.switchable.Upload(ctx, name, bytes.NewReader(data))
}

func (g *gated) setDown(down bool) { g.mu.Lock(); g.down = down; g.mu.Unlock() }

// A tag written while an older value of it is still being sent to the remote ends up
// on the remote, whether the newer value's own attempt gets through (downAfter false)
// or finds the remote gone and stays queued (true): the older send finishing last must
// neither overwrite it nor drop its task.
func TestNewerUploadWinsOverOlderSendInFlight(t *testing.T) {
	for _, downAfter := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote down after: %v", downAfter), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fsRemote, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				remote := &gated{switchable: switchable{Backend: fsRemote, down: true}, hold: "sha256:v1",
					started: make(chan struct{}), release: make(chan struct{})}
				b := open(t, remote, t.TempDir())
				name := backend.TagName("team/app", "latest")
				if err := b.Upload(t.Context(), name, strings.NewReader("sha256:v1")); err != nil {
					t.Fatal(err)
				}
				remote.setDown(false)
				sent := make(chan error, 1)
				go func() { sent <- b.runner.RunDue(t.Context()) }() // sends v1, slowly
				<-remote.started
				remote.setDown(downAfter)
				pushed := make(chan error, 1)
				go func() { pushed <- b.Upload(t.Context(), name, strings.NewReader("sha256:v2")) }()
				synctest.Wait()
				close(remote.release) // v1 reaches the remote last
				if err := <-sent; err != nil {
					t.Fatalf("send v1: %v", err)
				}
				if err := <-pushed; err != nil {
					t.Fatalf("upload v2: %v", err)
				}
				remote.setDown(false)
				if err := b.runner.RunDue(t.Context()); err != nil {
					t.Fatalf("write-back: %v", err)
				}
				var buf bytes.Buffer
				if err := fsRemote.Download(t.Context(), name, &buf); err != nil || buf.String() != "sha256:v2" {
					t.Errorf("remote holds %q (%v), want the newer sha256:v2", buf.String(), err)
				}
				buf.Reset()
				if err := b.Download(t.Context(), name, &buf); err != nil || buf.String() != "sha256:v2" {
					t.Errorf("reads answer %q (%v), want sha256:v2", buf.String(), err)
				}
				if n, _ := b.tasks.Len(); n != 0 {
					t.Errorf("%d tasks left", n)
				}
				if _, err := b.local.Stat(t.Context(), name); !errors.Is(err, backend.ErrNotFound) {
					t.Errorf("local copy kept after write-back: %v", err)
				}
			})
		})
	}
}
