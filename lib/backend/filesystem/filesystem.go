// Package filesystem is the backend driver that keeps objects as files under a root
// directory: object "a/b/c" is the file <root>/a/b/c.
//
//	<root>/
//	  docker/registry/v2/...             objects, in backend's layout
//	  .../.shoal-upload-<random>         an Upload in progress, next to its object
//
// Invariants: an object's file appears only by an atomic rename of a fully written and
// synced temporary file, and the directories on its path are synced after the rename,
// so an acknowledged Upload survives a crash and no reader ever sees part of an object.
// Temporary files are never listed or served; ones left by a crash stay on disk.
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/shoal-p2p/shoal/lib/backend"
)

// tempPrefix starts the name of every temporary file; object names may not use it.
const tempPrefix = ".shoal-upload-"

// Config configures a filesystem backend.
type Config struct {
	// Root is the directory holding the objects; created if missing. Required.
	Root string `yaml:"root"`
}

// Backend stores objects as files under a root directory. Safe for concurrent use.
type Backend struct {
	root string
}

var _ backend.Backend = (*Backend)(nil)

// New opens the backend rooted at cfg.Root, creating the directory.
func New(cfg Config) (*Backend, error) {
	if cfg.Root == "" {
		return nil, errors.New("filesystem backend: empty root (set root to a directory)")
	}
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return nil, fmt.Errorf("filesystem backend open %s: %w", cfg.Root, err)
	}
	return &Backend{root: cfg.Root}, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(_ context.Context, name string) (backend.Info, error) {
	p, err := b.path(name)
	if err != nil {
		return backend.Info{}, fmt.Errorf("fs stat %s: %w", name, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return backend.Info{}, fmt.Errorf("fs stat %s: %w", name, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return backend.Info{}, fmt.Errorf("fs stat %s: %w", name, backend.ErrNotFound)
	}
	return backend.Info{Size: fi.Size()}, nil
}

// Download implements backend.Backend.
func (b *Backend) Download(_ context.Context, name string, w io.Writer) error {
	p, err := b.path(name)
	if err != nil {
		return fmt.Errorf("fs download %s: %w", name, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("fs download %s: %w", name, notFound(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return fmt.Errorf("fs download %s: %w", name, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("fs download %s: %w", name, backend.ErrNotFound)
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("fs download %s: %w", name, err)
	}
	return nil
}

// Upload implements backend.Backend: a temporary file in the object's directory is
// written and synced, renamed over the object, then the directories up to the root are
// synced so the rename (and any directory it needed) is durable too.
func (b *Backend) Upload(ctx context.Context, name string, r io.Reader) error {
	p, err := b.path(name)
	if err != nil {
		return fmt.Errorf("fs upload %s: %w", name, err)
	}
	if err := b.upload(ctx, p, r); err != nil {
		return fmt.Errorf("fs upload %s: %w", name, err)
	}
	return nil
}

func (b *Backend) upload(ctx context.Context, p string, r io.Reader) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The caller may have given up while we wrote: don't publish what it won't hear of.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	// Sync every directory up to the root, not only the ones this call created: a
	// concurrent Upload may have created one and not synced it yet.
	for d := dir; ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return err
		}
		if d == filepath.Clean(b.root) || d == filepath.Dir(d) {
			return nil
		}
	}
}

// List implements backend.Backend. Only the directory holding prefix's last complete
// component is walked, and subdirectories that cannot hold a match are skipped.
func (b *Backend) List(_ context.Context, prefix string) ([]string, error) {
	start := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i]
	}
	dir := b.root
	if start != "" {
		p, err := b.path(start)
		if err != nil {
			return nil, fmt.Errorf("fs list %s: %w", prefix, err)
		}
		dir = p
	}
	names := []string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the start is missing, or vanished while we walked
			}
			return err
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != dir && !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(name, prefix) && !strings.HasPrefix(d.Name(), tempPrefix) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fs list %s: %w", prefix, err)
	}
	slices.Sort(names)
	return names, nil
}

var errBadName = errors.New("invalid object name")

// path maps an object name to its file, refusing names that would leave the root or
// collide with temporary files.
func (b *Backend) path(name string) (string, error) {
	if name == "" || path.IsAbs(name) || filepath.IsAbs(name) || strings.Contains(name, "\\") || path.Clean(name) != name {
		return "", fmt.Errorf("%w %q: must be a clean relative slash path", errBadName, name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == "." || c == ".." || strings.HasPrefix(c, tempPrefix) {
			return "", fmt.Errorf("%w %q: component %q not allowed", errBadName, name, c)
		}
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// notFound maps a missing file, or a file standing where a directory should be, to
// backend.ErrNotFound, keeping the cause.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w (%v)", backend.ErrNotFound, err)
	}
	return err
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Remove deletes name; a missing name is not an error. Not part of backend.Backend:
// Shoal never deletes from a backend; the write-back decorator drops its local copies.
func (b *Backend) Remove(_ context.Context, name string) error {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("fs backend remove %s: %w", name, err)
	}
	return nil
}
