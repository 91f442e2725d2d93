package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// The -partition scenario (fault: a network partition between two groups of agents).
// Group A is the first half of the agents, group B the rest. The cut is a prohibit
// route to every agent of the other group inside each agent's namespace, so a packet
// towards the other side never leaves the host (connect fails at once, as behind a
// firewall that rejects) while the origins, the tracker and the harness (the bridge
// address) stay reachable. netem and firewall state of the root namespace are not
// needed; healing deletes the routes.
//
// What crossed is measured, not assumed: when iptables is there, each agent's
// namespace gets count-only INPUT rules (no target) for packets from every agent of
// the other group, all traffic and BitTorrent traffic (to or from the peer port)
// apart. The namespaces take the rules with them when the testbed goes.

// crossComment tags the accounting rules; crossBTComment those on the peer port.
const (
	crossComment   = "shoal-bench-cross"
	crossBTComment = "shoal-bench-cross-bt"
)

// partition is the split of the agent hosts into two groups.
type partition struct {
	a, b     []host
	counting bool // accounting rules are in place
	logf     func(format string, args ...any)
}

func newPartition(agents []host, logf func(string, ...any)) *partition {
	k := len(agents) / 2
	return &partition{a: agents[:k], b: agents[k:], logf: logf}
}

func (p *partition) inA(h host) bool {
	for _, x := range p.a {
		if x.name == h.name {
			return true
		}
	}
	return false
}

// other returns the hosts of the group h is not in.
func (p *partition) other(h host) []host {
	if p.inA(h) {
		return p.b
	}
	return p.a
}

// group names h's group.
func (p *partition) group(h host) string {
	if p.inA(h) {
		return "A"
	}
	return "B"
}

func (p *partition) hosts() []host { return append(append([]host{}, p.a...), p.b...) }

// installCounters puts the count-only rules in every agent namespace. Without iptables
// the run goes on with the routes alone, and the bytes across are reported unknown.
func (p *partition) installCounters() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		p.logf("iptables not found: bytes across the partition are not measured, only the pulls checked")
		return nil
	}
	for _, h := range p.hosts() {
		for _, o := range p.other(h) {
			rules := [][]string{
				{"-s", o.ip, "-m", "comment", "--comment", crossComment},
				{"-s", o.ip, "-p", "tcp", "--sport", strconv.Itoa(agentPeerPort), "-m", "comment", "--comment", crossBTComment},
				{"-s", o.ip, "-p", "tcp", "--dport", strconv.Itoa(agentPeerPort), "-m", "comment", "--comment", crossBTComment},
			}
			for _, r := range rules {
				if err := sh("ip", append([]string{"netns", "exec", h.ns, "iptables", "-A", "INPUT"}, r...)...); err != nil {
					return fmt.Errorf("partition counters on %s: %w", h.name, err)
				}
			}
		}
	}
	p.counting = true
	return nil
}

// cut adds, on every agent host, a prohibit route to each agent of the other group.
func (p *partition) cut() error {
	return p.routes("add")
}

// heal removes the routes cut added.
func (p *partition) heal() error {
	return p.routes("del")
}

func (p *partition) routes(op string) error {
	for _, h := range p.hosts() {
		for _, o := range p.other(h) {
			if err := sh("ip", "-n", h.ns, "route", op, "prohibit", o.ip+"/32"); err != nil {
				return fmt.Errorf("partition %s on %s: %w", op, h.name, err)
			}
		}
	}
	return nil
}

// crossCounts are the bytes one agent host received from the other group's agents.
type crossCounts struct {
	all, bt int64 // -1 = unknown
}

func (c crossCounts) minus(d crossCounts) crossCounts {
	if c.all < 0 || d.all < 0 {
		return crossCounts{-1, -1}
	}
	return crossCounts{c.all - d.all, c.bt - d.bt}
}

// counts reads the accounting rules of every agent host, in agent order.
func (p *partition) counts() ([]crossCounts, error) {
	out := make([]crossCounts, 0, len(p.a)+len(p.b))
	for _, h := range p.hosts() {
		if !p.counting {
			out = append(out, crossCounts{-1, -1})
			continue
		}
		c, err := readCounters(h.ns)
		if err != nil {
			return nil, fmt.Errorf("partition counters on %s: %w", h.name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// readCounters sums the bytes column of the tagged INPUT rules of namespace ns.
func readCounters(ns string) (crossCounts, error) {
	b, err := exec.Command("ip", "netns", "exec", ns, "iptables", "-nvxL", "INPUT").Output()
	if err != nil {
		return crossCounts{}, fmt.Errorf("iptables -nvxL INPUT: %w", err)
	}
	var c crossCounts
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue // a header
		}
		switch {
		case strings.Contains(line, "/* "+crossBTComment+" */"):
			c.bt += n
		case strings.Contains(line, "/* "+crossComment+" */"):
			c.all += n
		}
	}
	return c, nil
}

// checkCut proves the cut is in place: from an agent host of group A the agent of
// group B does not answer, while the tracker and the origins still do.
func (p *partition) checkCut(ctx context.Context, trackerURL string, originURLs []string) error {
	from, to := p.a[0], p.b[0]
	for _, u := range append([]string{trackerURL}, originURLs...) {
		if err := reach(ctx, from, u+"/health"); err != nil {
			return fmt.Errorf("partition: %s must still reach %s: %w", from.name, u, err)
		}
	}
	if err := reach(ctx, from, agentHealthURL(to)); err == nil {
		return fmt.Errorf("partition: %s still reaches %s's agent across the cut", from.name, to.name)
	}
	return nil
}

// checkHealed proves the groups reach each other again, both ways.
func (p *partition) checkHealed(ctx context.Context) error {
	for _, pair := range [][2]host{{p.a[0], p.b[0]}, {p.b[len(p.b)-1], p.a[len(p.a)-1]}} {
		if err := reach(ctx, pair[0], agentHealthURL(pair[1])); err != nil {
			return fmt.Errorf("heal: %s can't reach %s's agent: %w", pair[0].name, pair[1].name, err)
		}
	}
	return nil
}

func agentHealthURL(h host) string { return fmt.Sprintf("http://%s:%d/health", h.ip, agentPort) }

// reach GETs url from host h's namespace and fails unless it answered 200.
func reach(ctx context.Context, h host, url string) error {
	w, err := spawnFetch(ctx, h.ns, url, 0, time.Now(), 5*time.Second)
	if err != nil {
		return err
	}
	<-w.done
	if w.res.Err != "" {
		return fmt.Errorf("%s", w.res.Err)
	}
	return nil
}

// partitionResult is what the -partition scenario measured on top of the P2P phase
// (which, in this scenario, is the pull across the cut).
type partitionResult struct {
	groups []string      // per agent: "A" or "B"
	digest digest.Digest // the blob pulled after the heal
	want   []string      // per agent: the sums its read of that blob must report
	cut    []crossCounts // per agent: bytes from the other group, cut up to the end of the first pull
	healed phase         // the pull after the heal
	// Over the pull after the heal only: bytes from the other group, the agents'
	// counters and the origins' BitTorrent upload (-1 = unknown).
	healedCross  []crossCounts
	healedBytes  []agentBytes
	healedOrigin int64
}

// healAndPull reads what crossed the cut during the first pull, heals it, checks both
// sides reach each other, and has every agent pull the second blob at once.
func healAndPull(ctx context.Context, o options, r *result, part *partition, agentHosts []host, procs []*proc) error {
	var err error
	pr := r.part
	if pr.cut, err = part.counts(); err != nil {
		return err
	}
	if err := part.heal(); err != nil {
		return err
	}
	if err := part.checkHealed(ctx); err != nil {
		return err
	}
	logf("partition healed: %s and %s reach each other again", part.a[0].name, part.b[0].name)
	// Deltas from here: the heal check's own requests are not the swarm's.
	cross0, err := part.counts()
	if err != nil {
		return err
	}
	agents, origins := procsOf(procs, "agent"), procsOf(procs, "origin")
	bytes0, origin0 := scrapeAgents(ctx, agents), scrapeOrigins(ctx, origins)

	urls := make([]string, len(agentHosts))
	for i := range urls {
		urls[i] = blobURL(pr.digest)
	}
	logf("after the heal: %d agents GET a second blob from their registries at once", o.agents)
	if pr.healed, err = fetchAll(ctx, agentHosts, urls, r.from, procs, o.timeout(o.agents)); err != nil {
		return err
	}
	time.Sleep(2500 * time.Millisecond) // counters are sampled and reported every second
	cross1, err := part.counts()
	if err != nil {
		return err
	}
	for i := range cross1 {
		pr.healedCross = append(pr.healedCross, cross1[i].minus(cross0[i]))
	}
	for i, ab := range scrapeAgents(ctx, agents) {
		pr.healedBytes = append(pr.healedBytes, ab.minus(bytes0[i]))
	}
	pr.healedOrigin = -1
	if o1 := scrapeOrigins(ctx, origins); o1 >= 0 && origin0 >= 0 {
		pr.healedOrigin = o1 - origin0
	}
	logf("after the heal: all %d agents in %s", o.agents, pr.healed.all().Round(time.Millisecond))
	return nil
}

// check fails the scenario when a pull after the heal is wrong, when anything crossed
// the cut, or when less than a piece of BitTorrent traffic crossed once it healed: the
// swarm did not re-form (a handshake alone would be a connection, not a swarm).
func (pr *partitionResult) check(blobSize, pieceLength int64) []error {
	var errs []error
	for i, f := range pr.healed {
		switch {
		case f.Err != "":
			errs = append(errs, fmt.Errorf("after the heal agent%d: %s", i+1, f.Err))
		case f.SHA != pr.want[i] || f.Bytes != blobSize:
			errs = append(errs, fmt.Errorf("after the heal agent%d: got %d bytes hashing to %s, want %d bytes of %s", i+1, f.Bytes, f.SHA, blobSize, pr.want[i]))
		}
	}
	var healedBT int64
	for i := range pr.cut {
		if pr.cut[i].all > 0 {
			errs = append(errs, fmt.Errorf("partition agent%d (group %s): received %d bytes from the other group across the cut", i+1, pr.groups[i], pr.cut[i].all))
		}
		healedBT += max(pr.healedCross[i].bt, 0)
	}
	if pr.cut[0].all >= 0 && healedBT < pieceLength {
		errs = append(errs, fmt.Errorf("after the heal: %d bytes of BitTorrent traffic between the groups, less than a piece (%d): the swarm did not re-form across the former partition", healedBT, pieceLength))
	}
	return errs
}

func (ab agentBytes) minus(b agentBytes) agentBytes {
	d := func(x, y int64) int64 {
		if x < 0 || y < 0 {
			return -1
		}
		return x - y
	}
	return agentBytes{
		fromOrigins: d(ab.fromOrigins, b.fromOrigins), fromPeers: d(ab.fromPeers, b.fromPeers),
		uploaded: d(ab.uploaded, b.uploaded), head: d(ab.head, b.head), pulled: d(ab.pulled, b.pulled),
		redundant: d(ab.redundant, b.redundant), peers: ab.peers, // a gauge: its value at the end
	}
}

func hostNames(hs []host) string {
	var names []string
	for _, h := range hs {
		names = append(names, "agent"+strings.TrimPrefix(h.name, "a"))
	}
	return strings.Join(names, ", ")
}
