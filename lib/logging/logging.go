// Package logging builds the zap logger every binary uses. There is no global logger:
// main builds one and passes it down, each module naming itself with Named.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config selects the log level and encoding.
type Config struct {
	// Level is one of debug, info, warn, error.
	Level string `yaml:"level"`
	// Format is json (default, for log collectors) or console (for people).
	Format string `yaml:"format"`
}

// Validate checks the level and format names.
func (c Config) Validate() error {
	if _, err := zapcore.ParseLevel(c.level()); err != nil {
		return fmt.Errorf("log.level: %q is not a level (use debug, info, warn or error)", c.Level)
	}
	switch c.Format {
	case "", "json", "console":
		return nil
	}
	return fmt.Errorf("log.format: %q is not a format (use json or console)", c.Format)
}

func (c Config) level() string {
	if c.Level == "" {
		return "info"
	}
	return c.Level
}

// New builds a logger writing to stderr, tagged with the component name.
func New(c Config, component string) (*zap.Logger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	lvl, _ := zapcore.ParseLevel(c.level())
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	l, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return l.With(zap.String("component", component)), nil
}
