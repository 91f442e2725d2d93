package config

import (
	"strings"
	"testing"
	"time"
)

// fuzzConfig has the shapes the binaries' configs use: nested blocks, durations, sizes,
// lists, maps and pointers.
type fuzzConfig struct {
	Listen  string        `yaml:"listen"`
	Every   time.Duration `yaml:"every"`
	Size    int64         `yaml:"size"`
	Ratio   float64       `yaml:"ratio"`
	On      bool          `yaml:"on"`
	Hosts   []string      `yaml:"hosts"`
	Labels  map[string]string
	Backend struct {
		Kind string `yaml:"kind"`
		FS   *struct {
			Root string `yaml:"root"`
		} `yaml:"fs"`
	} `yaml:"backend"`
	Namespaces []struct {
		Match string `yaml:"match"`
		Port  uint16 `yaml:"port"`
	} `yaml:"namespaces"`
}

// Decode never panics, and a refusal says where to look.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := fuzzConfig{Listen: "0.0.0.0:1", Every: time.Second}
		if err := Decode(data, &cfg); err != nil && !strings.Contains(err.Error(), "check the key names") {
			t.Fatalf("Decode(%q): %v: no hint", data, err)
		}
	})
}
