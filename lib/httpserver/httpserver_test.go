package httpserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Serve starts the http.Server's goroutines; they must be gone once it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestMountOps(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "shoal_up 1\n")
	})
	var mu sync.Mutex
	var readyErr error
	r := chi.NewRouter()
	MountOps(r, metrics, func(ctx context.Context) error {
		if ctx == nil {
			t.Error("readiness called without a context")
		}
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	})

	if rec := get(t, r, "/health"); rec.Code != http.StatusOK || rec.Body.String() != "OK\n" {
		t.Errorf("/health: %d %q", rec.Code, rec.Body)
	}
	if rec := get(t, r, "/metrics"); rec.Code != http.StatusOK || rec.Body.String() != "shoal_up 1\n" {
		t.Errorf("/metrics: %d %q", rec.Code, rec.Body)
	}
	if rec := get(t, r, "/readiness"); rec.Code != http.StatusOK {
		t.Errorf("/readiness while ready: %d %q", rec.Code, rec.Body)
	}
	mu.Lock()
	readyErr = errors.New("backend unreachable")
	mu.Unlock()
	rec := get(t, r, "/readiness")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "backend unreachable") {
		t.Errorf("/readiness while not ready: %d %q", rec.Code, rec.Body)
	}
	// Only GET is routed.
	post := httptest.NewRecorder()
	r.ServeHTTP(post, httptest.NewRequest(http.MethodPost, "/health", nil))
	if post.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /health: %d", post.Code)
	}
}

func TestMountOpsDefaults(t *testing.T) {
	t.Parallel()
	r := chi.NewRouter()
	MountOps(r, nil, nil) // no metrics handler, always ready
	if rec := get(t, r, "/readiness"); rec.Code != http.StatusOK || rec.Body.String() != "OK\n" {
		t.Errorf("/readiness with nil ready: %d %q", rec.Code, rec.Body)
	}
	if rec := get(t, r, "/health"); rec.Code != http.StatusOK {
		t.Errorf("/health: %d", rec.Code)
	}
	if rec := get(t, r, "/metrics"); rec.Code != http.StatusNotFound {
		t.Errorf("/metrics with no handler: %d, want 404", rec.Code)
	}
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

func TestAccessLogStatus(t *testing.T) {
	t.Parallel()
	log, logs := observed()
	r := chi.NewRouter()
	r.Use(AccessLog(log))
	r.Get("/teapot", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "short and stout")
	})
	r.Get("/implicit", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "no WriteHeader")
	})

	if rec := get(t, r, "/teapot"); rec.Code != http.StatusTeapot || rec.Body.String() != "short and stout" {
		t.Errorf("/teapot: %d %q", rec.Code, rec.Body)
	}
	if rec := get(t, r, "/implicit"); rec.Code != http.StatusOK {
		t.Errorf("/implicit: %d", rec.Code)
	}
	if rec := get(t, r, "/nowhere"); rec.Code != http.StatusNotFound {
		t.Errorf("/nowhere: %d", rec.Code)
	}
	entries := logs.FilterMessage("request").AllUntimed()
	want := map[string]int64{"/teapot": 418, "/implicit": 200, "/nowhere": 404}
	if len(entries) != len(want) {
		t.Fatalf("%d access log lines, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		f := e.ContextMap()
		if e.Level != zapcore.DebugLevel || f["method"] != "GET" || f["status"] != want[f["path"].(string)] {
			t.Errorf("access log line %v %v, want status %d", e.Level, f, want[f["path"].(string)])
		}
	}
}

// TestAccessLogKeepsInterfaces: behind AccessLog, http.ServeContent still answers
// Range requests, io.Copy still finds ReadFrom, and http.ResponseController still
// reaches the connection through Unwrap.
func TestAccessLogKeepsInterfaces(t *testing.T) {
	t.Parallel()
	log, logs := observed()
	content := bytes.Repeat([]byte("0123456789"), 1000)
	var seen sync.Map
	r := chi.NewRouter()
	r.Use(AccessLog(log))
	r.Get("/blob", func(w http.ResponseWriter, req *http.Request) {
		_, rf := w.(io.ReaderFrom)
		seen.Store("readerfrom", rf)
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(content))
	})
	r.Get("/stream", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "first")
		rc := http.NewResponseController(w)
		seen.Store("flush", rc.Flush())
		seen.Store("deadline", rc.SetWriteDeadline(time.Now().Add(time.Minute)))
		_, _ = io.WriteString(w, " second")
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/blob", nil)
	req.Header.Set("Range", "bytes=10-29")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != string(content[10:30]) ||
		resp.Header.Get("Content-Range") != "bytes 10-29/10000" {
		t.Errorf("ranged GET: %s %q %q", resp.Status, resp.Header.Get("Content-Range"), body)
	}
	resp, err = hc.Get(srv.URL + "/blob")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Errorf("full GET: %s, %d bytes", resp.Status, len(body))
	}
	if rf, _ := seen.Load("readerfrom"); rf != true {
		t.Error("the wrapped writer is not an io.ReaderFrom")
	}

	resp, err = hc.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "first second" {
		t.Errorf("/stream: %q", body)
	}
	for _, k := range []string{"flush", "deadline"} {
		if err, _ := seen.Load(k); err != nil {
			t.Errorf("ResponseController %s through AccessLog: %v", k, err)
		}
	}

	var statuses []int64
	for _, e := range logs.FilterMessage("request").AllUntimed() {
		statuses = append(statuses, e.ContextMap()["status"].(int64))
	}
	if len(statuses) != 3 || statuses[0] != 206 || statuses[1] != 200 || statuses[2] != 200 {
		t.Errorf("logged statuses %v, want [206 200 200]", statuses)
	}
}

// closeSignal is a listener that says when it is closed: Shutdown has begun.
type closeSignal struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeSignal) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// TestServeListenerGraceful: cancelling the context stops the server, lets the
// request in flight finish, and ServeListener returns nil.
func TestServeListenerGraceful(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &closeSignal{Listener: ln, closed: make(chan struct{})}
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- DefaultConfig().ServeListener(ctx, sl, h, zap.NewNop()) }()

	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := hc.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()

	<-entered
	cancel()
	<-sl.closed // Shutdown has started with the request still in the handler
	close(release)
	if r := <-got; r.err != nil || r.body != "finished" {
		t.Errorf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeListener: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

// TestServeCancelled: Serve listens on addr and returns nil once the context is done,
// leaving the port free.
func TestServeCancelled(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Serve(ctx, addr, http.NotFoundHandler(), zap.NewNop()); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still held after Serve returned: %v", err)
	}
	again.Close()
}

func TestServeListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Serve(context.Background(), ln.Addr().String(), http.NotFoundHandler(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Serve on a taken address: %v", err)
	}
}

// TestServeListenerFails: a listener that breaks ends ServeListener with an error
// naming the address, without waiting for the context.
func TestServeListenerFails(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = DefaultConfig().ServeListener(context.Background(), ln, http.NotFoundHandler(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "serve") {
		t.Errorf("ServeListener on a closed listener: %v", err)
	}
}

func TestWithDebug(t *testing.T) {
	t.Parallel()
	app := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("app")) })
	if rec := get(t, WithDebug(app, Debug{}), "/debug/pprof/"); rec.Body.String() != "app" {
		t.Errorf("pprof off: /debug/pprof/ = %d %q, want the app's answer", rec.Code, rec.Body.String())
	}
	h := WithDebug(app, Debug{Pprof: true})
	if rec := get(t, h, "/debug/pprof/"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("pprof on: /debug/pprof/ = %d", rec.Code)
	}
	if rec := get(t, h, "/v2/"); rec.Body.String() != "app" {
		t.Errorf("pprof on: /v2/ = %d %q, want the app's answer", rec.Code, rec.Body.String())
	}
}

func TestCheckHealth(t *testing.T) {
	healthy := chi.NewRouter()
	MountOps(healthy, nil, nil)
	up := httptest.NewServer(healthy)
	defer up.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer sick.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	if err := CheckHealth(t.Context(), hc, up.URL); err != nil {
		t.Errorf("MountOps's /health: %v", err)
	}
	if err := CheckHealth(t.Context(), hc, sick.URL); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a 503: %v, want an error naming it", err)
	}
}
