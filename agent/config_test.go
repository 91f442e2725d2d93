package main

import "testing"

func TestExampleConfigsLoad(t *testing.T) {
	for _, p := range []string{"../config/agent.yaml", "../config/devcluster/agent.yaml"} {
		if _, err := loadConfig([]string{"--config", p}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
