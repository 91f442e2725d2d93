package registry

import (
	"net/http"
	"testing"
)

func TestRequiredAccess(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         Access
		ok           bool
	}{
		{http.MethodGet, "/v2/", Access{}, false},
		{http.MethodGet, "/v2/library/app/manifests/v1", Access{"library/app", "pull"}, true},
		{http.MethodHead, "/v2/a/b/c/blobs/sha256:" + zeros, Access{"a/b/c", "pull"}, true},
		{http.MethodPut, "/v2/library/app/manifests/v1", Access{"library/app", "push"}, true},
		{http.MethodPost, "/v2/library/app/blobs/uploads/", Access{"library/app", "push"}, true},
		{http.MethodPatch, "/v2/library/app/blobs/uploads/abc", Access{"library/app", "push"}, true},
		{http.MethodDelete, "/v2/library/app/manifests/sha256:" + zeros, Access{"library/app", "delete"}, true},
		{http.MethodGet, "/v2/library/app/tags/list", Access{"library/app", "pull"}, true},
		{http.MethodGet, "/v2/_catalog", Access{"", "pull"}, true},
		{http.MethodGet, "/v2/nonsense", Access{}, false},
		{http.MethodGet, "/health", Access{}, false},
	} {
		got, ok := RequiredAccess(c.method, c.path)
		if got != c.want || ok != c.ok {
			t.Errorf("%s %s: %+v %v, want %+v %v", c.method, c.path, got, ok, c.want, c.ok)
		}
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
