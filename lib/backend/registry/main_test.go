//go:build !integration

package registry

import (
	"testing"

	"go.uber.org/goleak"
)

// The integration build has its own TestMain, which starts the upstream registry.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
