package p2p

import "runtime"

// inBackground runs f on an OS thread of its own at the lowest CPU priority and
// returns its result. The thread is never unlocked, so it exits with the goroutine and
// no other goroutine ever runs at its priority.
func inBackground(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		lowerThreadPriority()
		done <- f()
	}()
	return <-done
}
