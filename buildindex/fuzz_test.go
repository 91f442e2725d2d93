package main

import (
	"path"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/oci"
)

// parseTagsPath accepts only a valid repository and tag, and the backend object they
// name is a clean path under the repositories prefix that reads back as them.
func FuzzParseTagsPath(f *testing.F) {
	f.Fuzz(func(t *testing.T, p string) {
		repo, tag, list, err := parseTagsPath(p)
		if err != nil {
			return
		}
		if !oci.ValidName(repo) || (!list && !oci.ValidTag(tag)) || (list && tag != "") {
			t.Fatalf("parseTagsPath(%q) = %q, %q, %v", p, repo, tag, list)
		}
		if list {
			if prefix := backend.TagsPrefix(repo); path.Clean(prefix)+"/" != prefix {
				t.Fatalf("parseTagsPath(%q): tags prefix %q is not a clean path", p, prefix)
			}
			return
		}
		name := backend.TagName(repo, tag)
		if path.Clean(name) != name || !strings.HasPrefix(name, backend.RepositoriesPrefix) {
			t.Fatalf("parseTagsPath(%q): object %q is not a clean path under %s", p, name, backend.RepositoriesPrefix)
		}
		if r, tg, ok := backend.ParseTagName(name); !ok || r != repo || tg != tag {
			t.Fatalf("parseTagsPath(%q): object %q reads back as %q, %q, %v", p, name, r, tg, ok)
		}
	})
}
