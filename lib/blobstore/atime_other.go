//go:build !linux

package blobstore

import (
	"os"
	"time"
)

// accessTime is unknown where the stat layout differs (Shoal runs on Linux; this lets
// the package build elsewhere): eviction then orders blobs by commit time.
func accessTime(os.FileInfo) (time.Time, bool) { return time.Time{}, false }
