//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFaultAgentDiskFull gives the last agent a 40 MiB disk (a tmpfs over its data
// folder): a 56 MiB layer pulled through it fails at once with a clear error (507,
// "storage full") before any byte, leaves no partial file, and the agent stays up and
// serves a layer that fits; once its disk grows, the big layer pulls whole. It used to
// answer 200, send part of the blob, hang, and die of a panic inside the BitTorrent
// library.
func TestFaultAgentDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	a := dev.Agents[len(dev.Agents)-1]
	dir := filepath.Join(dev.State, a.Name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dev.StopProcess(a.Name); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=40m", "shoal-e2e-disk", dir).CombinedOutput(); err != nil {
		_ = dev.StartProcess(ctx, a.Name)
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = dev.StopProcess(a.Name)
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dev.StartProcess(ctx, a.Name); err != nil {
			t.Errorf("restart %s: %v", a.Name, err)
		}
	})
	if err := dev.StartProcess(ctx, a.Name); err != nil {
		t.Fatal(err)
	}

	repo := "e2e/fault-disk"
	tool(t, "crane", "append", "--insecure", "-f", randomLayerTar(t, 56<<20), "-f", randomLayerTar(t, 8<<20), "-f", randomLayerTar(t, 600<<10), "-t", proxyRef(repo+":v1"))
	m := parseManifest(t, tool(t, "crane", "manifest", "--insecure", proxyRef(repo+":v1")))
	big, small, tiny := m.Layers[0].Digest, m.Layers[1].Digest, m.Layers[2].Digest

	status, _, body := httpDo(t, "GET", "http://"+a.Registry+"/v2/"+repo+"/blobs/"+big, nil, nil)
	if status != 507 || !strings.Contains(string(body), "storage full") || !strings.Contains(string(body), "data_dir") {
		t.Errorf("pull of a blob bigger than the disk: %d %.300s; want 507 naming the storage and data_dir", status, body)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "partial", "sha256")); len(entries) != 0 {
		t.Errorf("%d partial files left on the full disk", len(entries))
	}
	if status, _, _ := httpDo(t, "GET", "http://"+a.Registry+"/health", nil, nil); status != 200 {
		t.Fatalf("%s after a full disk: health %d", a.Name, status)
	}
	out, err := toolErr("crane", "blob", "--insecure", a.Registry+"/"+repo+"@"+small)
	if err != nil || "sha256:"+sha256Hex([]byte(out)) != small {
		t.Errorf("pull of a layer that fits: %v", err)
	}

	// A blob under direct_below (fetched whole over HTTP) on a disk with 64 KiB left:
	// 507 too, and no origin is blamed for it.
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*int64(st.Bsize)-64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	status, _, body = httpDo(t, "GET", "http://"+a.Registry+"/v2/"+repo+"/blobs/"+tiny, nil, nil)
	if status != 507 || !strings.Contains(string(body), "data_dir") {
		t.Errorf("direct pull of a small blob on a full disk: %d %.300s; want 507 naming data_dir", status, body)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	// Space returns: the big layer pulls whole, without restarting the agent.
	if out, err := exec.Command("mount", "-o", "remount,size=256m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v: %s", err, out)
	}
	out, err = toolErr("crane", "blob", "--insecure", a.Registry+"/"+repo+"@"+big)
	if err != nil || "sha256:"+sha256Hex([]byte(out)) != big {
		t.Errorf("pull after space returned: %v", err)
	}
	logb, _ := os.ReadFile(filepath.Join(dev.State, a.Name+".log"))
	if strings.Contains(string(logb), "panic") {
		t.Errorf("%s's log has a panic", a.Name)
	}
}
