package registry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/stall"
)

// Limits bound what one request, and one client, can make the registry hold (the
// proxy's key limits). A zero field takes its default, so a registry built without
// Limits (the agent's) is bounded too.
type Limits struct {
	// MaxManifestBytes bounds a manifest PUT body; over it the answer is 413
	// MANIFEST_INVALID and nothing is stored. Default and most 4 MiB
	// (oci.MaxManifestSize): the agents serve no bigger manifest.
	MaxManifestBytes int64 `yaml:"max_manifest_bytes"`
	// MaxListEntries bounds one page of tags/list and _catalog; a larger n, or none,
	// gets this many and a Link to the next page. Default 1000.
	MaxListEntries int `yaml:"max_list_entries"`
	// MaxUploadsPerClient bounds the open upload sessions of one client (remote IP);
	// the next POST answers 429 TOOMANYREQUESTS. Default 100.
	MaxUploadsPerClient int `yaml:"max_uploads_per_client"`
	// MaxUploads bounds the open upload sessions of every client together. Default 1000.
	MaxUploads int `yaml:"max_uploads"`
	// UploadTTL is how long a session with no request counts after its last one; the
	// origins remove such a session after their upload_ttl, so keep the two equal.
	// Default 1h.
	UploadTTL time.Duration `yaml:"upload_ttl"`
	// StallTimeout bounds how long a blob read waits on origins that send nothing:
	// before the body 503, during it a cut-off body, so the client retries. 0 waits
	// forever. Default 30s (stall.DefaultTimeout).
	StallTimeout time.Duration `yaml:"stall_timeout"`
}

// DefaultLimits are the limits for the keys a config leaves out.
func DefaultLimits() Limits {
	return Limits{
		MaxManifestBytes:    oci.MaxManifestSize,
		MaxListEntries:      1000,
		MaxUploadsPerClient: 100,
		MaxUploads:          1000,
		UploadTTL:           time.Hour,
		StallTimeout:        stall.DefaultTimeout,
	}
}

// Validate checks l; each message names the key (under the block the binary gives
// it) and the fix.
func (l *Limits) Validate() error {
	var errs []error
	if l.MaxManifestBytes < 1 || l.MaxManifestBytes > oci.MaxManifestSize {
		errs = append(errs, fmt.Errorf("max_manifest_bytes: %d is not in 1..%d, the most agents serve (use e.g. %d)",
			l.MaxManifestBytes, oci.MaxManifestSize, oci.MaxManifestSize))
	}
	if l.MaxListEntries < 1 {
		errs = append(errs, fmt.Errorf("max_list_entries: %d is not positive (use e.g. 1000)", l.MaxListEntries))
	}
	if l.MaxUploadsPerClient < 1 {
		errs = append(errs, fmt.Errorf("max_uploads_per_client: %d is not positive (use e.g. 100)", l.MaxUploadsPerClient))
	}
	if l.MaxUploads < l.MaxUploadsPerClient {
		errs = append(errs, fmt.Errorf("max_uploads: %d is below max_uploads_per_client %d (use e.g. 1000)",
			l.MaxUploads, l.MaxUploadsPerClient))
	}
	if l.StallTimeout < 0 {
		errs = append(errs, fmt.Errorf("stall_timeout: %s is negative (use e.g. 30s, or 0 to wait forever)", l.StallTimeout))
	}
	if l.UploadTTL <= 0 {
		errs = append(errs, fmt.Errorf("upload_ttl: %s is not positive (use the origins' upload_ttl, e.g. 1h)", l.UploadTTL))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxManifestBytes == 0 {
		l.MaxManifestBytes = d.MaxManifestBytes
	}
	if l.MaxListEntries == 0 {
		l.MaxListEntries = d.MaxListEntries
	}
	if l.MaxUploadsPerClient == 0 {
		l.MaxUploadsPerClient = d.MaxUploadsPerClient
	}
	if l.MaxUploads == 0 {
		l.MaxUploads = d.MaxUploads
	}
	if l.UploadTTL == 0 {
		l.UploadTTL = d.UploadTTL
	}
	return l
}

// retryAfter is the Retry-After of a refused upload start: sessions end when their
// pushes commit, typically within seconds.
const retryAfter = "10"

// recheckAfter is how long a session must have had no request here before a client at
// its limit makes the registry ask the seam whether it still exists: a push through two
// proxies commits some sessions through the other one, which this one never sees.
// Each session is asked about at most once per recheckAfter, so a client hammering at
// its limit costs the origins at most one request per session per recheckAfter.
const recheckAfter = 30 * time.Second

// maxRecheck bounds the sessions asked about for one refused start.
const maxRecheck = 100

// client is who a request counts against: its remote IP. The proxy is reached
// directly (no proxy in front whose X-Forwarded-For it could trust).
func client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// sessions counts the open upload sessions per client: from their start until they
// are committed, cancelled, found unknown, or idle for ttl. It is a pure core (time is
// passed in); the lock only makes it safe for concurrent use by handlers.
type sessions struct {
	perClient, total int
	ttl              time.Duration

	mu       sync.Mutex
	byID     map[string]*session
	byClient map[string]int
	n        int // sessions counted, reserved ones included
}

type session struct {
	client  string
	seen    time.Time // last request
	checked time.Time // last asked about (suspects)
}

func newSessions(l Limits) *sessions {
	return &sessions{
		perClient: l.MaxUploadsPerClient, total: l.MaxUploads, ttl: l.UploadTTL,
		byID: map[string]*session{}, byClient: map[string]int{},
	}
}

// errTooMany is a refused start; the detail says which limit.
func errTooMany(detail string) error { return oci.NewError(oci.CodeTooManyRequests, detail, nil) }

// reserve counts a session of client about to start; the caller then calls started
// with its id, or unreserve if the start failed.
func (s *sessions) reserve(client string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byClient[client] >= s.perClient || s.n >= s.total {
		s.expire(now)
	}
	switch {
	case s.byClient[client] >= s.perClient:
		return errTooMany(fmt.Sprintf("%d upload sessions open from %s, the most per client: commit or cancel one", s.perClient, client))
	case s.n >= s.total:
		return errTooMany(fmt.Sprintf("%d upload sessions open, the most this registry holds: retry later", s.total))
	}
	s.byClient[client]++
	s.n++
	return nil
}

// suspects returns sessions to ask the seam about after reserve refused client at
// now: its own when it is at its limit, else anyone's (the total is reached); only
// those idle here for recheckAfter and not asked about for as long, at most maxRecheck.
// They are marked asked about at now.
func (s *sessions) suspects(client string, now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	own := s.byClient[client] >= s.perClient
	var ids []string
	for id, e := range s.byID {
		if len(ids) == maxRecheck {
			break
		}
		if (own && e.client != client) || now.Sub(e.seen) < recheckAfter || now.Sub(e.checked) < recheckAfter {
			continue
		}
		e.checked = now
		ids = append(ids, id)
	}
	return ids
}

// unreserve takes back a reservation whose session did not start.
func (s *sessions) unreserve(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(client)
}

// started binds a reservation to the session's id.
func (s *sessions) started(client, id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[id] = &session{client: client, seen: now}
}

// touch records a request on session id, keeping it from expiring.
func (s *sessions) touch(id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byID[id]; e != nil {
		e.seen = now
	}
}

// done stops counting session id (committed, cancelled or unknown). Ids it does not
// count (started before a restart, or on another proxy) are ignored.
func (s *sessions) done(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byID[id]; e != nil {
		delete(s.byID, id)
		s.drop(e.client)
	}
}

// expire stops counting sessions idle for ttl at now. Called with s.mu held, only
// when a limit is reached, so it costs O(sessions) only then.
func (s *sessions) expire(now time.Time) {
	for id, e := range s.byID {
		if now.Sub(e.seen) >= s.ttl {
			delete(s.byID, id)
			s.drop(e.client)
		}
	}
}

func (s *sessions) drop(client string) {
	s.n--
	if s.byClient[client]--; s.byClient[client] <= 0 {
		delete(s.byClient, client)
	}
}
