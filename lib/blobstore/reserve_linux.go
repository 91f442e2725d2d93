package blobstore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// reserve allocates size bytes of disk for f, which then reads as size zero bytes.
// Filesystems without fallocate get a sparse file (no reservation). A size over the
// free space is refused before fallocate: ext4 allocates what it can before failing,
// so the whole disk was full (for every other writer) until the file was removed.
func reserve(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err == nil && size > int64(st.Bavail)*int64(st.Bsize) {
		return unix.ENOSPC
	}
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}
