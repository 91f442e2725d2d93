// Package httpserver runs a component's HTTP server under a context and carries the
// endpoints every component serves (/health, /metrics).
package httpserver

import (
	"context"
	"crypto/tls"
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

// Config bounds how long and how much a client may take to send a request (key http
// of a binary's config). Zero fields take DefaultConfig's values.
type Config struct {
	// ReadHeaderTimeout bounds reading a request line and headers; a client that sends
	// half a header (slowloris) is disconnected after it. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// BodyIdleTimeout bounds each wait for more of a request body: a body that stops
	// arriving for this long fails, one that keeps arriving takes as long as it needs
	// (a multi-GB layer push). Default 1m.
	BodyIdleTimeout time.Duration `yaml:"body_idle_timeout"`
	// IdleTimeout bounds a kept-alive connection waiting for its next request. Default 2m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's line and headers; over it the answer is 431.
	// Default 64 KiB (registry bearer tokens are a few KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// DefaultConfig holds the values for the keys a config leaves out.
func DefaultConfig() Config {
	return Config{
		ReadHeaderTimeout: 10 * time.Second,
		BodyIdleTimeout:   time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// Validate checks c; each message names the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		key string
		v   time.Duration
		eg  string
	}{{"read_header_timeout", c.ReadHeaderTimeout, "10s"}, {"body_idle_timeout", c.BodyIdleTimeout, "1m"}, {"idle_timeout", c.IdleTimeout, "2m"}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s is negative (use e.g. %s)", d.key, d.v, d.eg))
		}
	}
	if c.MaxHeaderBytes < 0 || (c.MaxHeaderBytes > 0 && c.MaxHeaderBytes < 4<<10) {
		errs = append(errs, fmt.Errorf("max_header_bytes: %d is below 4096, too small for ordinary requests (use e.g. 65536)", c.MaxHeaderBytes))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.BodyIdleTimeout == 0 {
		c.BodyIdleTimeout = d.BodyIdleTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	return c
}

// Serve is DefaultConfig().Serve, for a binary whose config has no http key.
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger) error {
	return DefaultConfig().Serve(ctx, addr, h, log)
}

// Serve listens on addr and serves h until ctx is done, then shuts down gracefully.
// With a tlsCfg (lib/tlsconfig's ServerConfig), it serves HTTPS.
func (c Config) Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger, tlsCfg ...*tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return c.ServeListener(ctx, ln, h, log, tlsCfg...)
}

// ServeListener is Serve on a listener the caller opened.
func (c Config) ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger, tlsCfg ...*tls.Config) error {
	c = c.withDefaults()
	scheme := "http"
	if len(tlsCfg) > 0 && tlsCfg[0] != nil {
		ln, scheme = tls.NewListener(ln, tlsCfg[0]), "https"
	}
	srv := &http.Server{
		Handler:           bodyIdle(h, c.BodyIdleTimeout),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		// No ReadTimeout: it bounds the whole request, body included, and a layer
		// push is one body of any size. bodyIdle bounds each wait instead.
		IdleTimeout:    c.IdleTimeout,
		MaxHeaderBytes: c.MaxHeaderBytes,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", zap.String("addr", ln.Addr().String()), zap.String("scheme", scheme))
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

// bodyIdle gives every request body a read deadline of idle from each read, so a body
// fails once it stops arriving, however long it has been arriving.
func bodyIdle(h http.Handler, idle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			// Outermost, w is net/http's own writer, which sets deadlines itself; no
			// ResponseController to allocate per request (the tracker takes tens of
			// thousands a second).
			dl, ok := w.(readDeadliner)
			if !ok {
				dl = http.NewResponseController(w)
			}
			r.Body = &idleBody{ReadCloser: r.Body, rc: dl, idle: idle}
		}
		h.ServeHTTP(w, r)
	})
}

type readDeadliner interface{ SetReadDeadline(time.Time) error }

type idleBody struct {
	io.ReadCloser
	rc       readDeadliner
	idle     time.Duration
	extended time.Time // when the deadline was last moved
	done     bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	// Moving the deadline on every read of a fast body costs a timer update each;
	// a quarter of idle late still leaves each wait at least 3/4 of it.
	if now := time.Now(); now.Sub(b.extended) >= b.idle/4 {
		if b.rc.SetReadDeadline(now.Add(b.idle)) == nil {
			b.extended = now
		}
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		// At the body's end net/http lifts the deadline and starts its background
		// read of the connection; a deadline set after that would time that read out
		// during a long commit and cancel the request's context.
		b.done = true
	}
	return n, err
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
