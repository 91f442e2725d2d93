// Package mirror maps containerd's mirror requests onto Shoal's repositories.
//
// containerd sends every request for a mirror host with ?ns=<registry host of the
// image>, so one agent serves many registries. Shoal keys content by (ns, repository):
// the repository library/nginx of upstream docker.io is Shoal's repository
// docker.io/library/nginx, whose tags and blobs the build-index and the origins route to
// a pull-through backend for that upstream (a namespaces entry matching Prefix(host),
// with repository_prefix set to it). Requests without ns, or with the proxy's host,
// name Shoal's own repositories and are served as they are. Any other ns gets a fast
// 404, so containerd falls back to its next host.
//
// The mapping is pure (Map, Rewrite); the agent's middleware is its shell.
package mirror

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/shoal-p2p/shoal/lib/containerdhosts"
	"github.com/shoal-p2p/shoal/lib/oci"
)

// Upstream is one registry the agent mirrors.
type Upstream struct {
	// Host is the registry host as image names spell it and containerd sends it in
	// ns, e.g. docker.io, ghcr.io or registry.example.com:5000.
	Host string `yaml:"host"`
	// URL is where the upstream really is (https://registry-1.docker.io for
	// docker.io): the `server` containerd falls back to. The origins pull through from
	// the same URL (their namespaces config).
	URL string `yaml:"url"`
}

// Prefix is the prefix of Shoal's repositories holding host's images: the host in
// lower case with ":" spelled "_", and a slash (upstream.test:5000 ->
// "upstream.test_5000/"), so that every mapped name is a valid repository name.
func Prefix(host string) string {
	return strings.ReplaceAll(strings.ToLower(host), ":", "_") + "/"
}

// ValidateUpstreams checks the list; messages name upstreams[i] and the fix.
func ValidateUpstreams(ups []Upstream) error {
	var errs []error
	seen := map[string]bool{}
	for i, u := range ups {
		if err := validHost(u.Host); err != nil {
			errs = append(errs, fmt.Errorf("upstreams[%d].host: %w", i, err))
		} else if p := Prefix(u.Host); seen[p] {
			errs = append(errs, fmt.Errorf("upstreams[%d].host: %q is listed twice (remove the duplicate)", i, u.Host))
		} else {
			seen[p] = true
		}
		pu, err := url.Parse(u.URL)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || strings.Trim(pu.Path, "/") != "" || pu.RawQuery != "" || pu.User != nil {
			errs = append(errs, fmt.Errorf("upstreams[%d].url: %q is not a registry base URL (set scheme and host only, e.g. https://registry-1.docker.io)", i, u.URL))
		}
	}
	return errors.Join(errs...)
}

func validHost(h string) error {
	if h == "" {
		return errors.New(`empty (set the registry host as image names spell it, e.g. docker.io)`)
	}
	if strings.Contains(h, "/") {
		return fmt.Errorf("%q holds a slash (set the host only, e.g. docker.io, no scheme or path)", h)
	}
	host := h
	if hp, port, err := net.SplitHostPort(h); err == nil {
		if port == "" {
			return fmt.Errorf("%q has an empty port (use host:port, e.g. registry.example.com:5000)", h)
		}
		host = hp
	}
	if host == "" || !oci.ValidName(strings.TrimSuffix(Prefix(h), "/")) {
		return fmt.Errorf("%q is not a registry host (letters, digits, dots, dashes and an optional :port, e.g. registry.example.com:5000)", h)
	}
	return nil
}

// Kind is what a request's ns makes of it.
type Kind int

const (
	// Local names Shoal's own repositories: no ns, or the proxy's host.
	Local Kind = iota
	// Mirrored names an upstream's repository, under its Prefix.
	Mirrored
	// Unknown is a registry the agent does not serve: answer 404 at once.
	Unknown
)

func (k Kind) String() string {
	switch k {
	case Local:
		return "local"
	case Mirrored:
		return "served"
	}
	return "unknown"
}

// Mapper decides, per ns, how a request is served. Immutable, safe for concurrent use.
type Mapper struct {
	prefix map[string]string // lower-cased host -> Prefix
	local  map[string]bool   // lower-cased hosts of Shoal's own repositories
}

// New returns the mapper of ups (validated by ValidateUpstreams) and the hosts that
// name Shoal's own repositories (the proxy's registry host).
func New(ups []Upstream, localHosts ...string) *Mapper {
	m := &Mapper{prefix: map[string]string{}, local: map[string]bool{}}
	for _, u := range ups {
		m.prefix[strings.ToLower(u.Host)] = Prefix(u.Host)
	}
	for _, h := range localHosts {
		if h != "" {
			m.local[strings.ToLower(h)] = true
		}
	}
	return m
}

// Map returns the kind of a request with ns and, for Mirrored, the prefix its
// repository takes. A configured upstream wins over a local host of the same name.
func (m *Mapper) Map(ns string) (Kind, string) {
	if ns == "" {
		return Local, ""
	}
	h := strings.ToLower(ns)
	if p, ok := m.prefix[h]; ok {
		return Mirrored, p
	}
	if m.local[h] {
		return Local, ""
	}
	return Unknown, ""
}

// Rewrite maps the path of a registry API request (everything after /v2/, e.g.
// library/nginx/manifests/1.27) with ns to the path Shoal serves it at. The API root
// and the catalog are never rewritten (they name no repository). For Unknown the
// path comes back unchanged and the caller answers 404.
func (m *Mapper) Rewrite(ns, path string) (Kind, string) {
	k, p := m.Map(ns)
	if k != Mirrored || path == "" || path == "_catalog" {
		return k, path
	}
	return k, p + path
}

// NotFound is the OCI error a request for path (after /v2/) of an unknown registry
// gets: the code the same request would get for a missing manifest, blob or name.
func NotFound(ns, path string) *oci.Error {
	detail := fmt.Sprintf("registry %q is not mirrored by this agent (containerd falls back to the next host)", ns)
	switch {
	case strings.Contains(path, "/manifests/"):
		return oci.NewError(oci.CodeManifestUnknown, detail, nil)
	case strings.Contains(path, "/blobs/"):
		return oci.NewError(oci.CodeBlobUnknown, detail, nil)
	}
	return oci.NewError(oci.CodeNameUnknown, detail, nil)
}

// Config is the agent's mirror block.
type Config struct {
	// Upstreams are the registries the agent mirrors for containerd.
	Upstreams []Upstream `yaml:"upstreams"`
	// Containerd is where the node's containerd reads its registry host files.
	Containerd containerdhosts.Config `yaml:"containerd"`
}

// DefaultConfig holds the defaults of the keys a file leaves out.
func DefaultConfig() Config { return Config{Containerd: containerdhosts.DefaultConfig()} }

// Validate checks c; messages name the key (mirror.…) and the fix.
func (c Config) Validate() error {
	var errs []error
	errs = append(errs, prefixed("mirror.", ValidateUpstreams(c.Upstreams))...)
	errs = append(errs, prefixed("mirror.containerd.", c.Containerd.Validate())...)
	return errors.Join(errs...)
}

// prefixed returns each error joined in err with the key prefix in front.
func prefixed(prefix string, err error) []error {
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{fmt.Errorf("%s%w", prefix, err)}
	}
	var out []error
	for _, e := range joined.Unwrap() {
		out = append(out, fmt.Errorf("%s%w", prefix, e))
	}
	return out
}

// HostFiles lists the containerd host files that send the node's pulls to the agent:
// one per upstream (falling back to its URL), one for the proxy's host (falling back
// to the proxy over plain http) unless an upstream has that host, and _default when
// asked (falling back to each image's own registry).
func HostFiles(ups []Upstream, proxyHost string, withDefault bool) []containerdhosts.Host {
	var hosts []containerdhosts.Host
	seen := map[string]bool{}
	for _, u := range ups {
		hosts = append(hosts, containerdhosts.Host{Registry: u.Host, Server: strings.TrimRight(u.URL, "/")})
		seen[strings.ToLower(u.Host)] = true
	}
	if proxyHost != "" && !seen[strings.ToLower(proxyHost)] {
		hosts = append(hosts, containerdhosts.Host{Registry: proxyHost, Server: "http://" + proxyHost})
	}
	if withDefault {
		hosts = append(hosts, containerdhosts.Host{Registry: containerdhosts.DefaultHost})
	}
	return hosts
}
