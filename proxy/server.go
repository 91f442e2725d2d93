package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/registry"
)

// Server is the proxy: the read-write registry API, blobs and manifests stored on the
// origin cluster, tags in build-index.
type Server struct {
	registry *registry.Registry
	preheat  *Preheat                        // nil: preheat off
	auth     func(http.Handler) http.Handler // nil: the registry API is open
	log      *zap.Logger
}

// NewServer wires the registry over the origin set and the build-index client, under
// limits.
func NewServer(limits registry.Limits, origins *originset.Set, buildIndex *buildindexclient.Client, log *zap.Logger, scope tally.Scope) *Server {
	store := registry.NewClusterStore(origins, limits.StallTimeout)
	reg := registry.New(registry.Options{
		Blobs:   store,
		Tags:    registry.BuildIndexTags(buildIndex),
		Uploads: store,
		Limits:  limits,
		Log:     log,
		Scope:   scope.SubScope("registry"),
	})
	return &Server{registry: reg, log: log}
}

// WithPreheat serves p's endpoints (see Preheat.Routes) beside the registry API.
func (s *Server) WithPreheat(p *Preheat) *Server {
	s.preheat = p
	return s
}

// WithAuth puts auth (lib/regauth's middleware) in front of every route; it guards
// the registry API (/v2/) and lets the rest pass.
func (s *Server) WithAuth(auth func(http.Handler) http.Handler) *Server {
	s.auth = auth
	return s
}

// Handler lists every route of the proxy.
func (s *Server) Handler(metrics http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(httpserver.AccessLog(s.log))
	if s.auth != nil {
		r.Use(s.auth)
	}
	httpserver.MountOps(r, metrics, nil)
	if s.preheat != nil {
		s.preheat.Routes(r)
	}
	s.registry.Routes(r)
	return r
}
