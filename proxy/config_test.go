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
