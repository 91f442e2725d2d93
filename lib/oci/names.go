package oci

import (
	"regexp"

	"github.com/opencontainers/go-digest"
)

// The distribution spec's grammar for repository names and tags.
var (
	nameRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRe  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// MaxNameLength bounds a repository name, as distribution does.
const MaxNameLength = 255

// ValidName reports whether name is a valid repository name.
func ValidName(name string) bool {
	return len(name) <= MaxNameLength && nameRe.MatchString(name)
}

// ValidTag reports whether tag is a valid tag.
func ValidTag(tag string) bool { return tagRe.MatchString(tag) }

// ParseDigest parses a blob or manifest digest; Shoal stores sha256 content only.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", NewError(CodeDigestInvalid, "invalid digest "+quote(s), nil)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", NewError(CodeDigestInvalid, "unsupported digest algorithm "+quote(string(d.Algorithm()))+" (only sha256)", nil)
	}
	return d, nil
}

// Reference is a manifest reference: a tag or a digest.
type Reference struct {
	Tag    string
	Digest digest.Digest
}

// ParseReference parses the <reference> of /v2/<name>/manifests/<reference>.
func ParseReference(s string) (Reference, error) {
	if ValidTag(s) {
		return Reference{Tag: s}, nil
	}
	d, err := ParseDigest(s)
	if err != nil {
		return Reference{}, err
	}
	return Reference{Digest: d}, nil
}

func (r Reference) String() string {
	if r.Tag != "" {
		return r.Tag
	}
	return r.Digest.String()
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return `"` + s + `"`
}
