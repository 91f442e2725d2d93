package driver

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/router"
)

// Namespace sends the blobs and tags of repositories matching Match to their own
// backend; a binary lists them under the key "namespaces", tried in order before its
// default "backend".
type Namespace struct {
	// Match is a regular expression over the repository name, e.g. ^library/.
	Match string `yaml:"match"`
	// Backend serves the matching repositories.
	Backend Config `yaml:"backend"`
}

// ValidateNamespaces checks every entry; messages name namespaces[i].
func ValidateNamespaces(ns []Namespace) error {
	var errs []error
	for i, n := range ns {
		if n.Match == "" {
			errs = append(errs, fmt.Errorf("namespaces[%d].match: empty (set a regular expression over repository names, e.g. ^library/)", i))
		} else if _, err := regexp.Compile(n.Match); err != nil {
			errs = append(errs, fmt.Errorf("namespaces[%d].match: %q is not a regular expression: %v", i, n.Match, err))
		}
		if err := n.Backend.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("namespaces[%d].%w", i, err))
		}
	}
	return errors.Join(errs...)
}

// OpenRouted opens def and every namespace's backend; with namespaces it returns a
// router.Router choosing among them by the context's namespace hint.
func OpenRouted(ctx context.Context, def Config, ns []Namespace, log *zap.Logger) (backend.Backend, error) {
	d, err := Open(ctx, def, log)
	if err != nil || len(ns) == 0 {
		return d, err
	}
	if err := ValidateNamespaces(ns); err != nil {
		return nil, err
	}
	routes := make([]router.Route, len(ns))
	for i, n := range ns {
		b, err := Open(ctx, n.Backend, log)
		if err != nil {
			return nil, fmt.Errorf("namespaces[%d]: %w", i, err)
		}
		routes[i] = router.Route{Match: regexp.MustCompile(n.Match), Backend: b}
	}
	return router.New(routes, d), nil
}
