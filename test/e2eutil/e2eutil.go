// Package e2eutil holds what every end-to-end suite (test/e2e/...) needs the same way:
// running a client tool, making random layers, and running a server process (an
// upstream registry, a storage server) beside the cluster.
package e2eutil

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ToolTimeout bounds one run of a client tool (a push or pull of a test image).
const ToolTimeout = 5 * time.Minute

// Tool runs a client binary and returns its stdout, failing the test on error.
func Tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := ToolErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// ToolErr runs a client binary; the error holds its stderr (not stdout: `crane blob`
// writes the blob there).
func ToolErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s", err, stderr.String())
	}
	return stdout.String(), nil
}

// RandomLayerTar writes a tar holding one random (incompressible) file of size bytes
// and returns its path.
func RandomLayerTar(t *testing.T, size int) string {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "data/random.bin", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// RegistryOption adds to the config WriteRegistryConfig writes.
type RegistryOption func(yml *string)

// WithHtpasswd makes the registry require HTTP basic auth against the htpasswd file at
// path (bcrypt entries, as distribution's htpasswd auth reads them).
func WithHtpasswd(path string) RegistryOption {
	return func(yml *string) {
		*yml += fmt.Sprintf("auth:\n  htpasswd:\n    realm: shoal-e2e\n    path: %s\n", path)
	}
}

// WriteRegistryConfig writes the config of a distribution registry (make tools installs
// it as distribution-registry) serving addr over dir/storage, into dir/config.yml, and
// returns that path; deleteEnabled turns on its DELETE API.
func WriteRegistryConfig(t *testing.T, dir, addr string, deleteEnabled bool, opts ...RegistryOption) string {
	t.Helper()
	yml := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n", filepath.Join(dir, "storage"))
	if deleteEnabled {
		yml += "  delete:\n    enabled: true\n"
	}
	yml += fmt.Sprintf("http:\n  addr: %s\n", addr)
	for _, o := range opts {
		o(&yml)
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
