package logging

import (
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{},
		{Level: "debug", Format: "json"},
		{Level: "info", Format: "console"},
		{Level: "warn"},
		{Level: "error", Format: ""},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, tc := range []struct {
		c       Config
		key     string
		mention string
	}{
		{Config{Level: "verbose"}, "log.level:", `"verbose"`},
		{Config{Level: "info", Format: "xml"}, "log.format:", `"xml"`},
		{Config{Format: "text"}, "log.format:", "json or console"},
	} {
		err := tc.c.Validate()
		if err == nil {
			t.Errorf("%+v: valid, want an error", tc.c)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, tc.key) || !strings.Contains(msg, tc.mention) {
			t.Errorf("%+v: %q, want it to name %s and say %s", tc.c, msg, tc.key, tc.mention)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    Config
		want zapcore.Level
	}{
		{Config{}, zapcore.InfoLevel},
		{Config{Level: "debug", Format: "json"}, zapcore.DebugLevel},
		{Config{Level: "warn", Format: "console"}, zapcore.WarnLevel},
		{Config{Level: "error", Format: "console"}, zapcore.ErrorLevel},
	} {
		l, err := New(tc.c, "agent")
		if err != nil {
			t.Errorf("%+v: %v", tc.c, err)
			continue
		}
		if !l.Core().Enabled(tc.want) || (tc.want > zapcore.DebugLevel && l.Core().Enabled(tc.want-1)) {
			t.Errorf("%+v: logger level is not %s", tc.c, tc.want)
		}
	}
	if _, err := New(Config{Level: "loud"}, "agent"); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("New with a bad level: %v", err)
	}
}
