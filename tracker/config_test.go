package main

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/config"
)

func TestExampleConfigs(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"../config/tracker.yaml", "../config/devcluster/tracker.yaml"} {
		cfg := DefaultConfig()
		if err := config.Load(path, &cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(cfg.Origins.Static) == 0 || cfg.AnnounceInterval != 3*time.Second || cfg.MaxPeers != 50 {
			t.Fatalf("%s: %+v", path, cfg)
		}
	}
}

func TestValidateNamesKeyAndFix(t *testing.T) {
	t.Parallel()
	for key, edit := range map[string]func(*Config){
		"listen":               func(c *Config) { c.Listen = "" },
		"origins: static, dns": func(c *Config) { c.Origins.Static = nil },
		"origins: static[0]":   func(c *Config) { c.Origins.Static = []string{"origin:15200"} },
		"origins: replicas":    func(c *Config) { c.Origins.Replicas = 0 },
		"announce_interval":    func(c *Config) { c.AnnounceInterval = 1500 * time.Millisecond },
		"seeder_interval":      func(c *Config) { c.SeederInterval = time.Second },
		"peer_ttl":             func(c *Config) { c.PeerTTL = 3 * time.Second },
		"max_peers":            func(c *Config) { c.MaxPeers = 0 },
		"log.level":            func(c *Config) { c.Log.Level = "loud" },
		"warm.agent_ttl":       func(c *Config) { c.Warm.AgentTTL = 0 },
	} {
		cfg := DefaultConfig()
		cfg.Origins.Static = []string{"http://origin:15200"}
		edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "(") {
			t.Errorf("%s: got %v, want an error naming the key and the fix", key, err)
		}
	}
}

func TestLoadConfigFlags(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig([]string{"--config", "../config/devcluster/tracker.yaml", "--listen", "127.0.0.1:9999"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.Origins.Static[0] != "http://127.0.0.1:15200" || cfg.Origins.Replicas != 2 {
		t.Fatalf("%+v", cfg)
	}
	if _, err := loadConfig(nil); err == nil || !strings.Contains(err.Error(), "origins") {
		t.Fatalf("no config: got %v, want origins required", err)
	}
}

func TestUnknownKeyRejected(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	if err := config.Decode([]byte("max_peer: 3\n"), &cfg); err == nil || !strings.Contains(err.Error(), "max_peer") {
		t.Fatalf("got %v", err)
	}
}

// TestHTTPKeyValidated: a bad http value is refused naming its key.
func TestHTTPKeyValidated(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", "../config/tracker.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.BodyIdleTimeout = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http: body_idle_timeout:") {
		t.Fatalf("Validate = %v, want it to name http: body_idle_timeout", err)
	}
}
