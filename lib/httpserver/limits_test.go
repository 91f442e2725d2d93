package httpserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

// pipeListener hands the server one end of a net.Pipe per Dial: connections inside a
// synctest bubble, so the server's timeouts run on the bubble's clock.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) Dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// serveLimited runs h under cfg on a pipe listener until the test function returns.
func serveLimited(t *testing.T, cfg Config, h http.Handler) *pipeListener {
	t.Helper()
	ln := newPipeListener()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- cfg.ServeListener(ctx, ln, h, zap.NewNop()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return ln
}

// closedAfter reads c until it fails and returns how long that took.
func closedAfter(c net.Conn) (time.Duration, error) {
	start := time.Now()
	_, err := io.Copy(io.Discard, c)
	return time.Since(start), err
}

// A client that sends half a header (slowloris) is disconnected after
// read_header_timeout.
func TestHalfAHeaderIsDisconnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := serveLimited(t, Config{ReadHeaderTimeout: 10 * time.Second}, http.NotFoundHandler())
		c := ln.Dial()
		defer c.Close()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: shoal\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		took, err := closedAfter(c)
		if err != nil || took != 10*time.Second {
			t.Fatalf("connection closed after %s (%v), want 10s (read_header_timeout)", took, err)
		}
	})
}

// A header over max_header_bytes is answered 431.
func TestHeaderOverMaxIs431(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := serveLimited(t, Config{MaxHeaderBytes: 8 << 10}, http.NotFoundHandler())
		c := ln.Dial()
		defer c.Close()
		go func() {
			_, _ = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: shoal\r\nX-Big: %s\r\n\r\n", strings.Repeat("x", 64<<10))
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
	})
}

// A kept-alive connection with no next request is closed after idle_timeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := serveLimited(t, Config{IdleTimeout: 2 * time.Minute}, http.NotFoundHandler())
		c := ln.Dial()
		defer c.Close()
		go func() { _, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: shoal\r\n\r\n") }()
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		start := time.Now()
		_, err = br.ReadByte()
		if took := time.Since(start); err == nil || took != 2*time.Minute {
			t.Fatalf("idle connection closed after %s (%v), want 2m (idle_timeout)", took, err)
		}
	})
}

// A body that stops arriving fails body_idle_timeout after its last bytes.
func TestStalledBodyFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var readErr error
		var took time.Duration
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			_, readErr = io.ReadAll(r.Body)
			took = time.Since(start)
			w.WriteHeader(http.StatusBadRequest)
		})
		ln := serveLimited(t, Config{BodyIdleTimeout: time.Minute}, h)
		c := ln.Dial()
		defer c.Close()
		go func() {
			_, _ = io.WriteString(c, "PUT /blob HTTP/1.1\r\nHost: shoal\r\nContent-Length: 100\r\n\r\n0123456789")
		}()
		go func() { _, _ = io.Copy(io.Discard, c) }()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		var ne net.Error
		if !errors.As(readErr, &ne) || !ne.Timeout() || took != time.Minute {
			t.Fatalf("handler's read ended after %s with %v, want a timeout after 1m (body_idle_timeout)", took, readErr)
		}
	})
}

// A body that keeps arriving is read to its end however long it takes (no
// whole-request timeout), and the handler's work after it (an upload's commit) is not
// cut short either.
func TestSlowSteadyBodyIsNotCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const size = 120
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if n, again := r.Body.Read(make([]byte, 1)); n != 0 || again != io.EOF { // a decoder checking for trailing data
				err = fmt.Errorf("read past the end: %d, %w", n, again)
			}
			if err != nil || len(b) != size {
				http.Error(w, fmt.Sprintf("read %d bytes: %v", len(b), err), http.StatusBadRequest)
				return
			}
			time.Sleep(5 * time.Minute) // hashing and fsyncing a big blob
			if err := r.Context().Err(); err != nil {
				http.Error(w, "cancelled during the commit: "+err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusCreated)
		})
		ln := serveLimited(t, Config{BodyIdleTimeout: time.Minute, ReadHeaderTimeout: 10 * time.Second}, h)
		c := ln.Dial()
		defer c.Close()
		go func() {
			_, _ = fmt.Fprintf(c, "PUT /blob HTTP/1.1\r\nHost: shoal\r\nContent-Length: %d\r\n\r\n", size)
			for range size { // one byte every 30s: an hour in all
				time.Sleep(30 * time.Second)
				if _, err := io.WriteString(c, "x"); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%d %s, want 201", resp.StatusCode, body)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	for key, mut := range map[string]func(*Config){
		"read_header_timeout": func(c *Config) { c.ReadHeaderTimeout = -time.Second },
		"body_idle_timeout":   func(c *Config) { c.BodyIdleTimeout = -time.Second },
		"idle_timeout":        func(c *Config) { c.IdleTimeout = -time.Second },
		"max_header_bytes":    func(c *Config) { c.MaxHeaderBytes = 100 },
	} {
		c := DefaultConfig()
		mut(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), key+":") {
			t.Errorf("%s: got %v, want an error naming the key", key, err)
		}
	}
}
