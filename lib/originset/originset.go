// Package originset is the origin membership the proxy, tracker and agent share: a
// lib/memberset of origin clients. Placement is rendezvous hashing of the digest over
// the origins' base URLs; each blob's first Replicas origins own it.
package originset

import (
	"net/http"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/memberset"
	"github.com/shoal-p2p/shoal/lib/originclient"
)

// Set is the live origin membership (see memberset.Set).
type Set = memberset.Set[*originclient.Client]

// Config names the origins (see memberset.Config).
type Config = memberset.Config

// DefaultConfig holds the values used for keys the file leaves out: 3 replicas.
func DefaultConfig() Config { return memberset.DefaultConfig() }

// New returns the origin set for cfg; origin clients and health checks use hc.
func New(cfg Config, hc *http.Client, log *zap.Logger, scope tally.Scope) (*Set, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	return memberset.New("origin", cfg, func(base string) *originclient.Client { return originclient.New(base, hc) }, hc, log, scope)
}
