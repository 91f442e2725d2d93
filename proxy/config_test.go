package main

import (
	"strings"
	"testing"
)

func TestExampleConfigsLoad(t *testing.T) {
	for _, p := range []string{"../config/proxy.yaml", "../config/devcluster/proxy.yaml"} {
		if _, err := loadConfig([]string{"--config", p}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	_, err := loadConfig(nil)
	if err == nil || !strings.Contains(err.Error(), "origins: static, dns") || !strings.Contains(err.Error(), "build_index:") {
		t.Fatalf("got %v, want errors naming origins and build_index", err)
	}
}

func TestLimitErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for key, mut := range map[string]func(*Config){
		"limits: max_manifest_bytes":     func(c *Config) { c.Limits.MaxManifestBytes = 8 << 20 },
		"limits: max_list_entries":       func(c *Config) { c.Limits.MaxListEntries = 0 },
		"limits: max_uploads_per_client": func(c *Config) { c.Limits.MaxUploadsPerClient = -1 },
		"limits: max_uploads":            func(c *Config) { c.Limits.MaxUploads = 10 },
		"limits: upload_ttl":             func(c *Config) { c.Limits.UploadTTL = 0 },
		"http: read_header_timeout":      func(c *Config) { c.HTTP.ReadHeaderTimeout = -1 },
		"http: max_header_bytes":         func(c *Config) { c.HTTP.MaxHeaderBytes = 10 },
	} {
		cfg, err := loadConfig([]string{"--config", "../config/proxy.yaml"})
		if err != nil {
			t.Fatal(err)
		}
		mut(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("%s: got %v, want an error naming it", key, err)
		}
	}
}
