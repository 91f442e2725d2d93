package p2p

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		key  string // "" if valid
	}{
		{"minimal", Config{ListenIP: "10.0.0.21"}, ""},
		{"full", Config{ListenIP: "127.0.0.2", ListenPort: 16001, ChunkSize: 256 << 10, MaxConnsPerTorrent: 200, SeedIdle: time.Minute}, ""},
		{"no ip", Config{}, "listen_ip"},
		{"hostname", Config{ListenIP: "agent-1"}, "listen_ip"},
		{"ipv6", Config{ListenIP: "::1"}, "listen_ip"},
		{"unspecified", Config{ListenIP: "0.0.0.0"}, "listen_ip"},
		{"port", Config{ListenIP: "10.0.0.1", ListenPort: 70000}, "listen_port"},
		{"small chunk", Config{ListenIP: "10.0.0.1", ChunkSize: 1024}, "chunk_size"},
		{"huge chunk", Config{ListenIP: "10.0.0.1", ChunkSize: 4 << 20}, "chunk_size"},
		{"conns", Config{ListenIP: "10.0.0.1", MaxConnsPerTorrent: -1}, "max_conns_per_torrent"},
		{"idle", Config{ListenIP: "10.0.0.1", SeedIdle: -time.Second}, "seed_idle"},
		{"window", Config{ListenIP: "10.0.0.1", OriginWindowPieces: 2}, ""},
		{"negative window", Config{ListenIP: "10.0.0.1", OriginWindowPieces: -1}, "origin_window_pieces"},
		{"huge window", Config{ListenIP: "10.0.0.1", OriginWindowPieces: 65}, "origin_window_pieces"},
		{"peer window", Config{ListenIP: "10.0.0.1", PeerWindowBytes: 1}, ""},
		{"negative peer window", Config{ListenIP: "10.0.0.1", PeerWindowBytes: -1}, "peer_window_bytes"},
		{"huge peer window", Config{ListenIP: "10.0.0.1", PeerWindowBytes: 1 << 30}, "peer_window_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.key == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.key != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.key+":")):
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.key)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{ListenIP: "10.0.0.1"}
	c.applyDefaults()
	if c.ChunkSize != 256<<10 || c.MaxConnsPerTorrent != 50 || c.SeedIdle != 10*time.Minute || c.OriginWindowPieces != 1 || c.PeerWindowBytes != 512<<10 {
		t.Fatalf("defaults: %+v", c)
	}
	// The peer window defaults to two chunks of whatever size they are.
	c = Config{ListenIP: "10.0.0.1", ChunkSize: 1 << 20}
	c.applyDefaults()
	if c.PeerWindowBytes != 2<<20 {
		t.Fatalf("peer window with 1 MiB chunks: %d", c.PeerWindowBytes)
	}
}

func TestChunksIn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bytes int64
		chunk int
		want  int
	}{
		{512 << 10, 256 << 10, 2},
		{512<<10 + 1, 256 << 10, 3},
		{1, 256 << 10, 1},
		{512 << 10, 16 << 10, 32},
		{512 << 10, 1 << 20, 1},
	} {
		if got := chunksIn(tc.bytes, tc.chunk); got != tc.want {
			t.Errorf("chunksIn(%d, %d) = %d, want %d", tc.bytes, tc.chunk, got, tc.want)
		}
	}
}
