//go:build e2e

package backends

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/driver"
	"github.com/shoal-p2p/shoal/test/e2eutil"
)

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
func startS3(t *testing.T, e *env, cfg driver.Config) *e2eutil.Server {
	t.Helper()
	data := filepath.Join(e.dir, "versitygw")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &e2eutil.Server{
		Name: "versitygw", Addr: s3Addr, Dir: e.dir,
		Cmd: []string{"versitygw", "--port", s3Addr, "posix", data},
		Env: []string{"ROOT_ACCESS_KEY=" + cfg.S3.AccessKeyID, "ROOT_SECRET_KEY=" + cfg.S3.SecretAccessKey},
		// Any answer (an anonymous request is refused) means it serves.
		Ready: e2eutil.HTTPReady("http://"+s3Addr+"/", 0),
	}
	s.Start(t)
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
func startGCS(t *testing.T, e *env, cfg driver.Config) *e2eutil.Server {
	t.Helper()
	_, port, _ := net.SplitHostPort(gcsAddr)
	s := &e2eutil.Server{
		Name: "fake-gcs-server", Addr: gcsAddr, Dir: e.dir,
		// Its defaults are https on 0.0.0.0; the external URL and public host make the
		// upload and XML read URLs it hands out point back at this address.
		Cmd: []string{"fake-gcs-server", "-scheme", "http", "-host", "127.0.0.1", "-port", port,
			"-backend", "memory", "-external-url", "http://" + gcsAddr, "-public-host", gcsAddr, "-log-level", "warn"},
		Ready: e2eutil.HTTPReady("http://"+gcsAddr+"/storage/v1/b", http.StatusOK),
	}
	s.Start(t)
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
func startUpstream(t *testing.T, e *env) *e2eutil.Server {
	t.Helper()
	dir := filepath.Join(e.dir, "distribution")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := e2eutil.WriteRegistryConfig(t, dir, upstreamAddr, true)
	s := &e2eutil.Server{
		Name: "distribution-registry", Addr: upstreamAddr, Dir: e.dir,
		Cmd:   []string{"distribution-registry", "serve", config},
		Ready: e2eutil.HTTPReady("http://"+upstreamAddr+"/v2/", http.StatusOK),
	}
	s.Start(t)
	return s
}
