package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type sample struct {
	Listen string `yaml:"listen"`
	Count  int    `yaml:"count"`
}

func TestDecodeKeepsDefaultsAndRejectsUnknownKeys(t *testing.T) {
	s := sample{Listen: "127.0.0.1:1", Count: 2}
	if err := Decode([]byte("count: 3\n"), &s); err != nil {
		t.Fatal(err)
	}
	if s.Listen != "127.0.0.1:1" || s.Count != 3 {
		t.Fatalf("got %+v", s)
	}
	err := Decode([]byte("lisen: x\n"), &s)
	if err == nil || !strings.Contains(err.Error(), "lisen") {
		t.Fatalf("unknown key not named: %v", err)
	}
}

func TestLoadEmptyFileAndMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sample{Count: 1}
	if err := Load(p, &s); err != nil || s.Count != 1 {
		t.Fatalf("empty file: %v %+v", err, s)
	}
	if err := Load(p+".missing", &s); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("missing file: %v", err)
	}
}
