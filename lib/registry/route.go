package registry

import (
	"net/http"
	"strings"

	"github.com/shoal-p2p/shoal/lib/oci"
)

// kind is which API resource a /v2/ path names.
type kind int

const (
	kindUnknown kind = iota
	kindCatalog
	kindTags
	kindManifest
	kindBlob
	kindUploads // /blobs/uploads/ (start)
	kindUpload  // /blobs/uploads/<id>
)

// route is a parsed /v2/ path. Names may hold slashes, so the path is split at the
// last resource keyword; references, digests and upload ids never hold one.
type route struct {
	kind kind
	name string
	arg  string // reference, digest or upload id
}

// parseRoute parses p, the path after "/v2/". It is pure; validation of the name and
// argument is the handler's.
func parseRoute(p string) route {
	if p == "_catalog" {
		return route{kind: kindCatalog}
	}
	if name, ok := strings.CutSuffix(p, "/tags/list"); ok {
		return route{kind: kindTags, name: name}
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads/"); ok {
		return route{kind: kindUploads, name: name}
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads"); ok {
		return route{kind: kindUploads, name: name}
	}
	for _, sep := range []struct {
		word string
		kind kind
	}{{"/blobs/uploads/", kindUpload}, {"/manifests/", kindManifest}, {"/blobs/", kindBlob}} {
		if i := strings.LastIndex(p, sep.word); i > 0 {
			arg := p[i+len(sep.word):]
			if arg != "" && !strings.Contains(arg, "/") {
				return route{kind: sep.kind, name: p[:i], arg: arg}
			}
		}
	}
	return route{kind: kindUnknown}
}

// writes reports whether method changes state on a route of kind k.
func writes(k kind, method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead:
		return false
	}
	return k != kindUnknown
}

// checkName validates the repository name of a route.
func (rt route) checkName() error {
	if !oci.ValidName(rt.name) {
		return oci.NewError(oci.CodeNameInvalid, "invalid repository name "+quote(rt.name), nil)
	}
	return nil
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return `"` + s + `"`
}

// Access is what a request needs of a token: an action on a repository (the Docker
// token flow's scope repository:<name>:<action>), or of the catalog (Repository "").
type Access struct {
	Repository string
	Action     string // pull, push or delete
}

// RequiredAccess says what a /v2/ request needs: pull for reads, delete for DELETE,
// push for every other write; the base /v2/ (and unknown paths) need no scope. It is
// pure; ok is false when no scope applies.
func RequiredAccess(method, path string) (Access, bool) {
	p, found := strings.CutPrefix(path, "/v2/")
	if !found || p == "" {
		return Access{}, false
	}
	rt := parseRoute(p)
	if rt.kind == kindUnknown {
		return Access{}, false
	}
	a := Access{Repository: rt.name, Action: "pull"}
	switch {
	case method == http.MethodDelete:
		a.Action = "delete"
	case writes(rt.kind, method):
		a.Action = "push"
	}
	return a, true
}
