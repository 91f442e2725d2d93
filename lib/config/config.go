// Package config loads a binary's YAML configuration strictly: unknown keys are
// rejected with the key named, so a typo never silently falls back to a default.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path into out (a pointer to a struct that already holds
// the defaults), rejecting unknown keys. Errors name the file and say what to fix.
// Validation is the binary's job, after its flags have overridden per-host values.
func Load(path string, out any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w (pass an existing file with --config)", path, err)
	}
	if err := Decode(data, out); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Decode is Load on bytes already read.
func Decode(data []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w (check the key names and types against the example in config/)", err)
	}
	return nil
}

// Validator is a config that can check itself after flags were applied.
type Validator interface{ Validate() error }

// FromArgs is every binary's start-up sequence: parse args with fs (which must define
// the string flag "config" whose value is path), load the file over cfg's defaults,
// let override apply the per-host flags, then validate.
func FromArgs(fs *flag.FlagSet, args []string, path *string, cfg Validator, override func()) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path != "" {
		if err := Load(*path, cfg); err != nil {
			return err
		}
	}
	if override != nil {
		override()
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// Set replaces *dst with v when v is not the zero value (an unset flag).
func Set[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}
