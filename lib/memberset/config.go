package memberset

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config names the members and how they are placed and watched. Exactly one of Static
// and DNS is set.
type Config struct {
	// Static lists the members' base URLs (http://host:port).
	Static []string `yaml:"static"`
	// DNS is "host:port": every A record of host is a member at http://<ip>:<port>.
	// The name is re-resolved every dns_interval.
	DNS string `yaml:"dns"`
	// DNSInterval is how often DNS is re-resolved; default 30s.
	DNSInterval time.Duration `yaml:"dns_interval"`
	// Replicas is how many members own each blob: the first replicas members in the
	// blob's rendezvous order. Default 3.
	Replicas int `yaml:"replicas"`
	// HealthInterval is how often every member's GET /health is checked; default 5s.
	// Two failures in a row (failed requests reported by callers count) mark a member
	// unhealthy, one success healthy again.
	HealthInterval time.Duration `yaml:"health_interval"`
}

// DefaultConfig holds the values used for keys the file leaves out.
func DefaultConfig() Config {
	return Config{DNSInterval: 30 * time.Second, Replicas: 3, HealthInterval: 5 * time.Second}
}

// Validate checks c; each message names the key (relative to the block, e.g. origins) and
// the fix.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case len(c.Static) == 0 && c.DNS == "":
		errs = append(errs, errors.New("static, dns: neither set (list the members under static, e.g. static: [http://host1:15200, http://host2:15200], or name them with dns: shoal-origin.example.com:15200)"))
	case len(c.Static) > 0 && c.DNS != "":
		errs = append(errs, errors.New("static, dns: both set (keep one: static lists the members, dns resolves them)"))
	}
	seen := map[string]bool{}
	for i, s := range c.Static {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("static[%d]: %q is not a base URL (use http://host:port)", i, s))
			continue
		}
		if b := base(s); seen[b] {
			errs = append(errs, fmt.Errorf("static[%d]: %q is listed twice (remove the duplicate)", i, s))
		} else {
			seen[b] = true
		}
	}
	if c.DNS != "" {
		host, port, err := net.SplitHostPort(c.DNS)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("dns: %q is not host:port (use e.g. dns: shoal-origin.shoal.svc:15200)", c.DNS))
		}
	}
	if c.DNSInterval <= 0 {
		errs = append(errs, fmt.Errorf("dns_interval: %s is not positive (use e.g. 30s)", c.DNSInterval))
	}
	if c.Replicas < 1 {
		errs = append(errs, fmt.Errorf("replicas: %d is not positive (use e.g. 3)", c.Replicas))
	}
	if c.HealthInterval <= 0 {
		errs = append(errs, fmt.Errorf("health_interval: %s is not positive (use e.g. 5s)", c.HealthInterval))
	}
	return errors.Join(errs...)
}

// base is the canonical form of a member's base URL, as its Client.Addr gives.
func base(s string) string { return strings.TrimRight(s, "/") }
