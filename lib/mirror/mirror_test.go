package mirror

import (
	"slices"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/lib/containerdhosts"
	"github.com/shoal-p2p/shoal/lib/oci"
)

func TestPrefix(t *testing.T) {
	for host, want := range map[string]string{
		"docker.io":          "docker.io/",
		"upstream.test:5000": "upstream.test_5000/",
		"GHCR.io":            "ghcr.io/",
		"127.0.0.1:5000":     "127.0.0.1_5000/",
	} {
		if got := Prefix(host); got != want {
			t.Errorf("Prefix(%q) = %q, want %q", host, got, want)
		}
		if !oci.ValidName(want + "library/nginx") {
			t.Errorf("%q + a repository is not a valid name", want)
		}
	}
}

func TestRewrite(t *testing.T) {
	m := New([]Upstream{
		{Host: "docker.io", URL: "https://registry-1.docker.io"},
		{Host: "upstream.test:5000", URL: "http://127.0.0.1:15500"},
	}, "127.0.0.1:15000")
	cases := []struct {
		ns, path string
		kind     Kind
		want     string
	}{
		{"", "demo/app/manifests/v1", Local, "demo/app/manifests/v1"},
		{"127.0.0.1:15000", "demo/app/blobs/sha256:ab", Local, "demo/app/blobs/sha256:ab"},
		{"docker.io", "library/nginx/manifests/1.27", Mirrored, "docker.io/library/nginx/manifests/1.27"},
		{"DOCKER.IO", "library/nginx/blobs/sha256:ab", Mirrored, "docker.io/library/nginx/blobs/sha256:ab"},
		{"upstream.test:5000", "team/app/tags/list", Mirrored, "upstream.test_5000/team/app/tags/list"},
		{"docker.io", "", Mirrored, ""},
		{"docker.io", "_catalog", Mirrored, "_catalog"},
		// Same repository, another registry: another image, and not ours.
		{"ghcr.io", "library/nginx/manifests/1.27", Unknown, "library/nginx/manifests/1.27"},
		{"upstream.test", "team/app/manifests/v1", Unknown, "team/app/manifests/v1"},
	}
	for _, c := range cases {
		kind, got := m.Rewrite(c.ns, c.path)
		if kind != c.kind || got != c.want {
			t.Errorf("Rewrite(%q, %q) = %v %q, want %v %q", c.ns, c.path, kind, got, c.kind, c.want)
		}
	}
}

func TestUpstreamWinsOverLocal(t *testing.T) {
	m := New([]Upstream{{Host: "registry.example.com", URL: "https://registry.example.com"}}, "registry.example.com")
	if k, p := m.Map("registry.example.com"); k != Mirrored || p != "registry.example.com/" {
		t.Errorf("Map = %v %q, want the upstream", k, p)
	}
}

func TestNotFound(t *testing.T) {
	for path, want := range map[string]oci.Code{
		"library/nginx/manifests/1.27":     oci.CodeManifestUnknown,
		"library/nginx/blobs/sha256:ab":    oci.CodeBlobUnknown,
		"library/nginx/tags/list":          oci.CodeNameUnknown,
		"library/nginx/blobs/uploads/abcd": oci.CodeBlobUnknown,
	} {
		e := NotFound("ghcr.io", path)
		if e.Code != want || e.Code.Status != 404 {
			t.Errorf("NotFound(%q) = %s %d, want %s", path, e.Code.Name, e.Code.Status, want.Name)
		}
		if !strings.Contains(e.Error(), "ghcr.io") {
			t.Errorf("NotFound(%q) does not name the registry: %v", path, e)
		}
	}
}

func TestValidateUpstreams(t *testing.T) {
	ok := []Upstream{{Host: "docker.io", URL: "https://registry-1.docker.io"}, {Host: "upstream.test:5000", URL: "http://127.0.0.1:5000"}}
	if err := ValidateUpstreams(ok); err != nil {
		t.Fatalf("valid upstreams refused: %v", err)
	}
	cases := []struct {
		up   Upstream
		want string
	}{
		{Upstream{URL: "https://x.io"}, "upstreams[0].host: empty"},
		{Upstream{Host: "https://docker.io", URL: "https://x.io"}, "holds a slash"},
		{Upstream{Host: "docker.io:", URL: "https://x.io"}, "empty port"},
		{Upstream{Host: "Bad_Host!", URL: "https://x.io"}, "not a registry host"},
		{Upstream{Host: "docker.io", URL: "registry-1.docker.io"}, "upstreams[0].url"},
		{Upstream{Host: "docker.io", URL: "https://registry-1.docker.io/v2/"}, "scheme and host only"},
	}
	for _, c := range cases {
		err := ValidateUpstreams([]Upstream{c.up})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateUpstreams(%+v) = %v, want %q", c.up, err, c.want)
		}
	}
	dup := []Upstream{ok[0], {Host: "Docker.IO", URL: "https://x.io"}}
	if err := ValidateUpstreams(dup); err == nil || !strings.Contains(err.Error(), "upstreams[1].host") || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate host: %v", err)
	}
}

func TestHostFiles(t *testing.T) {
	ups := []Upstream{{Host: "docker.io", URL: "https://registry-1.docker.io/"}, {Host: "upstream.test:5000", URL: "http://127.0.0.1:15500"}}
	got := HostFiles(ups, "127.0.0.1:15000", true)
	want := []containerdhosts.Host{
		{Registry: "docker.io", Server: "https://registry-1.docker.io"},
		{Registry: "upstream.test:5000", Server: "http://127.0.0.1:15500"},
		{Registry: "127.0.0.1:15000", Server: "http://127.0.0.1:15000"},
		{Registry: containerdhosts.DefaultHost},
	}
	if !slices.Equal(got, want) {
		t.Errorf("HostFiles = %+v, want %+v", got, want)
	}
	// The proxy's host listed as an upstream gets one file, the upstream's.
	if got := HostFiles(ups, "DOCKER.io", false); len(got) != 2 {
		t.Errorf("HostFiles with the proxy as an upstream = %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Upstreams = []Upstream{{Host: "", URL: "x"}}
	c.Containerd.HostsDir = "relative"
	err := c.Validate()
	for _, want := range []string{"mirror.upstreams[0].host: empty", "mirror.upstreams[0].url:", "mirror.containerd.hosts_dir:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want a line with %q", err, want)
		}
	}
}
