// Package memberset is the membership of a cluster of HTTP servers (the origins, the
// trackers) that the other components share: which members exist (a static list or a
// DNS name re-resolved periodically), which are healthy (active GET /health checks
// plus failures callers report), and in which order to try them for a blob.
//
// Placement is rendezvous hashing (lib/hashring) of the digest string over every
// member's base URL: the first Replicas members in a digest's order own it. Readers
// try the whole order, owners first, so a blob that only its uploading origin holds
// yet is still found; unhealthy members go last. Every process that sees the same
// members computes the same owners, with no coordination.
package memberset

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/httpserver"
)

// healthTimeout bounds one GET /health (and never exceeds the check interval).
const healthTimeout = 3 * time.Second

// Resolver returns the IPv4 addresses of host.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// Client is a member's API client, made by a NewClient from the member's base URL.
type Client interface {
	// Addr is the member's base URL, as given to NewClient.
	Addr() string
}

// NewClient returns the client of the member at base (http://host:port).
type NewClient[C Client] func(base string) C

// Set is the live membership of one kind of member (Kind, e.g. "origin", names it in
// logs and errors). Safe for concurrent use; Run keeps it current.
type Set[C Client] struct {
	cfg     Config
	kind    string
	hc      *http.Client
	newC    NewClient[C]
	log     *zap.Logger
	resolve Resolver // DNS A lookups; a fake in tests

	members, healthy tally.Gauge
	checkFailures    tally.Counter
	reportedFailures tally.Counter
	dnsErrors        tally.Counter

	mu      sync.Mutex
	bases   []string // sorted; replaced, never modified in place
	clients map[string]C
	health  map[string]health
}

// New returns the set of kind (e.g. "origin") for cfg: members' clients come from
// newClient, health checks use hc. A static set is complete at once; a DNS one is
// empty until Run's first resolution.
func New[C Client](kind string, cfg Config, newClient NewClient[C], hc *http.Client, log *zap.Logger, scope tally.Scope) (*Set[C], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%ss: %w", kind, err)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	s := &Set[C]{
		cfg:  cfg,
		kind: kind,
		hc:   hc,
		newC: newClient,
		log:  log,
		resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		},
		members:          scope.Gauge("members"),
		healthy:          scope.Gauge("healthy"),
		checkFailures:    scope.Counter("health_check_failures"),
		reportedFailures: scope.Counter("reported_failures"),
		dnsErrors:        scope.Counter("dns_errors"),
		clients:          map[string]C{},
		health:           map[string]health{},
	}
	if len(cfg.Static) > 0 {
		s.setMembers(cfg.Static)
	}
	return s, nil
}

// Replicas is how many members own each blob: the first Replicas entries of the
// rendezvous order (before health reordering).
func (s *Set[C]) Replicas() int { return s.cfg.Replicas }

// Owners returns every member in the order to try for d: d's rendezvous order over
// all members, its first Replicas entries being d's owners and the rest following in
// ring order, with unhealthy members moved to the end. Empty only if the set is.
func (s *Set[C]) Owners(d digest.Digest) []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	down := map[string]bool{}
	for b, h := range s.health {
		if h.down {
			down[b] = true
		}
	}
	out := make([]C, 0, len(s.bases))
	for _, b := range order(d.String(), s.bases, down) {
		out = append(out, s.clients[b])
	}
	return out
}

// Members returns every member, sorted by base URL.
func (s *Set[C]) Members() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]C, len(s.bases))
	for i, b := range s.bases {
		out[i] = s.clients[b]
	}
	return out
}

// Member returns the member whose base URL is base, or false if there is none. Use it
// to turn a base URL back into a client without trusting the URL.
func (s *Set[C]) Member(base string) (C, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[base]
	return c, ok
}

// Healthy reports whether the member at base is a member and not marked unhealthy.
func (s *Set[C]) Healthy(base string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.health[base]
	return ok && !h.down
}

// MarkFailed reports a request to the member at base (its Client.Addr) that failed
// for the member's fault; it counts as a failed health check. Unknown bases are
// ignored.
func (s *Set[C]) MarkFailed(base string) {
	s.reportedFailures.Inc(1)
	s.observe(base, false, "request failed")
}

// Run keeps the set current until ctx ends: it re-resolves DNS every DNSInterval (at
// once on start) and checks every member's health every HealthInterval. It returns
// nil when ctx ends.
func (s *Set[C]) Run(ctx context.Context) error {
	var dnsTick <-chan time.Time
	if s.cfg.DNS != "" {
		s.resolveOnce(ctx)
		t := time.NewTicker(s.cfg.DNSInterval)
		defer t.Stop()
		dnsTick = t.C
	}
	health := time.NewTicker(s.cfg.HealthInterval)
	defer health.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-dnsTick:
			s.resolveOnce(ctx)
		case <-health.C:
			s.checkOnce(ctx)
		}
	}
}

// checkOnce checks every member's GET /health concurrently and records the results.
func (s *Set[C]) checkOnce(ctx context.Context) {
	s.mu.Lock()
	bases := s.bases
	s.mu.Unlock()
	timeout := min(healthTimeout, s.cfg.HealthInterval)
	var wg sync.WaitGroup
	for _, b := range bases {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			err := s.check(cctx, b)
			if ctx.Err() != nil {
				return // shutting down: not the member's fault
			}
			if err != nil {
				s.checkFailures.Inc(1)
				s.observe(b, false, err.Error())
				return
			}
			s.observe(b, true, "")
		})
	}
	wg.Wait()
	s.updateGauges()
}

func (s *Set[C]) check(ctx context.Context, b string) error {
	return httpserver.CheckHealth(ctx, s.hc, b)
}

// observe records one success or failure of the member at base, logging changes.
func (s *Set[C]) observe(base string, ok bool, why string) {
	s.mu.Lock()
	before, known := s.health[base]
	if !known {
		s.mu.Unlock()
		return
	}
	after := before.observe(ok)
	s.health[base] = after
	s.mu.Unlock()
	switch {
	case after.down && !before.down:
		s.log.Warn(s.kind+" unhealthy", zap.String(s.kind, base), zap.Int("failures", after.fails), zap.String("last", why))
		s.updateGauges()
	case before.down && !after.down:
		s.log.Info(s.kind+" healthy again", zap.String(s.kind, base))
		s.updateGauges()
	}
}

// resolveOnce replaces the members with DNS's current answer; on an error or an empty
// answer it keeps the members it has.
func (s *Set[C]) resolveOnce(ctx context.Context) {
	host, port, _ := net.SplitHostPort(s.cfg.DNS) // checked by Validate
	p, _ := strconv.Atoi(port)
	addrs, err := s.resolve(ctx, host)
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("no A records")
	}
	if err != nil {
		if ctx.Err() == nil {
			s.dnsErrors.Inc(1)
			s.log.Warn("resolve "+s.kind+"s; keeping the current members", zap.String("dns", s.cfg.DNS), zap.Error(err))
		}
		return
	}
	bases := make([]string, len(addrs))
	for i, a := range addrs {
		bases[i] = "http://" + netip.AddrPortFrom(a.Unmap(), uint16(p)).String()
	}
	s.setMembers(bases)
}

// setMembers makes bases the members. Members that stay keep their client and health;
// new ones start healthy.
func (s *Set[C]) setMembers(list []string) {
	bases := make([]string, len(list))
	for i, b := range list {
		bases[i] = base(b)
	}
	slices.Sort(bases)
	bases = slices.Compact(bases)
	s.mu.Lock()
	changed := !slices.Equal(bases, s.bases)
	if changed {
		clients := make(map[string]C, len(bases))
		health := make(map[string]health, len(bases))
		for _, b := range bases {
			c, ok := s.clients[b]
			if !ok {
				c = s.newC(b)
			}
			clients[b], health[b] = c, s.health[b]
		}
		s.bases, s.clients, s.health = bases, clients, health
	}
	s.mu.Unlock()
	if changed {
		s.log.Info(s.kind+" members", zap.Strings(s.kind+"s", bases))
		s.updateGauges()
	}
}

func (s *Set[C]) updateGauges() {
	s.mu.Lock()
	n, up := len(s.bases), 0
	for _, h := range s.health {
		if !h.down {
			up++
		}
	}
	s.mu.Unlock()
	s.members.Update(float64(n))
	s.healthy.Update(float64(up))
}
