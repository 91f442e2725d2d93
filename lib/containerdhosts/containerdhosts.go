// Package containerdhosts writes containerd's registry host files
// (<hosts_dir>/<registry>/hosts.toml) that make a node's containerd ask the local agent
// first, and puts back what was there before.
//
// Render is pure. Install and Restore are its shell on a directory: a file Shoal did
// not write is moved aside to hosts.toml.shoal-backup before being replaced and moved
// back by Restore; a file Shoal wrote (it starts with Marker) is overwritten in place,
// so an agent restarted after a crash keeps the first backup. containerd re-reads
// hosts.toml on every pull: no restart is needed either way.
package containerdhosts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Marker starts every file Shoal writes; Install and Restore touch no other hosts.toml
// without moving it aside first.
const Marker = "# Written by shoal-agent: containerd asks the node's Shoal agent first."

// DefaultHost is the directory containerd reads for registries that have none of their own.
const DefaultHost = "_default"

const (
	fileName   = "hosts.toml"
	backupName = "hosts.toml.shoal-backup"
	// createdName marks a registry directory Install created, so Restore removes it.
	createdName = ".shoal-created"
)

// Config is the agent's containerd block.
type Config struct {
	// HostsDir is containerd's config_path (e.g. /etc/containerd/certs.d); empty
	// disables writing host files.
	HostsDir string `yaml:"hosts_dir"`
	// MirrorURL is the agent as the node's containerd reaches it; default
	// http://<listen>, with 127.0.0.1 for an unspecified listen address.
	MirrorURL string `yaml:"mirror_url"`
	// DialTimeout bounds containerd's connect to the agent, so a node whose agent is
	// down falls back at once (containerd 2.1 and later; older versions ignore it).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Default also writes _default, so every other registry tries the agent first
	// (it answers a fast 404 for those it does not mirror).
	Default bool `yaml:"default"`
}

// DefaultConfig holds the defaults of the keys a file leaves out.
func DefaultConfig() Config { return Config{DialTimeout: 200 * time.Millisecond} }

// Validate checks c; messages name the key (relative to the containerd block) and the fix.
func (c Config) Validate() error {
	var errs []error
	if c.HostsDir != "" && !filepath.IsAbs(c.HostsDir) {
		errs = append(errs, fmt.Errorf("hosts_dir: %q is not an absolute path (set containerd's config_path, e.g. /etc/containerd/certs.d)", c.HostsDir))
	}
	if c.MirrorURL != "" && !strings.HasPrefix(c.MirrorURL, "http://") && !strings.HasPrefix(c.MirrorURL, "https://") {
		errs = append(errs, fmt.Errorf("mirror_url: %q is not an http(s) URL (e.g. http://127.0.0.1:16000, or leave it empty for the listen address)", c.MirrorURL))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("dial_timeout: %s is negative (e.g. 200ms)", c.DialTimeout))
	}
	return errors.Join(errs...)
}

// Host is one registry's file: containerd tries Mirror, then Server.
type Host struct {
	// Registry is the directory name: the registry host as image names spell it
	// (docker.io, registry.example.com:5000), or DefaultHost.
	Registry string
	// Server is the fallback after the mirror; empty keeps containerd's default (the
	// registry itself), the only choice for DefaultHost.
	Server string
}

// Render returns the hosts.toml of h with the agent at mirror.
func Render(h Host, mirror string, dialTimeout time.Duration) string {
	var b strings.Builder
	b.WriteString(Marker + "\n")
	b.WriteString("# The previous file, if any, is kept beside it as " + backupName + " and restored when the agent stops.\n")
	if h.Server != "" {
		fmt.Fprintf(&b, "server = %s\n", strconv.Quote(h.Server))
	}
	fmt.Fprintf(&b, "\n[host.%s]\n", strconv.Quote(mirror))
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	if dialTimeout > 0 {
		fmt.Fprintf(&b, "  dial_timeout = %s\n", strconv.Quote(dialTimeout.String()))
	}
	return b.String()
}

// Install writes each host's file under dir, moving a file Shoal did not write aside
// first. It returns the registries written, for Restore.
func Install(dir string, hosts []Host, mirror string, dialTimeout time.Duration) ([]string, error) {
	var done []string
	for _, h := range hosts {
		if err := install(dir, h, mirror, dialTimeout); err != nil {
			return done, fmt.Errorf("containerd hosts %s: %w", h.Registry, err)
		}
		done = append(done, h.Registry)
	}
	return done, nil
}

func install(dir string, h Host, mirror string, dialTimeout time.Duration) error {
	if h.Registry == "" || strings.ContainsAny(h.Registry, `/\`) || h.Registry == "." || h.Registry == ".." {
		return fmt.Errorf("%q is not a registry host", h.Registry)
	}
	rdir := filepath.Join(dir, h.Registry)
	if _, err := os.Stat(rdir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(rdir, createdName), nil, 0o644); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	path := filepath.Join(rdir, fileName)
	if ours, err := written(path); err != nil {
		return err
	} else if !ours {
		// Someone else's file (or none): keep it for Restore.
		if err := os.Rename(path, filepath.Join(rdir, backupName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("back up %s: %w", path, err)
		}
	}
	return writeAtomic(path, []byte(Render(h, mirror, dialTimeout)))
}

// Restore undoes Install for the registries given: the backed-up file comes back, or
// Shoal's file (and the directory Install created) is removed. A file someone else
// put there since is left alone.
func Restore(dir string, registries []string) error {
	var errs []error
	for _, reg := range registries {
		if err := restore(filepath.Join(dir, reg)); err != nil {
			errs = append(errs, fmt.Errorf("containerd hosts %s: restore: %w", reg, err))
		}
	}
	return errors.Join(errs...)
}

func restore(rdir string) error {
	path := filepath.Join(rdir, fileName)
	ours, err := written(path)
	if err != nil {
		return err
	}
	backup := filepath.Join(rdir, backupName)
	if !ours {
		// Replaced by someone since Install: theirs stays, the stale backup goes.
		_ = os.Remove(backup)
		return nil
	}
	switch err := os.Rename(backup, path); {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	default:
		return err
	}
	if _, err := os.Stat(filepath.Join(rdir, createdName)); err == nil {
		_ = os.Remove(filepath.Join(rdir, createdName))
		_ = os.Remove(rdir) // only if empty
	}
	return nil
}

// written reports whether path is a file Shoal wrote; a missing file is not.
func written(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(Marker))
	n, _ := f.Read(head)
	return string(head[:n]) == Marker, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".shoal-tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
