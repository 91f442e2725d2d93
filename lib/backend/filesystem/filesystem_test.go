package filesystem

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/backendtest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend { return newBackend(t, t.TempDir()) })
}

func newBackend(t *testing.T, root string) *Backend {
	t.Helper()
	b, err := New(Config{Root: root})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestNewCreatesRoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "a", "b")
	newBackend(t, root)
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("root not created: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with an empty root succeeded")
	}
}

// The files are where a registry sharing the directory expects them.
func TestLayout(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	b := newBackend(t, root)
	name := backend.TagName("library/busybox", "latest")
	if err := b.Upload(t.Context(), name, strings.NewReader("sha256:abc")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	if err != nil || string(got) != "sha256:abc" {
		t.Fatalf("file at the object's path: %q, %v", got, err)
	}
}

func TestBadNames(t *testing.T) {
	t.Parallel()
	b := newBackend(t, t.TempDir())
	for _, name := range []string{"", "/etc/passwd", "../x", "a/../../x", "a/..", "a//b", "a/b/", "./a", ".", `a\b`, "a/" + tempPrefix + "x"} {
		if err := b.Upload(t.Context(), name, strings.NewReader("x")); !errors.Is(err, errBadName) {
			t.Errorf("Upload(%q): %v, want a bad-name error", name, err)
		}
		if _, err := b.Stat(t.Context(), name); !errors.Is(err, errBadName) {
			t.Errorf("Stat(%q): %v, want a bad-name error", name, err)
		}
		if err := b.Download(t.Context(), name, nil); !errors.Is(err, errBadName) {
			t.Errorf("Download(%q): %v, want a bad-name error", name, err)
		}
	}
	if _, err := b.List(t.Context(), "../"); !errors.Is(err, errBadName) {
		t.Errorf("List(../): %v, want a bad-name error", err)
	}
}

// Temporary files a crash left behind are neither listed nor served.
func TestTempFilesHidden(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	b := newBackend(t, root)
	if err := b.Upload(t.Context(), "d/obj", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", tempPrefix+"123"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, err := b.List(t.Context(), "")
	if err != nil || !slices.Equal(names, []string{"d/obj"}) {
		t.Fatalf("List = %q, %v; want [d/obj]", names, err)
	}
}

// A file standing where a directory of the name would be is a miss, not an error.
func TestFileAsDirectory(t *testing.T) {
	t.Parallel()
	b := newBackend(t, t.TempDir())
	if err := b.Upload(t.Context(), "a", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(t.Context(), "a/b"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat(a/b) with a file a: %v, want ErrNotFound", err)
	}
	if names, err := b.List(t.Context(), "a/"); err != nil || len(names) != 0 {
		t.Fatalf("List(a/) with a file a = %q, %v; want nothing", names, err)
	}
}
