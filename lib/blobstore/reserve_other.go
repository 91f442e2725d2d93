//go:build !linux

package blobstore

import "os"

// reserve sizes f; only Linux reserves the blocks (Shoal runs on Linux; this lets the
// package build elsewhere).
func reserve(f *os.File, size int64) error { return f.Truncate(size) }
