// Package router picks a Backend per namespace (repository) by regular expression,
// as Kraken's namespace-to-backend config does: blobs of "library/.*" from one
// bucket, "team-a/.*" from another, everything else from the default. The namespace
// comes from the context (backend.WithNamespace); without one, the default serves.
package router

import (
	"context"
	"io"
	"regexp"

	"github.com/shoal-p2p/shoal/lib/backend"
)

// Route sends namespaces matching Match to Backend.
type Route struct {
	Match   *regexp.Regexp
	Backend backend.Backend
}

// Router is a Backend that forwards each call to the first route matching the
// call's namespace, else to the default.
type Router struct {
	routes []Route
	def    backend.Backend
}

var _ backend.Backend = (*Router)(nil)

// New returns a Router over routes (tried in order) and def.
func New(routes []Route, def backend.Backend) *Router { return &Router{routes: routes, def: def} }

// Pick returns the backend serving ctx's namespace.
func (r *Router) Pick(ctx context.Context) backend.Backend {
	if ns, ok := backend.NamespaceFrom(ctx); ok {
		for _, rt := range r.routes {
			if rt.Match.MatchString(ns) {
				return rt.Backend
			}
		}
	}
	return r.def
}

func (r *Router) Stat(ctx context.Context, name string) (backend.Info, error) {
	return r.Pick(ctx).Stat(ctx, name)
}

func (r *Router) Download(ctx context.Context, name string, w io.Writer) error {
	return r.Pick(ctx).Download(ctx, name, w)
}

func (r *Router) Upload(ctx context.Context, name string, rd io.Reader) error {
	return r.Pick(ctx).Upload(ctx, name, rd)
}

// List lists the backend of ctx's namespace (the default without one).
func (r *Router) List(ctx context.Context, prefix string) ([]string, error) {
	return r.Pick(ctx).List(ctx, prefix)
}
