package containerdhosts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	got := Render(Host{Registry: "docker.io", Server: "https://registry-1.docker.io"}, "http://127.0.0.1:16000", 200*time.Millisecond)
	want := Marker + "\n" +
		"# The previous file, if any, is kept beside it as hosts.toml.shoal-backup and restored when the agent stops.\n" +
		"server = \"https://registry-1.docker.io\"\n" +
		"\n[host.\"http://127.0.0.1:16000\"]\n" +
		"  capabilities = [\"pull\", \"resolve\"]\n" +
		"  dial_timeout = \"200ms\"\n"
	if got != want {
		t.Errorf("Render:\n%s\nwant:\n%s", got, want)
	}
	def := Render(Host{Registry: DefaultHost}, "http://127.0.0.1:16000", 0)
	if strings.Contains(def, "server") || strings.Contains(def, "dial_timeout") {
		t.Errorf("_default without server and timeout:\n%s", def)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func TestInstallRestore(t *testing.T) {
	dir := t.TempDir()
	// docker.io has the operator's own file; ghcr.io has a directory with a CA but no
	// hosts.toml; upstream.test:5000 has nothing.
	theirs := "server = \"https://registry-1.docker.io\"\n[host.\"https://mirror.example.com\"]\n  capabilities = [\"pull\"]\n"
	os.MkdirAll(filepath.Join(dir, "docker.io"), 0o755)
	os.WriteFile(filepath.Join(dir, "docker.io", "hosts.toml"), []byte(theirs), 0o644)
	os.MkdirAll(filepath.Join(dir, "ghcr.io"), 0o755)
	os.WriteFile(filepath.Join(dir, "ghcr.io", "ca.crt"), []byte("ca"), 0o644)

	hosts := []Host{
		{Registry: "docker.io", Server: "https://registry-1.docker.io"},
		{Registry: "ghcr.io", Server: "https://ghcr.io"},
		{Registry: "upstream.test:5000", Server: "http://127.0.0.1:15500"},
		{Registry: DefaultHost},
	}
	const mirror = "http://127.0.0.1:16000"
	regs, err := Install(dir, hosts, mirror, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if got := read(t, filepath.Join(dir, h.Registry, "hosts.toml")); got != Render(h, mirror, time.Second) {
			t.Errorf("%s after Install:\n%s", h.Registry, got)
		}
	}
	if got := read(t, filepath.Join(dir, "docker.io", backupName)); got != theirs {
		t.Errorf("backup = %q", got)
	}

	// A restarted agent installs again over its own files: the backup stays theirs.
	if _, err := Install(dir, hosts, "http://127.0.0.1:17000", time.Second); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "docker.io", backupName)); got != theirs {
		t.Errorf("backup after a second Install = %q", got)
	}

	if err := Restore(dir, regs); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "docker.io", "hosts.toml")); got != theirs {
		t.Errorf("docker.io after Restore = %q, want the operator's file", got)
	}
	if exists(filepath.Join(dir, "docker.io", backupName)) {
		t.Error("backup left behind")
	}
	if exists(filepath.Join(dir, "ghcr.io", "hosts.toml")) || read(t, filepath.Join(dir, "ghcr.io", "ca.crt")) != "ca" {
		t.Error("ghcr.io: hosts.toml should be gone and ca.crt kept")
	}
	for _, reg := range []string{"upstream.test:5000", DefaultHost} {
		if exists(filepath.Join(dir, reg)) {
			t.Errorf("%s: the directory Install created is still there", reg)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("hosts dir after Restore holds %d entries, want docker.io and ghcr.io", len(entries))
	}
}

func TestRestoreLeavesAReplacedFile(t *testing.T) {
	dir := t.TempDir()
	regs, err := Install(dir, []Host{{Registry: "docker.io"}}, "http://127.0.0.1:16000", 0)
	if err != nil {
		t.Fatal(err)
	}
	newer := "server = \"https://other\"\n"
	os.WriteFile(filepath.Join(dir, "docker.io", "hosts.toml"), []byte(newer), 0o644)
	if err := Restore(dir, regs); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "docker.io", "hosts.toml")); got != newer {
		t.Errorf("a file written after Install was touched: %q", got)
	}
}

func TestInstallRefusesBadRegistry(t *testing.T) {
	for _, reg := range []string{"", "..", "a/b"} {
		if _, err := Install(t.TempDir(), []Host{{Registry: reg}}, "http://x", 0); err == nil {
			t.Errorf("Install(%q) succeeded", reg)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{HostsDir: "certs.d"}, "hosts_dir"},
		{Config{MirrorURL: "127.0.0.1:16000"}, "mirror_url"},
		{Config{DialTimeout: -time.Second}, "dial_timeout"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}
