package oci

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// ParseManifest either refuses a body with MANIFEST_INVALID or returns a manifest of
// a known media type whose references are all valid digests.
func FuzzParseManifest(f *testing.F) {
	known := []string{MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		m, err := ParseManifest(contentType, body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeManifestInvalid {
				t.Fatalf("ParseManifest(%q, %q): %v, want MANIFEST_INVALID", contentType, body, err)
			}
			return
		}
		if !slices.Contains(known, m.MediaType) {
			t.Fatalf("ParseManifest(%q, %q): media type %q", contentType, body, m.MediaType)
		}
		refs := append(slices.Clone(m.Blobs), m.Manifests...)
		if m.Subject != "" {
			refs = append(refs, m.Subject)
		}
		for _, d := range refs {
			if err := d.Validate(); err != nil {
				t.Fatalf("ParseManifest(%q, %q): reference %q: %v", contentType, body, d, err)
			}
		}
		// A manifest accepted with its Content-Type is accepted with its own media type too.
		if _, err := ParseManifest(m.MediaType, body); err != nil {
			t.Fatalf("ParseManifest(%q, %q) = %s, but not with that type: %v", contentType, body, m.MediaType, err)
		}
	})
}

// ParseReference returns a valid tag or a sha256 digest that prints back to itself,
// or DIGEST_INVALID.
func FuzzParseReference(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeDigestInvalid {
				t.Fatalf("ParseReference(%q): %v, want DIGEST_INVALID", s, err)
			}
			return
		}
		if (r.Tag == "") == (r.Digest == "") {
			t.Fatalf("ParseReference(%q) = %+v: not one of tag or digest", s, r)
		}
		if r.Tag != "" && (!ValidTag(r.Tag) || strings.ContainsAny(r.Tag, "/\\:") || r.Tag == ".." || r.Tag != s) {
			t.Fatalf("ParseReference(%q) = tag %q", s, r.Tag)
		}
		if r.Digest != "" && (r.Digest.Algorithm() != digest.SHA256 || r.Digest.Validate() != nil) {
			t.Fatalf("ParseReference(%q) = digest %q", s, r.Digest)
		}
		if r2, err := ParseReference(r.String()); err != nil || r2 != r {
			t.Fatalf("ParseReference(%q) = %+v, which reads back as %+v, %v", s, r, r2, err)
		}
	})
}

// A valid repository name is safe as a path: no empty, "." or ".." component, no
// leading or trailing slash, nothing but [a-z0-9._-/], at most MaxNameLength bytes.
func FuzzValidName(f *testing.F) {
	f.Fuzz(func(t *testing.T, name string) {
		if !ValidName(name) {
			return
		}
		if len(name) > MaxNameLength {
			t.Fatalf("ValidName(%q): %d bytes", name, len(name))
		}
		for _, c := range strings.Split(name, "/") {
			if c == "" || c == "." || c == ".." || strings.Trim(c, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
				t.Fatalf("ValidName(%q): component %q", name, c)
			}
		}
	})
}
