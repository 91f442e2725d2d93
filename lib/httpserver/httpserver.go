// Package httpserver runs a component's HTTP server under a context and carries the
// endpoints every component serves (/health, /metrics).
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"
)

// ShutdownTimeout bounds how long in-flight requests get after the context ends.
const ShutdownTimeout = 10 * time.Second

// Serve listens on addr and serves h until ctx is done, then shuts down gracefully.
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, log)
}

// ServeListener is Serve on a listener the caller opened.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", zap.String("addr", ln.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	// Serve returns once Shutdown has closed the listener, or at once if Shutdown ran
	// before it started; only then is the listener closed and the port free.
	<-errc
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}

// MountOps adds GET /health and GET /metrics to r. ready reports readiness for
// GET /readiness; nil means always ready.
func MountOps(r chi.Router, metrics http.Handler, ready func(context.Context) error) {
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("OK\n"))
	})
	r.Get("/readiness", func(w http.ResponseWriter, req *http.Request) {
		if ready != nil {
			if err := ready(req.Context()); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("OK\n"))
	})
	if metrics != nil {
		r.Method(http.MethodGet, "/metrics", metrics)
	}
}

// CheckHealth asks the component at base (http://host:port) for GET /health, the
// route MountOps serves; any 2xx is healthy.
func CheckHealth(ctx context.Context, hc *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// Debug selects the diagnostics a component serves on its listen address (key debug).
type Debug struct {
	// Pprof serves Go's runtime profiles under /debug/pprof/ (CPU, heap, goroutines,
	// mutexes). Off by default: anyone who reaches the address can take them.
	Pprof bool `yaml:"pprof"`
}

// WithDebug returns h with what d enables in front of it.
func WithDebug(h http.Handler, d Debug) http.Handler {
	if !d.Pprof {
		return h
	}
	r := chi.NewRouter()
	r.Mount("/debug", middleware.Profiler())
	r.Mount("/", h)
	return r
}

// AccessLog logs one line per request at debug level and counts nothing else;
// components add their own metrics where they mean something.
func AccessLog(log *zap.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(ww, r)
			// Check first: building the fields costs an allocation per request even
			// when debug is off, and trackers take tens of thousands a second.
			if ce := log.Check(zap.DebugLevel, "request"); ce != nil {
				ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("query", r.URL.RawQuery),
					zap.Int("status", ww.status), zap.Duration("took", time.Since(start)))
			}
		})
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (flushes, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom keeps net/http's sendfile path for blobs served from disk.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(w.ResponseWriter, r) }
