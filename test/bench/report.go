package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// phase holds one fetch per agent, in agent order.
type phase []fetchResult

// sorted returns the completion times, ascending.
func (p phase) sorted(f func(fetchResult) time.Duration) []time.Duration {
	var ds []time.Duration
	for _, r := range p {
		ds = append(ds, f(r))
	}
	slices.Sort(ds)
	return ds
}

func done(r fetchResult) time.Duration { return r.Done }
func ttfb(r fetchResult) time.Duration { return r.TTFB }

// all is the time until every agent was done (they all start at the same instant).
func (p phase) all() time.Duration {
	ds := p.sorted(done)
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)-1]
}

func median(ds []time.Duration) time.Duration {
	n := len(ds)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

// result is everything one run measured.
type result struct {
	opts              options
	started, finished time.Time
	load              string
	pieceLength       int64
	digest            digest.Digest

	p2p, http phase
	from      []int64  // per agent: where its P2P read starts (-stagger)
	want      []string // per agent: the sha256 its P2P read must report

	cpuP2P, cpuP2PAgents, cpuP2POrigins float64 // CPU seconds during the P2P phase
	cpuHTTPOrigins                      float64 // CPU seconds of the origins during the baseline
	agentRSS                            []int64
	originBytes                         int64 // P2P bytes the origins uploaded (their metric); -1 = unknown
	agentFromOrigins                    int64 // P2P bytes agents received from origins (their metric)
	headBytes                           int64 // first-piece bytes agents read from origins over HTTP
	pulledBytes                         int64 // piece bytes agents pulled from origins over HTTP
	agentBytes                          []agentBytes
	part                                *partitionResult // -partition only
}

// agentBytes are one agent's P2P byte counters after the P2P phase (-1 = unknown).
type agentBytes struct {
	fromOrigins, fromPeers, uploaded, head, pulled, redundant int64
	peers                                                     int64 // peer connections once every agent was done
}

// key names the scenario: a later run of the same scenario replaces its section.
func (r *result) key() string {
	o := r.opts
	k := fmt.Sprintf("agents=%d blob=%d rate=%g origins=%d replicas=%d chunk=%d", o.agents, o.blobSize, o.rate, o.origins, o.replicas, o.chunkSize)
	if o.originWindow > 0 {
		k += fmt.Sprintf(" window=%d", o.originWindow)
	}
	if o.peerWindow > 0 {
		k += fmt.Sprintf(" peerwindow=%d", o.peerWindow)
	}
	if o.maxConns > 0 {
		k += fmt.Sprintf(" conns=%d", o.maxConns)
	}
	if o.stagger {
		k += " stagger"
	}
	if o.partition {
		k += " partition"
	}
	return k
}

// floor is the physical floor: blob size over the link rate (0 when unlimited).
func (r *result) floor() time.Duration {
	if r.opts.rate <= 0 {
		return 0
	}
	return time.Duration(float64(r.opts.blobSize) * 8 / (r.opts.rate * 1e6) * float64(time.Second))
}

func (r *result) vsFloor(d time.Duration) string {
	f := r.floor()
	if f == 0 || d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", d.Seconds()/f.Seconds())
}

// pctLink is the agent's average rate as a percentage of its link rate.
func (r *result) pctLink(d time.Duration) string {
	if r.opts.rate <= 0 || d <= 0 {
		return "-"
	}
	mbit := float64(r.opts.blobSize) * 8 / d.Seconds() / 1e6
	return fmt.Sprintf("%.0f%%", 100*mbit/r.opts.rate)
}

func (r *result) mbps(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f Mbit/s", float64(r.opts.blobSize)*8/d.Seconds()/1e6)
}

func secs(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d < 10*time.Second {
		return fmt.Sprintf("%.3f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func sizeStr(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func rateStr(mbit float64) string {
	if mbit <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g Mbit/s", mbit)
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// machine describes where the run happened.
func machine() string {
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	s := fmt.Sprintf("nproc %d, kernel %s, %s", runtime.NumCPU(), kernel, runtime.Version())
	if model != "" {
		s += ", " + model
	}
	return s
}

// command is the command line that reproduces the run.
func (r *result) command() string {
	var b strings.Builder
	b.WriteString("go run ./test/bench")
	for _, a := range r.opts.args {
		b.WriteString(" ")
		if strings.ContainsAny(a, " \t'\"$") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

func (r *result) markdown() string {
	o := r.opts
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	gib := float64(o.blobSize) * float64(o.agents) / (1 << 30)
	chunk := "Shoal's default"
	if o.chunkSize > 0 {
		chunk = sizeStr(int64(o.chunkSize))
	}

	diag := ""
	if o.stagger {
		diag = " (diagnostic: -stagger)"
	}
	if r.part != nil {
		diag += " (fault: -partition)"
	}
	w("## %s, %s, %s blob, %s per host%s\n\n", plural(o.agents, "agent"), plural(o.origins, "origin"), sizeStr(o.blobSize), rateStr(o.rate), diag)
	w("- Command: `%s`\n", r.command())
	w("- Run: %s, %s; load average at start %s\n", r.started.UTC().Format("2006-01-02 15:04 UTC"),
		r.finished.Sub(r.started).Round(time.Second), r.load)
	w("- Machine: %s\n", machine())
	w("- Scenario: %s, each on its own network namespace; %s, tbf on both directions of every host; blob %s (%d bytes); "+
		"piece length %s (chosen by Shoal from the blob size, not configurable); chunk size %s\n\n",
		plural(o.agents, "agent"), rateStr(o.rate), sizeStr(o.blobSize), o.blobSize, sizeStr(r.pieceLength), chunk)
	if o.stagger {
		w("- **Diagnostic (-stagger)**: agent i reads the blob from offset (i-1)/N of it (piece-aligned) to the end, then the head (two Range requests), so the agents' streaming readers want different pieces first. Not the registry client's behaviour.\n\n")
	}

	p2pDone := r.p2p.sorted(done)
	p2pTTFB := r.p2p.sorted(ttfb)
	w("| measure | value | vs floor |\n| --- | --- | --- |\n")
	floor := r.floor()
	if floor > 0 {
		w("| physical floor: blob size / link rate | %s | 1.00x |\n", secs(floor))
	}
	if len(p2pDone) > 0 {
		w("| P2P: fastest agent | %s | %s |\n", secs(p2pDone[0]), r.vsFloor(p2pDone[0]))
		w("| **P2P: median agent** | **%s** (%s, %s of link) | **%s** |\n", secs(median(p2pDone)), r.mbps(median(p2pDone)), r.pctLink(median(p2pDone)), r.vsFloor(median(p2pDone)))
		w("| **P2P: slowest agent = all agents done** | **%s** (%s of link) | **%s** |\n", secs(p2pDone[len(p2pDone)-1]), r.pctLink(p2pDone[len(p2pDone)-1]), r.vsFloor(p2pDone[len(p2pDone)-1]))
		target := "-"
		if o.rate > 0 {
			pieceTime := time.Duration(float64(r.pieceLength) * 8 / (o.rate * 1e6) * float64(time.Second))
			target = "target " + secs(pieceTime+100*time.Millisecond) + " (one piece time + 100 ms)"
		}
		w("| P2P: time to first byte, median / max | %s / %s | %s |\n", secs(median(p2pTTFB)), secs(p2pTTFB[len(p2pTTFB)-1]), target)
	}
	if r.originBytes >= 0 {
		w("| **bytes served by origins / blob size** | **%.2f**: %.2f of pieces pulled over HTTP + %.2f over BitTorrent (agents counted %.2f) + %.2f of first pieces over HTTP | |\n",
			float64(r.originBytes+r.pulledBytes+r.headBytes)/float64(o.blobSize), float64(r.pulledBytes)/float64(o.blobSize),
			float64(r.originBytes)/float64(o.blobSize), float64(r.agentFromOrigins)/float64(o.blobSize), float64(r.headBytes)/float64(o.blobSize))
	} else {
		w("| bytes served by origins / blob size | unknown (metric missing) | |\n")
	}
	if r.originBytes >= 0 && len(r.agentBytes) > 0 {
		var sent, useful int64 = r.originBytes + r.pulledBytes, 0
		known := true
		for _, ab := range r.agentBytes {
			if ab.uploaded < 0 || ab.fromOrigins < 0 || ab.fromPeers < 0 {
				known = false
			}
			sent += ab.uploaded
			useful += ab.fromOrigins + ab.fromPeers + max(ab.pulled, 0)
		}
		if known && sent > 0 {
			var redundant int64
			for _, ab := range r.agentBytes {
				redundant += max(ab.redundant, 0)
			}
			w("| P2P bytes sent (origins + agents) / useful bytes received | %.2f (%.0f%% of what was sent was not needed; agents received %.0f%% of the blob each, on average, that another peer had delivered first) | |\n",
				float64(sent)/float64(useful), 100*float64(sent-useful)/float64(sent), 100*float64(redundant)/float64(len(r.agentBytes))/float64(o.blobSize))
		}
	}
	w("| CPU seconds per GiB delivered, all Shoal processes | %.2f (agents %.2f, origins %.2f; %.1f CPU-s for %.2f GiB) | |\n",
		r.cpuP2P/gib, r.cpuP2PAgents/gib, r.cpuP2POrigins/gib, r.cpuP2P, gib)
	if len(r.agentRSS) > 0 {
		w("| agent peak RSS, max | %s | |\n", mib(slices.Max(r.agentRSS)))
	}
	if len(r.http) > 0 {
		hd := r.http.sorted(done)
		w("| HTTP baseline (no P2P): median agent | %s (%s of link) | %s |\n", secs(median(hd)), r.pctLink(median(hd)), r.vsFloor(median(hd)))
		w("| HTTP baseline: slowest agent = all done | %s | %s |\n", secs(hd[len(hd)-1]), r.vsFloor(hd[len(hd)-1]))
		w("| HTTP baseline: origin CPU seconds per GiB delivered | %.2f | |\n", r.cpuHTTPOrigins/gib)
	}

	w("\nPer agent (all start at the same instant; times from that instant):\n\n")
	w("| agent | P2P first byte | P2P done | P2P %% of link | sha256 ok |")
	if len(r.http) > 0 {
		w(" HTTP first byte | HTTP done | HTTP %% of link | sha256 ok |")
	}
	w(" MiB from origins (HTTP + BitTorrent) / peers, uploaded | peers connected at the end |")
	w("\n| --- | --- | --- | --- | --- |")
	if len(r.http) > 0 {
		w(" --- | --- | --- | --- |")
	}
	w(" --- | --- |")
	w("\n")
	ok := func(f fetchResult, want string) string { return okStr(f, want, o.blobSize) }
	for i, f := range r.p2p {
		w("| agent%d | %s | %s | %s | %s |", i+1, secs(f.TTFB), secs(f.Done), r.pctLink(f.Done), ok(f, r.want[i]))
		if i < len(r.http) {
			h := r.http[i]
			w(" %s | %s | %s | %s |", secs(h.TTFB), secs(h.Done), r.pctLink(h.Done), ok(h, r.digest.String()))
		}
		if i < len(r.agentBytes) {
			ab := r.agentBytes[i]
			w(" %s + %s / %s, %s | %d |", mibN(ab.pulled), mibN(ab.fromOrigins), mibN(ab.fromPeers), mibN(ab.uploaded), ab.peers)
		} else {
			w(" - | - |")
		}
		w("\n")
	}
	if r.part != nil {
		b.WriteString(r.part.markdown(r))
	}
	return b.String()
}

// okStr is the sha256 column: whether f is the whole blob with the sums want.
func okStr(f fetchResult, want string, size int64) string {
	if f.Err != "" {
		return "error: " + strings.ReplaceAll(f.Err, "|", "/")
	}
	if f.SHA == want && f.Bytes == size {
		return "yes"
	}
	return "**NO**"
}

// markdown is the -partition part of the results: both pulls per agent, with what
// came from origins, from peers and from the other group.
func (pr *partitionResult) markdown(r *result) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	var a, bb []string
	for i, g := range pr.groups {
		if g == "A" {
			a = append(a, fmt.Sprintf("agent%d", i+1))
		} else {
			bb = append(bb, fmt.Sprintf("agent%d", i+1))
		}
	}
	w("\n**Fault (-partition)**: group A (%s) and group B (%s) can't reach each other (a prohibit route in each agent's "+
		"namespace to every agent of the other group) while every agent pulls the first blob (the P2P rows above); the "+
		"origins and the tracker stay reachable. Then the routes are removed and every agent pulls a second blob at once. "+
		"Bytes from the other group are counted by count-only iptables rules in each agent's namespace (all packets from "+
		"the other group's agents; BitTorrent = to or from the peer port), counters by each agent's metrics, over each pull.\n\n",
		strings.Join(a, ", "), strings.Join(bb, ", "))

	sum := func(abs []agentBytes, f func(agentBytes) int64) string {
		var n int64
		for _, ab := range abs {
			if f(ab) < 0 {
				return "?"
			}
			n += f(ab)
		}
		return mibN(n)
	}
	crossSum := func(cs []crossCounts, f func(crossCounts) int64) string {
		var n int64
		for _, c := range cs {
			if f(c) < 0 {
				return "unknown (no iptables)"
			}
			n += f(c)
		}
		return strconv.FormatInt(n, 10)
	}
	origins := func(ab agentBytes) int64 {
		if ab.pulled < 0 || ab.fromOrigins < 0 {
			return -1
		}
		return ab.pulled + ab.fromOrigins + max(ab.head, 0)
	}
	peers := func(ab agentBytes) int64 { return ab.fromPeers }
	all := func(c crossCounts) int64 { return c.all }
	bt := func(c crossCounts) int64 { return c.bt }
	w("| pull | all agents done | MiB from origins (HTTP + BitTorrent + first pieces) / from peers, all agents | bytes from the other group, all agents (BitTorrent) |\n| --- | --- | --- | --- |\n")
	w("| cut | %s | %s / %s | %s (%s) |\n", secs(r.p2p.all()), sum(r.agentBytes, origins), sum(r.agentBytes, peers), crossSum(pr.cut, all), crossSum(pr.cut, bt))
	w("| healed | %s | %s / %s | %s (%s) |\n\n", secs(pr.healed.all()), sum(pr.healedBytes, origins), sum(pr.healedBytes, peers), crossSum(pr.healedCross, all), crossSum(pr.healedCross, bt))

	w("| agent | group | cut: done | cut: sha256 ok | cut: bytes from the other group | healed: done | healed: sha256 ok | healed: MiB from origins / peers | healed: MiB from the other group (BitTorrent) |\n")
	w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, f := range r.p2p {
		h := pr.healed[i]
		ab := pr.healedBytes[i]
		w("| agent%d | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n", i+1, pr.groups[i], secs(f.Done), okStr(f, r.want[i], r.opts.blobSize),
			crossStr(pr.cut[i].all), secs(h.Done), okStr(h, pr.want[i], r.opts.blobSize), mibN(origins(ab)), mibN(ab.fromPeers), mibN(pr.healedCross[i].bt))
	}
	return b.String()
}

func crossStr(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

func mibN(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f", float64(n)/(1<<20))
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

const docHeader = `# Shoal benchmarks

Sections between bench markers are written by ` + "`go run ./test/bench`" + ` (` + "`make bench`" + `,
` + "`make bench-smoke`" + `); a run replaces the section of its own scenario and leaves the rest of
this file alone.
`

// writeSection replaces the section of the scenario key in the markdown file at path,
// or appends it; text outside the markers is kept.
func writeSection(path, key, md string) error {
	begin := "<!-- bench:begin " + key + " -->"
	end := "<!-- bench:end " + key + " -->"
	section := begin + "\n" + md + end + "\n"
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		old, err = []byte(docHeader), nil
	}
	if err != nil {
		return err
	}
	s := string(old)
	i := strings.Index(s, begin)
	j := strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + section + strings.TrimPrefix(s[j+len(end):], "\n")
	} else {
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += "\n" + section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
