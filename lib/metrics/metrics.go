// Package metrics builds the tally root scope of a binary, reported in Prometheus
// format. Metric names use underscores; the component name is the prefix.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uber-go/tally/v4"
	promreporter "github.com/uber-go/tally/v4/prometheus"
)

// Registry is a root scope and the handler that serves it at GET /metrics.
type Registry struct {
	Scope   tally.Scope
	Handler http.Handler
	closer  io.Closer
}

// New returns a root scope prefixed with component (e.g. "shoal_agent") that reports
// to a Prometheus registry every interval.
func New(component string, interval time.Duration) (*Registry, error) {
	// A registry of its own, not Prometheus's global one: on the global one a second
	// Registry in the process (a test run twice, -count) panics on the first metric
	// name the two share.
	pr := prometheus.NewRegistry()
	pr.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reporter := promreporter.NewReporter(promreporter.Options{Registerer: pr})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		Prefix:         component,
		CachedReporter: reporter,
		Separator:      promreporter.DefaultSeparator,
		// Without sanitizing, tally's internal cardinality metric names make the
		// Prometheus reporter panic at start-up.
		SanitizeOptions:        &promreporter.DefaultSanitizerOpts,
		OmitCardinalityMetrics: true,
	}, interval)
	if scope == nil {
		return nil, fmt.Errorf("metrics %s: no scope", component)
	}
	return &Registry{Scope: scope, Handler: reporter.HTTPHandler(), closer: closer}, nil
}

// Close flushes and stops reporting.
func (r *Registry) Close() error { return r.closer.Close() }
