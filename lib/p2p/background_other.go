//go:build !linux

package p2p

import "os"

// lowerThreadPriority does nothing where threads have no priority of their own.
func lowerThreadPriority() {}

// startWriteback does nothing: the commit's fsync writes everything.
func startWriteback(*os.File, int64, int64) {}
