package p2p

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults for the keys a Config leaves at zero.
const (
	DefaultChunkSize          = 256 << 10
	DefaultMaxConnsPerTorrent = 50
	DefaultSeedIdle           = 10 * time.Minute
	DefaultOriginWindowPieces = 1
	// DefaultPeerWindowChunks is the default of peer_window_bytes in chunks: two keep a
	// request in flight while the other's chunk arrives.
	DefaultPeerWindowChunks = 2
	// maxPeerWindowBytes bounds peer_window_bytes: far past any link's bandwidth-delay
	// product, and the library's own queue (1024 requests) caps it anyway.
	maxPeerWindowBytes = 256 << 20
	// maxOriginWindowPieces bounds origin_window_pieces: 64 pieces is 1 GiB at the
	// largest piece length, far past any use.
	maxOriginWindowPieces = 64
)

// Bounds of chunk_size: the BitTorrent norm, and the client's per-connection buffer
// for peer requests (ClientConfig.MaxAllocPeerRequestDataPerConn).
const (
	minChunkSize = 16 << 10
	maxChunkSize = 1 << 20
)

// Config configures the P2P engine.
type Config struct {
	// ListenIP is this host's IPv4 address: the P2P port binds it, outgoing peer
	// connections are dialled from it, and it is announced to the tracker. Required.
	// Peers that send bad data are banned by IP, for good, so processes sharing a
	// host must each have their own IP (127.0.0.x in tests).
	ListenIP string `yaml:"listen_ip"`
	// ListenPort is the TCP port peers connect to; 0 picks a free one.
	ListenPort int `yaml:"listen_port"`
	// ChunkSize is the size of block requests between peers, in bytes; default 256 KiB
	// (16 KiB in stock BitTorrent: 256 KiB was the biggest single speed-up measured).
	// 1 MiB was ~12% faster in the 100 Mbit/s flash crowd of docs/BENCHMARKS.md, with
	// less from the origin, but raised agent RSS from ~80 to ~220 MiB.
	ChunkSize int `yaml:"chunk_size"`
	// OriginWindowPieces is how many pieces this host fetches from origins at once:
	// ranged GETs when it pulls from them over HTTP (Fetch with OriginRanges), else
	// pieces' worth of chunk requests outstanding at one origin; default 1. An origin
	// serves a whole flash crowd: with more pieces per agent, or the library's own
	// request limit (hundreds of chunks), requests waited at the origin while other
	// agents fetched the same pieces, and the origin sent more of the blob
	// (docs/BENCHMARKS.md). Whole pieces, because BitTorrent windows cut mid-piece
	// (3, 5, 6 chunks of a 4-chunk piece) left pieces unfinished for tens of seconds
	// and stalled the swarm.
	OriginWindowPieces int `yaml:"origin_window_pieces"`
	// PeerWindowBytes is how much this host asks of each agent peer at once, in chunk
	// requests rounded up (at least one); default two chunks (512 KiB at 256 KiB). The
	// library otherwise queues up to hundreds of chunks at a peer: a chunk then waits
	// behind the others, a piece reaches the swarm later, and a request moved to a
	// faster peer brings its chunk twice. In the 10-agent flash crowd of
	// docs/BENCHMARKS.md the median agent took 1.19x the floor with two chunks and
	// 1.22x with the library's queue; one chunk (1.18x) slowed a pair of agents on
	// unlimited links by 13%. Origins get OriginWindowPieces instead.
	PeerWindowBytes int64 `yaml:"peer_window_bytes"`
	// MaxConnsPerTorrent caps established peer connections per blob; default 50.
	// Origins serve many agents and want more (200).
	MaxConnsPerTorrent int `yaml:"max_conns_per_torrent"`
	// SeedIdle is how long a blob stays in the swarm with no peer connected, no reader
	// open and no Seed or Fetch call; default 10m. It is then dropped from the client
	// (not from the store) and added again on demand, without rehashing.
	SeedIdle time.Duration `yaml:"seed_idle"`
}

// Validate checks the config; zero values stand for defaults. Each message names the
// key and the fix.
func (c *Config) Validate() error {
	var errs []error
	if err := checkListenIP(c.ListenIP); err != nil {
		errs = append(errs, err)
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listen_port: %d out of range (use 1-65535, or 0 for any free port)", c.ListenPort))
	}
	if c.ChunkSize != 0 && (c.ChunkSize < minChunkSize || c.ChunkSize > maxChunkSize) {
		errs = append(errs, fmt.Errorf("chunk_size: %d out of range (use %d-%d bytes; 262144 is a good value)", c.ChunkSize, minChunkSize, maxChunkSize))
	}
	if c.OriginWindowPieces < 0 || c.OriginWindowPieces > maxOriginWindowPieces {
		errs = append(errs, fmt.Errorf("origin_window_pieces: %d out of range (use 1-%d, or 0 for the default %d)", c.OriginWindowPieces, maxOriginWindowPieces, DefaultOriginWindowPieces))
	}
	if c.PeerWindowBytes < 0 || c.PeerWindowBytes > maxPeerWindowBytes {
		errs = append(errs, fmt.Errorf("peer_window_bytes: %d out of range (use 1-%d bytes, or 0 for the default of %d chunks)", c.PeerWindowBytes, int64(maxPeerWindowBytes), DefaultPeerWindowChunks))
	}
	if c.MaxConnsPerTorrent < 0 {
		errs = append(errs, fmt.Errorf("max_conns_per_torrent: %d is negative (use e.g. 50 on agents, 200 on origins)", c.MaxConnsPerTorrent))
	}
	if c.SeedIdle < 0 {
		errs = append(errs, fmt.Errorf("seed_idle: %s is negative (use a duration such as 10m)", c.SeedIdle))
	}
	return errors.Join(errs...)
}

func checkListenIP(s string) error {
	if s == "" {
		return errors.New("listen_ip: empty (set listen_ip to this host's IPv4 address, e.g. 10.0.0.21, or pass --peer-ip)")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return fmt.Errorf("listen_ip: %q is not an IPv4 address (use e.g. 10.0.0.21)", s)
	}
	if ip.IsUnspecified() {
		return fmt.Errorf("listen_ip: %q can't be announced to peers (use this host's own address)", s)
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.MaxConnsPerTorrent == 0 {
		c.MaxConnsPerTorrent = DefaultMaxConnsPerTorrent
	}
	if c.SeedIdle == 0 {
		c.SeedIdle = DefaultSeedIdle
	}
	if c.OriginWindowPieces == 0 {
		c.OriginWindowPieces = DefaultOriginWindowPieces
	}
	if c.PeerWindowBytes == 0 {
		c.PeerWindowBytes = DefaultPeerWindowChunks * int64(c.ChunkSize)
	}
}
