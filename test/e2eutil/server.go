package e2eutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Server is a server process a suite runs beside the cluster (a storage server, an
// upstream registry) on a fixed loopback address, restartable with its data kept; its
// output is appended to <Dir>/<Name>.log.
type Server struct {
	Name, Addr string
	Cmd        []string // binary and arguments
	Env        []string // added to the test's environment
	Dir        string   // working directory, and where the log goes
	// Ready answers nil once the server serves requests.
	Ready func(ctx context.Context) error

	proc   *exec.Cmd
	exited chan error
	log    *os.File
}

// Start runs the server and waits until it is ready; the test's cleanup stops it.
func (s *Server) Start(t *testing.T) {
	t.Helper()
	// A server left over from an earlier run would answer the readiness check.
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s: %s is already in use (a server left over from an earlier run?)", s.Name, s.Addr)
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, s.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.Cmd[0], s.Cmd[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", s.Name, err)
	}
	s.proc, s.log, s.exited = cmd, logf, make(chan error, 1)
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(s.Stop)

	// Poll: the server is a separate process, so there is no event to wait on.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		rerr := s.Ready(ctx)
		if rerr == nil {
			return
		}
		select {
		case werr := <-s.exited:
			s.exited <- werr
			t.Fatalf("%s exited (%v); log: %s", s.Name, werr, logf.Name())
		case <-ctx.Done():
			t.Fatalf("%s not ready on %s after 30s (%v); log: %s", s.Name, s.Addr, rerr, logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop interrupts the server (killing it after 10 s) and waits for it to exit; a no-op
// when it is not running.
func (s *Server) Stop() {
	if s.proc == nil {
		return
	}
	_ = s.proc.Process.Signal(os.Interrupt)
	select {
	case err := <-s.exited:
		s.exited <- err
	case <-time.After(10 * time.Second):
		_ = s.proc.Process.Kill()
		err := <-s.exited
		s.exited <- err
	}
	s.log.Close()
	s.proc = nil
}

// HTTPReady is a readiness check: GET url answers want (0: any status).
func HTTPReady(url string, want int) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if want != 0 && resp.StatusCode != want {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
