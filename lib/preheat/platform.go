package preheat

import (
	"fmt"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Platform is one os/arch[/variant] an admin wants warmed, e.g. "linux/arm64/v8".
type Platform struct {
	OS, Architecture, Variant string
}

// ParsePlatform parses "os/arch" or "os/arch/variant".
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
		return Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant, e.g. linux/amd64", s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func (p Platform) String() string {
	if p.Variant == "" {
		return p.OS + "/" + p.Architecture
	}
	return p.OS + "/" + p.Architecture + "/" + p.Variant
}

// Match reports whether an index entry's platform is p. A p without a variant matches
// every variant ("linux/arm" takes v6 and v7), one with a variant only that variant.
// OS and architecture compare exactly: the image spec fixes them lowercase (GOOS, GOARCH).
func (p Platform) Match(q v1.Platform) bool {
	return p.OS == q.OS && p.Architecture == q.Architecture && (p.Variant == "" || p.Variant == q.Variant)
}

// Platforms narrows which platforms of an index Expand warms; empty means all.
type Platforms []Platform

// ParsePlatforms parses a config list of platform strings.
func ParsePlatforms(ss []string) (Platforms, error) {
	out := make(Platforms, 0, len(ss))
	for _, s := range ss {
		p, err := ParsePlatform(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Match reports whether q passes the filter: always for an empty one.
func (ps Platforms) Match(q v1.Platform) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.Match(q) {
			return true
		}
	}
	return false
}

func (ps Platforms) String() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// FormatPlatform writes an index entry's platform as os/arch[/variant].
func FormatPlatform(q v1.Platform) string {
	return Platform{OS: q.OS, Architecture: q.Architecture, Variant: q.Variant}.String()
}
