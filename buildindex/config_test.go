package main

import (
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/lib/config"
)

// The example configs load strictly and validate.
func TestExampleConfigs(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"../config/buildindex.yaml", "../config/devcluster/buildindex.yaml"} {
		cfg := DefaultConfig()
		if err := config.Load(path, &cfg); err != nil {
			t.Fatalf("load %s: %v", path, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("validate %s: %v", path, err)
		}
		if cfg.Backend.Kind != "fs" || cfg.Backend.FS.Root == "" {
			t.Fatalf("%s: backend %+v", path, cfg.Backend)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cfg := Config{}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate of an empty config succeeded")
	}
	for _, key := range []string{"listen:", "backend.kind:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("Validate: %v, want a message naming %s", err, key)
		}
	}
	cfg = DefaultConfig()
	cfg.Backend.Kind = "fs"
	cfg.Log.Level = "loud"
	cfg.HTTP.BodyIdleTimeout = -1
	err = cfg.Validate()
	for _, key := range []string{"log.level:", "backend.fs.root:", "http: body_idle_timeout:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate: %v, want a message naming %s", err, key)
		}
	}
}

func TestFlagsOverride(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig([]string{"--config", "../config/devcluster/buildindex.yaml", "--listen", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:0" {
		t.Fatalf("listen = %q, want the flag's value", cfg.Listen)
	}
}
