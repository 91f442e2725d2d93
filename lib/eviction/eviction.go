// Package eviction decides which cached blobs to delete and runs that decision
// periodically. Plan is pure (entries and time in, digests out); Runner does the I/O.
//
// A blob goes when it was not read for TTI, when it is older than TTL, or, while the
// blobs' total size is above the high watermark, least recently used first until it
// is at or below the low watermark. Only Shoal's own blobs count towards the total,
// and a pinned blob (awaiting write-back or replication) never goes.
package eviction

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/blobstore"
)

// Config sets the eviction policy; zero values disable that rule.
type Config struct {
	// TTI evicts a blob not read for this long (time to idle).
	TTI time.Duration `yaml:"tti"`
	// TTL evicts a blob this long after it was stored (time to live).
	TTL time.Duration `yaml:"ttl"`
	// Capacity is the byte budget of the cache; the watermarks are fractions of it.
	Capacity int64 `yaml:"capacity"`
	// HighWatermark starts size-based eviction when the blobs exceed this fraction of
	// Capacity (default 0.9) ...
	HighWatermark float64 `yaml:"high_watermark"`
	// LowWatermark ... and evicts down to this fraction (default 0.8).
	LowWatermark float64 `yaml:"low_watermark"`
	// Interval is how often the cache is checked; default 1m.
	Interval time.Duration `yaml:"interval"`
}

// WithDefaults fills the zero fields that have defaults.
func (c Config) WithDefaults() Config {
	if c.HighWatermark == 0 {
		c.HighWatermark = 0.9
	}
	if c.LowWatermark == 0 {
		c.LowWatermark = 0.8
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	return c
}

// Validate checks the config; messages name the key (under eviction.) and the fix.
func (c Config) Validate() error {
	var errs []error
	if c.TTI < 0 || c.TTL < 0 || c.Interval < 0 {
		errs = append(errs, errors.New("eviction: tti, ttl and interval must not be negative (use 0 to disable)"))
	}
	if c.Capacity < 0 {
		errs = append(errs, errors.New("eviction.capacity: negative (set a byte budget, e.g. 107374182400, or 0 to disable)"))
	}
	c = c.WithDefaults()
	if !(c.LowWatermark > 0 && c.LowWatermark <= c.HighWatermark && c.HighWatermark <= 1) {
		errs = append(errs, fmt.Errorf("eviction: need 0 < low_watermark (%v) <= high_watermark (%v) <= 1", c.LowWatermark, c.HighWatermark))
	}
	return errors.Join(errs...)
}

// Candidate is a cached blob as Plan sees it.
type Candidate struct {
	blobstore.Entry
	Pinned bool
}

// Plan returns the blobs to evict at now, in eviction order.
func Plan(now time.Time, cands []Candidate, c Config) []digest.Digest {
	c = c.WithDefaults()
	var out []digest.Digest
	var keep []Candidate
	var total int64
	for _, e := range cands {
		total += e.Size
		expired := (c.TTI > 0 && now.Sub(e.LastAccess) > c.TTI) || (c.TTL > 0 && now.Sub(e.Created) > c.TTL)
		if expired && !e.Pinned {
			out = append(out, e.Digest)
			total -= e.Size
			continue
		}
		keep = append(keep, e)
	}
	if c.Capacity <= 0 || float64(total) <= c.HighWatermark*float64(c.Capacity) {
		return out
	}
	sort.SliceStable(keep, func(i, j int) bool { return keep[i].LastAccess.Before(keep[j].LastAccess) })
	low := c.LowWatermark * float64(c.Capacity)
	for _, e := range keep {
		if float64(total) <= low {
			break
		}
		if e.Pinned {
			continue
		}
		out = append(out, e.Digest)
		total -= e.Size
	}
	return out
}
