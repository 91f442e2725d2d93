package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-p2p/shoal/lib/clientallow"
	"github.com/shoal-p2p/shoal/lib/eviction"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/logging"
	"github.com/shoal-p2p/shoal/lib/memberset"
	"github.com/shoal-p2p/shoal/lib/mirror"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/stall"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
	"github.com/shoal-p2p/shoal/lib/warmfeed"
)

// Config is shoal-agent's configuration (example: config/agent.yaml).
type Config struct {
	// Listen is the registry API address dockerd and containerd pull from; /health and
	// /metrics are served there too.
	Listen string `yaml:"listen"`
	// DataDir holds the agent's blob cache.
	DataDir string `yaml:"data_dir"`
	// Log selects level and format.
	Log logging.Config `yaml:"log"`
	// Debug turns on diagnostics served on the listen address (pprof).
	Debug httpserver.Debug `yaml:"debug"`
	// HTTP bounds how long and how much a client may take to send a request.
	HTTP httpserver.Config `yaml:"http"`
	// TLS is the tls block shared by every binary (lib/tlsconfig): this listener's
	// certificate, and the client side of calls to the other components.
	TLS tlsconfig.Config `yaml:"tls"`
	// P2P is the BitTorrent engine blobs are fetched and seeded through.
	P2P p2p.Config `yaml:"p2p"`
	// Tracker is the base URL of a single tracker: shorthand for trackers.static with
	// that one URL. Set it or trackers, not both.
	Tracker string `yaml:"tracker"`
	// Trackers is the tracker cluster (static list or DNS, as for origins): each blob's
	// swarm lives on its first trackers.replicas (default 2) trackers in rendezvous
	// order, and the agent announces to each of them, failing over to the next when one
	// is down. With every tracker down, pulls go on from the origins.
	Trackers memberset.Config `yaml:"trackers"`
	// BuildIndex is the build-index's base URL (tags).
	BuildIndex string `yaml:"build_index"`
	// Origins is the origin cluster, asked directly (in each blob's placement order)
	// for blobs below DirectBelow, manifests included.
	Origins originset.Config `yaml:"origins"`
	// Proxy is the address pushes must go to, named in the agent's refusal of a push.
	Proxy string `yaml:"proxy"`
	// DirectBelow is the blob size under which a blob is fetched over HTTP from the
	// origins instead of through a swarm, whose setup costs more than it saves.
	DirectBelow int64 `yaml:"direct_below"`
	// StallTimeout bounds how long a client waits on a blob fetch that makes no
	// progress (no byte from any peer or origin): before the body starts it gets 503,
	// during it a closed connection, so docker and containerd retry. 0 disables it.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	// Eviction bounds the blob cache (TTI, TTL, watermarks of a byte budget); an
	// evicted blob is fetched again through the swarm on its next pull.
	Eviction eviction.Config `yaml:"eviction"`
	// Mirror makes the agent containerd's registry mirror for upstream registries,
	// keyed by containerd's ?ns= (lib/mirror), and writes the node's containerd host
	// files pointing at it.
	Mirror mirror.Config `yaml:"mirror"`
	// AllowedClients are the CIDR prefixes (e.g. a pod network, 10.244.0.0/16) whose
	// callers may use the registry API besides loopback; any other caller gets 403
	// DENIED. Empty: loopback only. Probes (/health, /readiness, /metrics) are open.
	AllowedClients []string `yaml:"allowed_clients"`
	// Warm is the agent's side of the trackers' warm feed (lib/warmfeed): preheats of
	// scope all_peers list blobs there, and the agent fetches them before any pull.
	Warm warmfeed.FollowerConfig `yaml:"warm"`
}

// WarmAgent is how the agent names itself on the warm feed: its P2P address when
// p2p.listen_ip is set (unique even for several agents on one host), else its host
// name, with the P2P port it listens on.
func (c *Config) WarmAgent(hostname string, p2pPort int) warmfeed.Agent {
	host := c.P2P.ListenIP
	if host == "" {
		host = hostname
	}
	return warmfeed.Agent{ID: net.JoinHostPort(host, strconv.Itoa(p2pPort)), Name: hostname}
}

// MirrorURL is the agent as the node's containerd reaches it: mirror.containerd.mirror_url,
// else http://<listen> with loopback for an unspecified listen address.
func (c *Config) MirrorURL() string {
	if c.Mirror.Containerd.MirrorURL != "" {
		return strings.TrimRight(c.Mirror.Containerd.MirrorURL, "/")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "http://" + c.Listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// TrackerSet is the tracker membership: trackers, or tracker as its only static member.
func (c *Config) TrackerSet() memberset.Config {
	set := c.Trackers
	if c.Tracker != "" && len(set.Static) == 0 && set.DNS == "" {
		set.Static = []string{c.Tracker}
	}
	return set
}

// DefaultConfig holds the values used for keys the file leaves out.
func DefaultConfig() Config {
	return Config{
		HTTP:         httpserver.DefaultConfig(),
		Listen:       "127.0.0.1:16000",
		DataDir:      "/var/lib/shoal/agent",
		P2P:          p2p.Config{ListenPort: 16001},
		Trackers:     trackerclient.DefaultSetConfig(),
		Origins:      originset.DefaultConfig(),
		DirectBelow:  1 << 20,
		StallTimeout: stall.DefaultTimeout,
		Mirror:       mirror.DefaultConfig(),
		Warm:         warmfeed.DefaultFollowerConfig(),
	}
}

// Validate checks the whole config; each message names the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	required := []struct{ key, val, example string }{
		{"listen", c.Listen, "127.0.0.1:16000 or pass --listen"},
		{"data_dir", c.DataDir, "/var/lib/shoal/agent or pass --data-dir"},
		{"build_index", c.BuildIndex, "http://buildindex:15100"},
		{"proxy", c.Proxy, "the proxy's registry address, e.g. registry.example.com:15000"},
	}
	for _, r := range required {
		if r.val == "" {
			errs = append(errs, fmt.Errorf("%s: empty (set %s: %s)", r.key, r.key, r.example))
		}
	}
	switch hasSet := len(c.Trackers.Static) > 0 || c.Trackers.DNS != ""; {
	case c.Tracker == "" && !hasSet:
		errs = append(errs, errors.New("tracker, trackers: neither set (set tracker: http://tracker:15300, or list several under trackers.static or name them with trackers.dns)"))
	case c.Tracker != "" && hasSet:
		errs = append(errs, errors.New("tracker, trackers: both set (keep one: tracker is shorthand for a single entry under trackers.static)"))
	default:
		set := c.TrackerSet()
		if err := set.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("trackers: %w", err))
		}
	}
	if err := c.Origins.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("origins: %w", err))
	}
	if err := c.Eviction.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.DirectBelow < 0 {
		errs = append(errs, errors.New("direct_below: negative (set a size in bytes, e.g. 1048576)"))
	}
	if c.StallTimeout < 0 {
		errs = append(errs, errors.New("stall_timeout: negative (set a duration, e.g. 30s, or 0 to wait forever)"))
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.P2P.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("p2p: %w", err))
	}
	if err := c.Mirror.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Warm.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := clientallow.Parse("allowed_clients", c.AllowedClients); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
