package backend

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// NamespaceParam is the query parameter that carries the namespace hint between
// Shoal's components (agent -> tracker -> origin), so a backend that needs the
// repository (an upstream registry) gets it on a cold pull.
const NamespaceParam = "repository"

// NamespaceQuery returns "<sep>repository=<ns>" for ctx's hint, or "" without one.
// sep is "?" or "&", whichever the URL needs.
func NamespaceQuery(ctx context.Context, sep string) string {
	ns, ok := NamespaceFrom(ctx)
	if !ok {
		return ""
	}
	return sep + NamespaceParam + "=" + url.QueryEscape(ns)
}

// NamespaceMiddleware puts a request's namespace hint, if it has one, into its context.
func NamespaceMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Parsing the query allocates; most requests (every announce) have no hint.
		if !strings.Contains(r.URL.RawQuery, NamespaceParam+"=") {
			next.ServeHTTP(w, r)
			return
		}
		if ns := r.URL.Query().Get(NamespaceParam); ns != "" {
			r = r.WithContext(WithNamespace(r.Context(), ns))
		}
		next.ServeHTTP(w, r)
	})
}
