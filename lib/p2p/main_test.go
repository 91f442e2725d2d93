package p2p

import (
	"testing"

	"go.uber.org/goleak"
)

// The torrent client stops every goroutine it starts on Close: no ignore list needed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
