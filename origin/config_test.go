package main

import (
	"strings"
	"testing"
)

func TestExampleConfigsLoad(t *testing.T) {
	for _, p := range []string{"../config/origin.yaml", "../config/devcluster/origin.yaml"} {
		if _, err := loadConfig([]string{"--config", p}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestHTTPKeyValidated: a bad http value is refused naming its key.
func TestHTTPKeyValidated(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", "../config/origin.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.BodyIdleTimeout = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http: body_idle_timeout:") {
		t.Fatalf("Validate = %v, want it to name http: body_idle_timeout", err)
	}
}
