package main

import (
	"strings"
	"testing"
	"time"
)

func TestExampleConfigsLoad(t *testing.T) {
	for _, p := range []string{"../config/agent.yaml", "../config/devcluster/agent.yaml"} {
		if _, err := loadConfig([]string{"--config", p}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestMirrorURL(t *testing.T) {
	for _, tc := range []struct{ listen, explicit, want string }{
		{"127.0.0.1:16000", "", "http://127.0.0.1:16000"},
		{"0.0.0.0:16000", "", "http://127.0.0.1:16000"},
		{":16000", "", "http://127.0.0.1:16000"},
		{"[::]:16000", "", "http://127.0.0.1:16000"},
		{"10.0.0.5:16000", "", "http://10.0.0.5:16000"},
		{"0.0.0.0:16000", "http://agent.local:16000/", "http://agent.local:16000"},
	} {
		c := DefaultConfig()
		c.Listen, c.Mirror.Containerd.MirrorURL = tc.listen, tc.explicit
		if got := c.MirrorURL(); got != tc.want {
			t.Errorf("MirrorURL(listen %q, mirror_url %q) = %q, want %q", tc.listen, tc.explicit, got, tc.want)
		}
	}
}

func TestTrackersConfig(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.BuildIndex, c.Proxy, c.P2P.ListenIP = "http://b:1", "p:1", "10.0.0.1"
		c.Origins.Static = []string{"http://o:1"}
		return c
	}
	c := base()
	c.Tracker = "http://t:15300"
	if err := c.Validate(); err != nil {
		t.Fatalf("tracker shorthand: %v", err)
	}
	if set := c.TrackerSet(); len(set.Static) != 1 || set.Static[0] != "http://t:15300" || set.Replicas != 2 {
		t.Errorf("tracker shorthand: set %+v", set)
	}
	c = base()
	c.Trackers.Static = []string{"http://t1:15300", "http://t2:15300"}
	if err := c.Validate(); err != nil {
		t.Fatalf("trackers.static: %v", err)
	}
	for name, edit := range map[string]func(*Config){
		"neither set": func(*Config) {},
		"both set": func(c *Config) {
			c.Tracker, c.Trackers.Static = "http://t:1", []string{"http://t2:1"}
		},
		"static[0]": func(c *Config) { c.Trackers.Static = []string{"t1:15300"} },
	} {
		c := base()
		edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "tracker") || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want an error naming it", name, err)
		}
	}
}

// TestHTTPKeyValidated: a bad http value is refused naming its key.
func TestHTTPKeyValidated(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", "../config/agent.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.BodyIdleTimeout = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http: body_idle_timeout:") {
		t.Fatalf("Validate = %v, want it to name http: body_idle_timeout", err)
	}
}

// TestWarmConfig: the warm block's defaults, its keys validated by name, and the agent's
// id on the feed (its P2P address, or host name when no listen_ip is set).
func TestWarmConfig(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", "../config/agent.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Warm.PollInterval != 5*time.Second || cfg.Warm.MaxBlobs != 2 {
		t.Fatalf("warm %+v", cfg.Warm)
	}
	for key, edit := range map[string]func(*Config){
		"warm.poll_interval": func(c *Config) { c.Warm.PollInterval = time.Millisecond },
		"warm.max_blobs":     func(c *Config) { c.Warm.MaxBlobs = 0 },
	} {
		c := cfg
		edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v, want an error naming it", key, err)
		}
	}
	c := cfg
	c.P2P.ListenIP = "10.0.0.7"
	if a := c.WarmAgent("node7", 16001); a.ID != "10.0.0.7:16001" || a.Name != "node7" {
		t.Errorf("with listen_ip: %+v", a)
	}
	c.P2P.ListenIP = ""
	if a := c.WarmAgent("node7", 16001); a.ID != "node7:16001" {
		t.Errorf("without listen_ip: %+v", a)
	}
}
