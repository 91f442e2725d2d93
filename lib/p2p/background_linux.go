package p2p

import (
	"os"

	"golang.org/x/sys/unix"
)

// lowerThreadPriority sets the calling thread's nice value to 19; a failure leaves it
// as it was, which is only slower for others.
func lowerThreadPriority() {
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}

// startWriteback starts writing n bytes of f from off to disk, without waiting.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
