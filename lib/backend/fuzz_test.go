package backend

import (
	"path"
	"strings"
	"testing"
)

// ParseBlobName accepts exactly the names BlobName writes.
func FuzzParseBlobName(f *testing.F) {
	f.Fuzz(func(t *testing.T, name string) {
		d, ok := ParseBlobName(name)
		if !ok {
			return
		}
		if d.Validate() != nil || BlobName(d) != name || path.Clean(name) != name {
			t.Fatalf("ParseBlobName(%q) = %q", name, d)
		}
	})
}

// ParseTagName accepts only names TagName writes, and its tag holds no slash (callers
// check it is a valid tag).
func FuzzParseTagName(f *testing.F) {
	f.Fuzz(func(t *testing.T, name string) {
		repo, tag, ok := ParseTagName(name)
		if !ok {
			return
		}
		if TagName(repo, tag) != name || repo == "" || tag == "" || strings.Contains(tag, "/") {
			t.Fatalf("ParseTagName(%q) = %q, %q", name, repo, tag)
		}
	})
}
