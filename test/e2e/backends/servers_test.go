//go:build e2e

package backends

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/driver"
	"github.com/shoal-p2p/shoal/test/e2eutil"
)

// server is a storage server process on a fixed loopback address, restartable with its
// data kept; its output is appended to <dir>/<name>.log.
type server struct {
	name, addr string
	cmd        []string // binary and arguments
	env        []string
	dir        string
	// ready answers nil once the server serves requests.
	ready func(ctx context.Context) error

	proc   *exec.Cmd
	exited chan error
	log    *os.File
}

// start runs the server and waits until it is ready; the test's cleanup stops it.
func (s *server) start(t *testing.T) {
	t.Helper()
	// A server left over from an earlier run would answer the readiness check.
	if c, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s: %s is already in use (a server left over from an earlier run?)", s.name, s.addr)
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, s.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.cmd[0], s.cmd[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", s.name, err)
	}
	s.proc, s.log, s.exited = cmd, logf, make(chan error, 1)
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(s.stop)

	// Poll: the server is a separate process, so there is no event to wait on.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		rerr := s.ready(ctx)
		if rerr == nil {
			return
		}
		select {
		case werr := <-s.exited:
			s.exited <- werr
			t.Fatalf("%s exited (%v); log: %s", s.name, werr, logf.Name())
		case <-ctx.Done():
			t.Fatalf("%s not ready on %s after 30s (%v); log: %s", s.name, s.addr, rerr, logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop interrupts the server (killing it after 10 s) and waits for it to exit; a no-op
// when it is not running.
func (s *server) stop() {
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

// httpReady is a readiness check: GET url answers want (0: any status).
func httpReady(url string, want int) func(ctx context.Context) error {
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

// scenarioBackend reads the backend block of testdata/<scenario>/<file>.yaml, so the
// tests use exactly the settings the cluster does.
func scenarioBackend(t *testing.T, scenario, file string) driver.Config {
	t.Helper()
	var cfg struct {
		Backend driver.Config `yaml:"backend"`
	}
	readYAML(t, filepath.Join("testdata", scenario, file+".yaml"), &cfg)
	return cfg.Backend
}

// openBackend opens a backend driver as the origins do, for the test to read what
// they wrote.
func openBackend(t *testing.T, cfg driver.Config) backend.Backend {
	t.Helper()
	b, err := driver.Open(t.Context(), cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("open %s backend: %v", cfg.Kind, err)
	}
	return b
}

// startS3 runs versitygw over a posix folder in the scenario's state (kept across its
// restarts) and creates the bucket cfg names.
func startS3(t *testing.T, e *env, cfg driver.Config) *server {
	t.Helper()
	data := filepath.Join(e.dir, "versitygw")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &server{
		name: "versitygw", addr: s3Addr, dir: e.dir,
		cmd: []string{"versitygw", "--port", s3Addr, "posix", data},
		env: []string{"ROOT_ACCESS_KEY=" + cfg.S3.AccessKeyID, "ROOT_SECRET_KEY=" + cfg.S3.SecretAccessKey},
		// Any answer (an anonymous request is refused) means it serves.
		ready: httpReady("http://"+s3Addr+"/", 0),
	}
	s.start(t)
	client := awss3.New(awss3.Options{
		Region:       cfg.S3.Region,
		BaseEndpoint: aws.String(cfg.S3.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.S3.AccessKeyID, cfg.S3.SecretAccessKey, ""),
	})
	if _, err := client.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(cfg.S3.Bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", cfg.S3.Bucket, err)
	}
	return s
}

// startGCS runs fake-gcs-server in memory and creates the bucket cfg names.
func startGCS(t *testing.T, e *env, cfg driver.Config) *server {
	t.Helper()
	_, port, _ := net.SplitHostPort(gcsAddr)
	s := &server{
		name: "fake-gcs-server", addr: gcsAddr, dir: e.dir,
		// Its defaults are https on 0.0.0.0; the external URL and public host make the
		// upload and XML read URLs it hands out point back at this address.
		cmd: []string{"fake-gcs-server", "-scheme", "http", "-host", "127.0.0.1", "-port", port,
			"-backend", "memory", "-external-url", "http://" + gcsAddr, "-public-host", gcsAddr, "-log-level", "warn"},
		ready: httpReady("http://"+gcsAddr+"/storage/v1/b", http.StatusOK),
	}
	s.start(t)
	body := fmt.Sprintf(`{"name":%q}`, cfg.GCS.Bucket)
	resp, err := http.Post("http://"+gcsAddr+"/storage/v1/b?project=shoal-e2e", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("create bucket %s: %v", cfg.GCS.Bucket, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create bucket %s: %s", cfg.GCS.Bucket, resp.Status)
	}
	return s
}

// startUpstream runs a distribution registry over a folder in the scenario's state.
func startUpstream(t *testing.T, e *env) *server {
	t.Helper()
	dir := filepath.Join(e.dir, "distribution")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := e2eutil.WriteRegistryConfig(t, dir, upstreamAddr, true)
	s := &server{
		name: "distribution-registry", addr: upstreamAddr, dir: e.dir,
		cmd:   []string{"distribution-registry", "serve", config},
		ready: httpReady("http://"+upstreamAddr+"/v2/", http.StatusOK),
	}
	s.start(t)
	return s
}
