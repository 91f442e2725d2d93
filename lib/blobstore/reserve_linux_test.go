package blobstore

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// TestOpenPartialWithoutSpace: a partial file bigger than the disk's free space fails
// at once with ErrNoSpace, and leaves no file behind. It must not fill the disk on the
// way (ext4's fallocate did, failing the tests running beside it with ENOSPC).
func TestOpenPartialWithoutSpace(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	size := free + 1<<30
	d := digest.FromString("too big")
	f, err := s.OpenPartial(d, size)
	if err == nil {
		f.Close()
		_ = s.RemovePartial(d)
		t.Skipf("this filesystem let a %d-byte file be reserved with %d bytes free (no fallocate)", size, free)
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Skipf("reserving %d bytes: %v (not ENOSPC on this filesystem)", size, err)
	}
	if left := dirEntries(t, s, partialDir); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
	// A blob that fits is reserved whole.
	f, err = s.OpenPartial(d, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Size() != 1<<20 {
		t.Errorf("partial file of %d bytes, want %d", fi.Size(), 1<<20)
	}
}
