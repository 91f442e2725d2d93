package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/logging"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/tlsconfig"
	"github.com/shoal-p2p/shoal/lib/warmfeed"
)

// Config is shoal-tracker's configuration (example: config/tracker.yaml).
type Config struct {
	// Listen is the HTTP address of the tracker API (metainfo, announce).
	Listen string `yaml:"listen"`
	// Log selects level and format.
	Log logging.Config `yaml:"log"`
	// Debug turns on diagnostics served on the listen address (pprof).
	Debug httpserver.Debug `yaml:"debug"`
	// HTTP bounds how long and how much a client may take to send a request.
	HTTP httpserver.Config `yaml:"http"`
	// TLS is the tls block shared by every binary (lib/tlsconfig): this listener's
	// certificate, and the client side of calls to the other components.
	TLS tlsconfig.Config `yaml:"tls"`
	// Origins is the origin cluster. Metainfo is asked of a blob's origins in its
	// placement order (owners first); the one that answers starts seeding the blob and
	// is handed out to its swarm.
	Origins originset.Config `yaml:"origins"`
	// AnnounceInterval is how often a peer still downloading is told to announce;
	// whole seconds, default 3s.
	AnnounceInterval time.Duration `yaml:"announce_interval"`
	// SeederInterval is the interval told to a peer that announces complete; default 60s.
	SeederInterval time.Duration `yaml:"seeder_interval"`
	// PeerTTL is how long a downloading peer stays in its swarm without announcing; a
	// complete peer is kept for seeder_interval + peer_ttl. Default 10s.
	PeerTTL time.Duration `yaml:"peer_ttl"`
	// MaxPeers bounds one hand-out, origins included; default 50, at most 1000 (the
	// agents read 1 MiB of announce reply: about 7,000 peers). An announce asks for no
	// number; a numwant a client adds is ignored.
	MaxPeers int `yaml:"max_peers"`
	// Warm is the warm feed (lib/warmfeed) through which preheats of scope all_peers
	// reach the agents.
	Warm WarmConfig `yaml:"warm"`
}

// WarmConfig is the tracker's warm feed block.
type WarmConfig struct {
	// AgentTTL is how long an agent that stopped polling the feed still counts as live
	// (a preheat of scope all_peers waits for every live agent); default 30s, above the
	// agents' warm.poll_interval (default 5s).
	AgentTTL time.Duration `yaml:"agent_ttl"`
}

// maxMaxPeers bounds max_peers: a hand-out of 1000 IPv6 peers as objects is about
// 150 KiB, well inside the 1 MiB of reply lib/trackerclient reads.
const maxMaxPeers = 1000

// DefaultConfig holds the values used for keys the file leaves out.
func DefaultConfig() Config {
	return Config{
		HTTP:             httpserver.DefaultConfig(),
		Listen:           "0.0.0.0:15300",
		Origins:          originset.DefaultConfig(),
		AnnounceInterval: 3 * time.Second,
		SeederInterval:   60 * time.Second,
		PeerTTL:          10 * time.Second,
		MaxPeers:         50,
		Warm:             WarmConfig{AgentTTL: warmfeed.DefaultAgentTTL},
	}
}

// Validate checks the whole config; each message names the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: empty (set listen: 0.0.0.0:15300 or pass --listen)"))
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
	if err := c.Origins.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("origins: %w", err))
	}
	if c.AnnounceInterval < time.Second || c.AnnounceInterval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("announce_interval: %s is not a whole number of seconds of at least 1s (use e.g. 3s)", c.AnnounceInterval))
	}
	if c.SeederInterval < c.AnnounceInterval || c.SeederInterval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("seeder_interval: %s must be whole seconds and at least announce_interval %s (use e.g. 60s)", c.SeederInterval, c.AnnounceInterval))
	}
	if c.PeerTTL <= c.AnnounceInterval {
		errs = append(errs, fmt.Errorf("peer_ttl: %s must exceed announce_interval %s, or peers vanish between announces (use about 3x, e.g. 10s)", c.PeerTTL, c.AnnounceInterval))
	}
	if c.MaxPeers < 1 || c.MaxPeers > maxMaxPeers {
		errs = append(errs, fmt.Errorf("max_peers: %d is not in 1..%d, the most an agent's announce reply holds (use e.g. 50)", c.MaxPeers, maxMaxPeers))
	}
	if c.Warm.AgentTTL < time.Second {
		errs = append(errs, fmt.Errorf("warm.agent_ttl: %s is below 1s (use about 5x the agents' warm.poll_interval, e.g. 30s)", c.Warm.AgentTTL))
	}
	return errors.Join(errs...)
}
