//go:build e2e

package e2e

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/test/cluster"
	"github.com/shoal-p2p/shoal/test/e2eutil"
)

func writeTar(t *testing.T, files map[string][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s)
}

// httpDo sends a request to a cluster address and returns status, headers and body.
func httpDo(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// metric polls an address's /metrics until cond holds for the summed series or 15 s pass
// (reporters flush every second), returning the last value.
func metric(t *testing.T, addr, name string, cond func(float64) bool, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := cluster.Scrape(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		v := cluster.Sum(m, name, labels...)
		if cond(v) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func proxyRef(repoTag string) string { return cluster.ProxyAddr + "/" + repoTag }

func agentRef(i int, repoTag string) string { return dev.Agents[i].Registry + "/" + repoTag }

// The suites' shared helpers (test/e2eutil).
var (
	tool           = e2eutil.Tool
	toolErr        = e2eutil.ToolErr
	randomLayerTar = e2eutil.RandomLayerTar
)
