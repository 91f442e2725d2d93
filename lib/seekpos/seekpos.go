// Package seekpos resolves io.Seeker arguments for readers that only track a position
// (ranged HTTP reads, pieces arriving from a swarm): one place for the whence rules.
package seekpos

import (
	"errors"
	"fmt"
	"io"
)

// ErrNegative is returned for a position before the start.
var ErrNegative = errors.New("seek to a negative position")

// Resolve returns the absolute position that Seek(offset, whence) names for a reader
// at cur of a stream of size bytes. Positions past the end are allowed, as for files.
func Resolve(cur, size, offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += cur
	case io.SeekEnd:
		offset += size
	default:
		return cur, fmt.Errorf("seek: invalid whence %d", whence)
	}
	if offset < 0 {
		return cur, fmt.Errorf("%w (%d)", ErrNegative, offset)
	}
	return offset, nil
}
