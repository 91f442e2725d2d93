package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Scrape reads GET http://<addr>/metrics and returns each sample keyed by its series,
// e.g. `shoal_agent_p2p_bytes_downloaded{source="peer"}`.
func Scrape(ctx context.Context, addr string) (map[string]float64, error) {
	return ScrapeWith(ctx, http.DefaultClient, "http://"+addr)
}

// ScrapeWith is Scrape of base (http://host:port or https://...) through hc, for a
// secured cluster (Cluster.Security.Client).
func ScrapeWith(ctx context.Context, hc *http.Client, base string) (map[string]float64, error) {
	addr := base
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Sum adds every series of metric name whose labels contain all of the given
// `key="value"` pairs.
func Sum(samples map[string]float64, name string, labels ...string) float64 {
	var total float64
	for series, v := range samples {
		metric, rest, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if ok {
			total += v
		}
	}
	return total
}
