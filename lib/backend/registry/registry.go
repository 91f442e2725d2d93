// Package registry is the read-only backend driver that pulls through from an upstream
// Docker/OCI registry (Docker Hub, a docker/distribution registry, Harbor, ...) over the
// distribution API. Shoal's object names map onto upstream requests:
//
//	docker/registry/v2/
//	  blobs/sha256/<2 hex>/<hex>/data       GET /v2/<ns>/blobs/sha256:<hex>, and if that is
//	                                        404, GET /v2/<ns>/manifests/sha256:<hex>
//	                                        (<ns> from backend.NamespaceFrom)
//	  repositories/<repo>/_manifests/tags/<tag>/current/link
//	                                        HEAD /v2/<repo>/manifests/<tag> -> "sha256:<hex>"
//	  List(TagsPrefix(repo))                GET /v2/<repo>/tags/list
//	  List(RepositoriesPrefix)              GET /v2/_catalog, then each repository's tags
//
// Invariants: a resolved tag is trusted for tag_ttl, then re-checked with a HEAD
// (which Docker Hub does not count against pull limits); while the upstream fails, the
// last resolution is served stale; an upstream 404 drops it. Blob bytes are streamed,
// not verified (the origin hashes on ingest); manifest bytes, small and read whole, are
// hashed and refused on a mismatch. Upload fails with backend.ErrReadOnly. Requests are
// not retried here: retries belong to a decorator.
package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/shoal-p2p/shoal/lib/backend"
)

const (
	// DefaultTagTTL is how long a resolved tag is trusted when tag_ttl is unset.
	DefaultTagTTL = 5 * time.Minute
	// DefaultTimeout bounds one metadata request when timeout is unset.
	DefaultTimeout = 30 * time.Second
)

// ErrReadOnly is backend.ErrReadOnly, returned (wrapped) by Upload.
var ErrReadOnly = backend.ErrReadOnly

// Config configures a pull-through backend. A binary embeds it under backend.registry.
type Config struct {
	// URL is the upstream registry's base URL, without a path, e.g.
	// https://registry-1.docker.io or http://127.0.0.1:5000. Required.
	URL string `yaml:"url"`
	// Username and Password are the upstream credentials, used for Basic auth or to
	// obtain Bearer tokens from the upstream's token service. Both empty is anonymous.
	Username string `yaml:"username"`
	// Password is Username's password or access token.
	Password string `yaml:"password"`
	// PasswordFile is a file holding the password instead (a mounted Secret), read
	// at start; surrounding whitespace is dropped. Set Password or PasswordFile.
	PasswordFile string `yaml:"password_file"`
	// RepositoryPrefix is the prefix of Shoal's repository names that are this
	// upstream's, removed before asking it: with docker.io/ (an agent mirroring
	// docker.io for containerd, see lib/mirror), Shoal's docker.io/library/nginx is
	// library/nginx upstream. A name without it is a miss. Empty: names are the
	// upstream's own.
	RepositoryPrefix string `yaml:"repository_prefix"`
	// Insecure allows plain http; required for an http:// URL. Without it, requests to
	// the upstream never fall back to http.
	Insecure bool `yaml:"insecure"`
	// TagTTL is how long a resolved tag is trusted before it is re-checked upstream
	// (default 5m). While the upstream is failing, an expired resolution is served stale.
	TagTTL time.Duration `yaml:"tag_ttl"`
	// Timeout bounds each metadata request (tag resolution, manifest, listing, token)
	// and the wait for a blob response's headers; blob bodies are bounded by the
	// caller's context only (default 30s).
	Timeout time.Duration `yaml:"timeout"`
}

// Validate checks the settings; messages name the key (backend.registry.…) and the fix.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("backend.registry.url: empty (set backend.registry.url to the upstream, e.g. https://registry-1.docker.io)")
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("backend.registry.url: %q is not an http(s) URL (set e.g. backend.registry.url: https://registry-1.docker.io)", c.URL)
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil:
		return fmt.Errorf("backend.registry.url: %q has a path, query or user (a registry serves /v2/ at its root: set the scheme and host only, credentials in backend.registry.username/password)", c.URL)
	case u.Scheme == "http" && !c.Insecure:
		return fmt.Errorf("backend.registry.insecure: false but backend.registry.url %q is plain http (set backend.registry.insecure: true, or use https)", c.URL)
	case c.Password != "" && c.PasswordFile != "":
		return errors.New("backend.registry.password_file: set with backend.registry.password (keep one)")
	case (c.Password != "" || c.PasswordFile != "") && c.Username == "":
		return errors.New("backend.registry.username: empty but a password is set (set both, or neither for anonymous pulls)")
	case c.RepositoryPrefix != "" && (!strings.HasSuffix(c.RepositoryPrefix, "/") || strings.HasPrefix(c.RepositoryPrefix, "/")):
		return fmt.Errorf("backend.registry.repository_prefix: %q must end with a slash and not start with one (e.g. docker.io/)", c.RepositoryPrefix)
	case c.TagTTL < 0:
		return fmt.Errorf("backend.registry.tag_ttl: %s is negative (set e.g. backend.registry.tag_ttl: 5m, or 0 for the default)", c.TagTTL)
	case c.Timeout < 0:
		return fmt.Errorf("backend.registry.timeout: %s is negative (set e.g. backend.registry.timeout: 30s, or 0 for the default)", c.Timeout)
	}
	return nil
}

// Option adjusts a Backend.
type Option func(*Backend)

// WithClock makes the backend read the time from now (tag expiry), for tests.
func WithClock(now func() time.Time) Option { return func(b *Backend) { b.now = now } }

// WithLogger sets the logger of stale-tag warnings (default: none).
func WithLogger(log *zap.Logger) Option { return func(b *Backend) { b.log = log } }

// WithTransport sets the HTTP transport under auth (default: a clone of
// http.DefaultTransport whose response header timeout is the configured timeout).
func WithTransport(rt http.RoundTripper) Option { return func(b *Backend) { b.base = rt } }

// Backend reads from an upstream registry. Safe for concurrent use.
type Backend struct {
	reg       name.Registry
	prefix    string // Config.RepositoryPrefix
	dockerHub bool
	auth      authn.Authenticator
	base      http.RoundTripper
	ttl       time.Duration
	timeout   time.Duration
	now       func() time.Time
	log       *zap.Logger

	transports sync.Map // scope string -> http.RoundTripper (authenticated for it)
	resolve    singleflight.Group

	mu   sync.Mutex
	tags map[tagKey]tagEntry
}

type tagKey struct{ repo, tag string }

// tagEntry is the last successful upstream resolution of a tag.
type tagEntry struct {
	digest  string
	checked time.Time
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg and builds the backend. It sends no request: an unreachable
// upstream or wrong credentials surface on the first operation.
func New(_ context.Context, cfg Config, opts ...Option) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL)
	var nameOpts []name.Option
	if cfg.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("backend.registry.url: host %q: %w", u.Host, err)
	}
	b := &Backend{
		reg:       reg,
		prefix:    cfg.RepositoryPrefix,
		dockerHub: slices.Contains([]string{"docker.io", "index.docker.io", "registry-1.docker.io"}, u.Hostname()),
		auth:      authn.Anonymous,
		ttl:       cmp.Or(cfg.TagTTL, DefaultTagTTL),
		timeout:   cmp.Or(cfg.Timeout, DefaultTimeout),
		now:       time.Now,
		log:       zap.NewNop(),
		tags:      map[tagKey]tagEntry{},
	}
	if cfg.PasswordFile != "" {
		raw, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("backend.registry.password_file: %w (mount the Secret there, or set backend.registry.password)", err)
		}
		cfg.Password = strings.TrimSpace(string(raw))
	}
	if cfg.Username != "" {
		b.auth = authn.FromConfig(authn.AuthConfig{Username: cfg.Username, Password: cfg.Password})
	}
	for _, o := range opts {
		o(b)
	}
	if b.base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = b.timeout
		b.base = t
	}
	if !cfg.Insecure {
		// ggcr tries http as well as https for loopback and private hosts; refuse it.
		b.base = httpsOnly{inner: b.base, host: reg.RegistryStr()}
	}
	return b, nil
}

// Stat implements backend.Backend: a tag's size is that of its digest string, a
// blob's is the upstream's Content-Length of the blob or, failing that, the manifest.
func (b *Backend) Stat(ctx context.Context, objName string) (backend.Info, error) {
	if repo, tag, ok := backend.ParseTagName(objName); ok {
		d, err := b.resolveTag(ctx, repo, tag)
		if err != nil {
			return backend.Info{}, fmt.Errorf("registry stat %s: %w", objName, err)
		}
		return backend.Info{Size: int64(len(d))}, nil
	}
	d, ok := backend.ParseBlobName(objName)
	if !ok {
		return backend.Info{}, fmt.Errorf("registry stat %s: %w (only blobs and tags are served)", objName, backend.ErrNotFound)
	}
	size, err := b.statBlob(ctx, d)
	if err != nil {
		return backend.Info{}, fmt.Errorf("registry stat %s: %w", objName, err)
	}
	return backend.Info{Size: size}, nil
}

// Download implements backend.Backend: a tag's digest string, or a blob streamed from
// the upstream's blob endpoint (a manifest, read whole and checked, if that is 404).
func (b *Backend) Download(ctx context.Context, objName string, w io.Writer) error {
	if repo, tag, ok := backend.ParseTagName(objName); ok {
		d, err := b.resolveTag(ctx, repo, tag)
		if err != nil {
			return fmt.Errorf("registry download %s: %w", objName, err)
		}
		if _, err := io.WriteString(w, d); err != nil {
			return fmt.Errorf("registry download %s: %w", objName, err)
		}
		return nil
	}
	d, ok := backend.ParseBlobName(objName)
	if !ok {
		return fmt.Errorf("registry download %s: %w (only blobs and tags are served)", objName, backend.ErrNotFound)
	}
	if err := b.downloadBlob(ctx, d, w); err != nil {
		return fmt.Errorf("registry download %s: %w", objName, err)
	}
	return nil
}

// Upload implements backend.Backend: always ErrReadOnly.
func (b *Backend) Upload(_ context.Context, objName string, _ io.Reader) error {
	return fmt.Errorf("registry upload %s: %w", objName, ErrReadOnly)
}

// List implements backend.Backend for tag objects only: a prefix naming a repository's
// tags lists that repository upstream; a shorter prefix under RepositoriesPrefix walks
// the upstream catalog (one request per repository, so use it sparingly), or lists
// nothing if the upstream does not offer one (Docker Hub). Blobs are not listed.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	names, err := b.list(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("registry list %s: %w", prefix, err)
	}
	slices.Sort(names)
	return names, nil
}

func (b *Backend) list(ctx context.Context, prefix string) ([]string, error) {
	if rest, ok := strings.CutPrefix(prefix, backend.RepositoriesPrefix); ok {
		if i := strings.Index(rest, "/_manifests/tags/"); i > 0 {
			return b.listTags(ctx, rest[:i], prefix)
		}
	} else if !strings.HasPrefix(backend.RepositoriesPrefix, prefix) {
		return []string{}, nil // blobs, or nothing this backend holds
	}
	repos, err := b.catalog(ctx)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	names := []string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, repo := range repos {
		p := backend.TagsPrefix(repo)
		if !strings.HasPrefix(p, prefix) && !strings.HasPrefix(prefix, p) {
			continue
		}
		g.Go(func() error {
			ns, err := b.listTags(gctx, repo, prefix)
			mu.Lock()
			names = append(names, ns...)
			mu.Unlock()
			return err
		})
	}
	return names, g.Wait()
}

// listTags lists repo's tags upstream as tag object names starting with prefix. An
// unknown repository has none.
func (b *Backend) listTags(ctx context.Context, repo, prefix string) ([]string, error) {
	ref, err := b.repository(repo)
	if err != nil {
		return []string{}, nil // an invalid name holds no tags
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	opts, err := b.remoteOptions(ctx, ref)
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(ref, opts...)
	if err != nil {
		if err := mapErr(err); errors.Is(err, backend.ErrNotFound) {
			return []string{}, nil
		}
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	names := []string{}
	for _, tag := range tags {
		if n := backend.TagName(repo, tag); strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

// catalog lists the upstream's repositories, or none if it has no catalog (or refuses
// it to these credentials).
func (b *Backend) catalog(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	opts, err := b.remoteOptions(ctx, b.reg)
	if err != nil {
		return nil, err
	}
	repos, err := remote.Catalog(ctx, b.reg, opts...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && slices.Contains([]int{http.StatusUnauthorized, http.StatusForbidden,
			http.StatusNotFound, http.StatusMethodNotAllowed}, terr.StatusCode) {
			return nil, nil
		}
		return nil, fmt.Errorf("catalog: %w", err)
	}
	for i, r := range repos {
		if b.dockerHub {
			r = strings.TrimPrefix(r, "library/")
		}
		repos[i] = b.prefix + r
	}
	return repos, nil
}

// resolveTag returns the digest repo:tag points at: from the cache within the TTL,
// else from one upstream HEAD shared by concurrent callers, else (upstream failing)
// stale from the cache.
func (b *Backend) resolveTag(ctx context.Context, repo, tag string) (string, error) {
	key := tagKey{repo, tag}
	b.mu.Lock()
	e, ok := b.tags[key]
	b.mu.Unlock()
	if ok && b.now().Sub(e.checked) < b.ttl {
		return e.digest, nil
	}
	ch := b.resolve.DoChan(repo+":"+tag, func() (any, error) {
		// Shared by every caller waiting on this tag: not cancelled with the first one.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
		defer cancel()
		return b.headTag(ctx, key)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// headTag asks the upstream for key's digest and updates the cache from the answer.
func (b *Backend) headTag(ctx context.Context, key tagKey) (string, error) {
	d, err := b.headTagUpstream(ctx, key)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == nil:
		b.tags[key] = tagEntry{digest: d, checked: b.now()}
		return d, nil
	case errors.Is(err, backend.ErrNotFound):
		delete(b.tags, key)
		return "", err
	}
	if e, ok := b.tags[key]; ok {
		b.log.Warn("upstream registry failed; serving a stale tag",
			zap.String("repository", key.repo), zap.String("tag", key.tag), zap.String("digest", e.digest),
			zap.Duration("age", b.now().Sub(e.checked)), zap.Error(err))
		return e.digest, nil
	}
	return "", err
}

func (b *Backend) headTagUpstream(ctx context.Context, key tagKey) (string, error) {
	repo, err := b.repository(key.repo)
	if err != nil {
		return "", fmt.Errorf("%w: %w", backend.ErrNotFound, err)
	}
	opts, err := b.remoteOptions(ctx, repo)
	if err != nil {
		return "", err
	}
	// remote.Head accepts Docker v2 schema 2 manifests and manifest lists and OCI
	// manifests and indexes, so a multi-platform tag resolves to its index.
	desc, err := remote.Head(repo.Tag(key.tag), opts...)
	if err != nil {
		return "", fmt.Errorf("resolve %s:%s: %w", key.repo, key.tag, mapErr(err))
	}
	return desc.Digest.String(), nil
}

// statBlob HEADs d in the context's namespace: the blob, else the manifest.
func (b *Backend) statBlob(ctx context.Context, d digest.Digest) (int64, error) {
	repo, err := b.namespace(ctx)
	if err != nil {
		return 0, err
	}
	resp, err := b.blobRequest(ctx, http.MethodHead, repo, d)
	if err == nil {
		resp.Body.Close()
		if resp.ContentLength < 0 {
			return 0, fmt.Errorf("HEAD blob %s in %s: no Content-Length", d, repo.RepositoryStr())
		}
		return resp.ContentLength, nil
	}
	if !errors.Is(err, backend.ErrNotFound) {
		return 0, err
	}
	ref, ok := b.digestRef(repo, d)
	if !ok {
		return 0, err
	}
	mctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	opts, err := b.remoteOptions(mctx, repo)
	if err != nil {
		return 0, err
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return 0, fmt.Errorf("blob %s in %s is neither a blob nor a manifest: %w", d, repo.RepositoryStr(), mapErr(err))
	}
	return desc.Size, nil
}

// downloadBlob streams d from the context's namespace: the blob, else the manifest.
func (b *Backend) downloadBlob(ctx context.Context, d digest.Digest, w io.Writer) error {
	repo, err := b.namespace(ctx)
	if err != nil {
		return err
	}
	resp, err := b.blobRequest(ctx, http.MethodGet, repo, d)
	if err == nil {
		defer resp.Body.Close()
		_, err := io.Copy(w, resp.Body)
		return err
	}
	if !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	ref, ok := b.digestRef(repo, d)
	if !ok {
		return err
	}
	mctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	opts, err := b.remoteOptions(mctx, repo)
	if err != nil {
		return err
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return fmt.Errorf("blob %s in %s is neither a blob nor a manifest: %w", d, repo.RepositoryStr(), mapErr(err))
	}
	if got := d.Algorithm().FromBytes(desc.Manifest); got != d {
		return fmt.Errorf("manifest %s in %s: upstream sent content of digest %s", d, repo.RepositoryStr(), got)
	}
	_, err = w.Write(desc.Manifest)
	return err
}

// blobRequest sends method for blob d of repo and returns a 200 response; a 404 is
// backend.ErrNotFound.
func (b *Backend) blobRequest(ctx context.Context, method string, repo name.Repository, d digest.Digest) (*http.Response, error) {
	tctx, cancel := context.WithTimeout(ctx, b.timeout)
	rt, err := b.transport(tctx, repo)
	cancel()
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/" + d.String()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	client := http.Client{Transport: rt, CheckRedirect: checkRedirect}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s blob %s in %s: %w", method, d, repo.RepositoryStr(), err)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("%s blob %s in %s: %w", method, d, repo.RepositoryStr(), mapErr(err))
	}
	return resp, nil
}

// errNoNamespace is a miss: without a repository an upstream registry cannot be asked.
var errNoNamespace = fmt.Errorf("%w: repository unknown (a registry backend addresses blobs by repository; "+
	"the caller must set it with backend.WithNamespace)", backend.ErrNotFound)

func (b *Backend) namespace(ctx context.Context) (name.Repository, error) {
	ns, ok := backend.NamespaceFrom(ctx)
	if !ok {
		return name.Repository{}, errNoNamespace
	}
	repo, err := b.repository(ns)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%w: namespace: %w", backend.ErrNotFound, err)
	}
	return repo, nil
}

// repository names Shoal's repo on the upstream: without the repository prefix, and
// Docker Hub's official images get "library/".
func (b *Backend) repository(repo string) (name.Repository, error) {
	repo, ok := strings.CutPrefix(repo, b.prefix)
	if !ok {
		return name.Repository{}, fmt.Errorf("repository %q is not under this upstream's prefix %q", repo, b.prefix)
	}
	// Parsed under a dummy registry so that a first component with a dot is not
	// taken for a registry host, nor a dotless upstream host for a repository.
	if _, err := name.NewRepository("registry.invalid/"+repo, name.StrictValidation); err != nil {
		return name.Repository{}, err
	}
	if b.dockerHub && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	return b.reg.Repo(repo), nil
}

// digestRef is repo@d, if ggcr can address d (it knows sha256 only).
func (b *Backend) digestRef(repo name.Repository, d digest.Digest) (name.Digest, bool) {
	if _, err := v1.NewHash(d.String()); err != nil {
		return name.Digest{}, false
	}
	return repo.Digest(d.String()), true
}

// remoteOptions are the ggcr options of one call on target: its authenticated
// transport (which also turns off ggcr's own retries) and ctx.
func (b *Backend) remoteOptions(ctx context.Context, target interface{ Scope(string) string }) ([]remote.Option, error) {
	rt, err := b.transport(ctx, target)
	if err != nil {
		return nil, err
	}
	return []remote.Option{remote.WithTransport(rt), remote.WithContext(ctx)}, nil
}

// transport returns a RoundTripper authenticated for pulls from target (a repository,
// or the registry for its catalog), made once per target: ggcr pings the upstream,
// follows a Bearer challenge to its token service with the credentials, and renews the
// token on a 401. A failure is not kept, so the next call tries again.
func (b *Backend) transport(ctx context.Context, target interface{ Scope(string) string }) (http.RoundTripper, error) {
	scope := target.Scope(transport.PullScope)
	if rt, ok := b.transports.Load(scope); ok {
		return rt.(http.RoundTripper), nil
	}
	rt, err := transport.NewWithContext(ctx, b.reg, b.auth, b.base, []string{scope})
	if err != nil {
		return nil, fmt.Errorf("connect to upstream %s: %w", b.reg.RegistryStr(), err)
	}
	actual, _ := b.transports.LoadOrStore(scope, rt)
	return actual.(http.RoundTripper), nil
}

// mapErr turns an upstream 404 into backend.ErrNotFound, keeping the cause.
func mapErr(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w (%w)", backend.ErrNotFound, err)
	}
	return err
}

// httpsOnly refuses plain http to the upstream, which ggcr would otherwise try for
// loopback and private addresses.
type httpsOnly struct {
	inner http.RoundTripper
	host  string
}

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && r.URL.Host == h.host {
		return nil, fmt.Errorf("plain http to %s refused (set backend.registry.insecure: true to allow it)", h.host)
	}
	return h.inner.RoundTrip(r)
}

// checkRedirect follows blob redirects (to a CDN, typically) but not from the
// upstream to another host at a private, loopback or link-local address.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Hostname() == via[0].URL.Hostname() {
		return nil
	}
	if ip, err := netip.ParseAddr(req.URL.Hostname()); err == nil &&
		(ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()) {
		return fmt.Errorf("redirect from %s to private address %s refused", via[0].URL.Host, req.URL.Host)
	}
	return nil
}
