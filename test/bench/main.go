// Command bench measures how fast a Shoal swarm delivers one blob to N agents, each on
// a host of its own (`make bench`, `make bench-smoke`; results in docs/BENCHMARKS.md).
//
// Hosts are network namespaces on one bridge (see netns.go) with a tbf limit on both
// directions of every host. The built binaries run inside them: build-index and tracker
// share one host, each origin and each agent has its own. A random blob is uploaded
// straight into the origins that own it (through their upload API), then every agent's registry is asked for it at the
// same instant by a client running on the agent's host (over loopback, as dockerd
// would). Then, as the no-P2P baseline, every agent host fetches the blob straight from
// the origin over HTTP, again all at once. Needs root.
//
// -partition (`make bench-partition`, partition.go) is the fault scenario: the first
// pull runs with the agents cut into two groups that still reach the origins, then the
// cut heals and every agent pulls a second blob.
//
//	go run ./test/bench -agents 10 -blob-size 256MiB -rate 100 -origins 1 -out docs/BENCHMARKS.md
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/hashring"
	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/originset"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		os.Exit(runWorker(os.Args[2:]))
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the scenario parameters and where things go.
type options struct {
	blobSize     int64
	agents       int
	rate         float64 // Mbit/s per host and direction, 0 = unlimited
	origins      int
	replicas     int // 0 = Shoal's default
	chunkSize    int
	originWindow int
	maxConns     int
	peerWindow   int64
	out          string
	state        string
	bin          string
	httpBaseline bool
	keep         bool
	cleanupOnly  bool
	stagger      bool
	partition    bool
	args         []string
}

func parseFlags(args []string) (options, error) {
	o := options{args: args}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	size := fs.String("blob-size", "256MiB", "blob size (bytes, or with KiB/MiB/GiB)")
	fs.IntVar(&o.agents, "agents", 10, fmt.Sprintf("number of agents, each on its own host (1-%d)", maxAgents))
	fs.Float64Var(&o.rate, "rate", 100, "link rate of every host in Mbit/s, both directions (0 = unlimited)")
	fs.IntVar(&o.origins, "origins", 1, fmt.Sprintf("number of origins (1-%d), sharing one backend; the blob is uploaded to each of its owners, as the proxy does", maxOrigin))
	fs.IntVar(&o.replicas, "replicas", 0, "origins.replicas of agents and tracker: how many origins own each blob (0 = Shoal's default)")
	fs.IntVar(&o.originWindow, "origin-window", 0, "p2p.origin_window_pieces of agents (0 = Shoal's default)")
	fs.Int64Var(&o.peerWindow, "peer-window", 0, "p2p.peer_window_bytes of agents: bytes requested from each agent peer at once (0 = Shoal's default)")
	fs.IntVar(&o.maxConns, "max-conns", 0, "p2p.max_conns_per_torrent of agents: peer connections per blob (0 = Shoal's default)")
	fs.IntVar(&o.chunkSize, "chunk-size", 0, "p2p.chunk_size of agents and origins in bytes (0 = Shoal's default). The piece length is not configurable: Shoal picks it from the blob size (lib/metainfo.PieceLength)")
	fs.StringVar(&o.out, "out", "", "markdown file to write the results section into (e.g. docs/BENCHMARKS.md); empty = stdout only")
	fs.StringVar(&o.state, "state", filepath.Join(os.TempDir(), "shoal-bench"), "state folder (wiped at start): configs, logs, stores")
	fs.StringVar(&o.bin, "bin", "bin", "folder holding the built shoal-* binaries")
	fs.BoolVar(&o.httpBaseline, "http-baseline", true, "also measure every agent host fetching the blob straight from the origin over HTTP")
	fs.BoolVar(&o.keep, "keep", false, "keep the stores in the state folder (logs and configs are always kept)")
	fs.BoolVar(&o.stagger, "stagger", false, "diagnostic: agent i reads the blob from offset (i-1)/N of it (piece-aligned) to the end, then the head, so the agents' streaming readers want different pieces first")
	fs.BoolVar(&o.partition, "partition", false, "fault scenario: the first half of the agents and the rest can't reach each other (origins and tracker still can) while every agent pulls the blob; then the cut heals and every agent pulls a second blob (see partition.go)")
	fs.BoolVar(&o.cleanupOnly, "cleanup", false, "only remove what an earlier run left (namespaces, bridge, firewall rule) and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.blobSize, err = parseSize(*size); err != nil {
		return o, err
	}
	switch {
	case o.agents < 1 || o.agents > maxAgents:
		return o, fmt.Errorf("-agents %d: use 1-%d", o.agents, maxAgents)
	case o.origins < 1 || o.origins > maxOrigin:
		return o, fmt.Errorf("-origins %d: use 1-%d", o.origins, maxOrigin)
	case o.rate < 0:
		return o, fmt.Errorf("-rate %g: negative", o.rate)
	case o.partition && o.agents < 2:
		return o, fmt.Errorf("-partition needs at least 2 agents, one on each side")
	case o.blobSize < 1<<20:
		return o, fmt.Errorf("-blob-size %d: use at least 1MiB, smaller blobs bypass P2P (agent direct_below)", o.blobSize)
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return o, err
	}
	if o.state, err = filepath.Abs(o.state); err != nil {
		return o, err
	}
	return o, nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: use e.g. 256MiB", s)
	}
	return n * mult, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func run(args []string) (err error) {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if err := requireRoot(); err != nil {
		return err
	}
	if o.cleanupOnly {
		cleanupTestbed(logf)
		return nil
	}
	for _, b := range []string{"agent", "origin", "tracker", "buildindex"} {
		if _, err := os.Stat(filepath.Join(o.bin, "shoal-"+b)); err != nil {
			return fmt.Errorf("binary %s/shoal-%s missing (run make build first)", o.bin, b)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	// Whatever happens from here on, processes and namespaces go away.
	cleanupTestbed(logf) // leftovers of a run that was killed
	tb := &testbed{logf: logf}
	var procs []*proc
	defer func() {
		logf("stopping %d processes, removing the testbed", len(procs))
		stopAll(procs)
		tb.down()
		if !o.keep {
			removeStores(o.state)
		}
		if err != nil {
			err = fmt.Errorf("%w (logs in %s)", err, o.state)
		}
	}()

	if err := os.RemoveAll(o.state); err != nil {
		return err
	}
	if err := os.MkdirAll(o.state, 0o755); err != nil {
		return err
	}

	r := &result{opts: o, started: time.Now(), load: loadAvg()}
	r.pieceLength = metainfo.PieceLength(o.blobSize)

	// Hosts.
	tr := trackerHost()
	hosts := []host{tr}
	var originHosts, agentHosts []host
	for i := 1; i <= o.origins; i++ {
		originHosts = append(originHosts, originHost(i))
	}
	for i := 1; i <= o.agents; i++ {
		agentHosts = append(agentHosts, agentHost(i))
	}
	hosts = append(append(hosts, originHosts...), agentHosts...)
	t0 := time.Now()
	if err := tb.up(hosts); err != nil {
		return err
	}
	logf("testbed: %d hosts on %s in %s", len(hosts), bridge, time.Since(t0).Round(time.Millisecond))

	// Processes: build-index and tracker, origins, agents.
	var originURLs []string
	for _, h := range originHosts {
		originURLs = append(originURLs, fmt.Sprintf("http://%s:%d", h.ip, originPort))
	}
	base := configData{
		State:        o.state,
		ChunkSize:    o.chunkSize,
		OriginWindow: o.originWindow,
		MaxConns:     o.maxConns,
		PeerWindow:   o.peerWindow,
		Origins:      originURLs,
		Replicas:     o.replicas,
		Tracker:      fmt.Sprintf("http://%s:%d", tr.ip, trackerPort),
		BuildIndex:   fmt.Sprintf("http://%s:%d", tr.ip, buildIndexPort),
		Proxy:        fmt.Sprintf("%s:15000", tr.ip), // named in push refusals only; not started
	}
	type spec struct {
		role, name string
		h          host
		d          configData
		flags      []string
	}
	specs := []spec{}
	d := base
	d.IP, d.Port = tr.ip, buildIndexPort
	specs = append(specs, spec{"buildindex", "buildindex", tr, d, nil})
	for i, h := range originHosts {
		d := base
		d.IP, d.Port, d.PeerPort = h.ip, originPort, originPeerPort
		d.DataDir = filepath.Join(o.state, fmt.Sprintf("origin%d", i+1))
		specs = append(specs, spec{"origin", fmt.Sprintf("origin%d", i+1), h, d, []string{
			"--listen", fmt.Sprintf("%s:%d", h.ip, originPort), "--data-dir", d.DataDir,
			"--peer-ip", h.ip, "--peer-port", strconv.Itoa(originPeerPort)}})
	}
	d = base
	d.IP, d.Port = tr.ip, trackerPort
	specs = append(specs, spec{"tracker", "tracker", tr, d, nil})
	for i, h := range agentHosts {
		d := base
		d.IP, d.Port, d.PeerPort = h.ip, agentPort, agentPeerPort
		d.DataDir = filepath.Join(o.state, fmt.Sprintf("agent%d", i+1))
		specs = append(specs, spec{"agent", fmt.Sprintf("agent%d", i+1), h, d, []string{
			"--listen", fmt.Sprintf("0.0.0.0:%d", agentPort), "--data-dir", d.DataDir,
			"--peer-ip", h.ip, "--peer-port", strconv.Itoa(agentPeerPort)}})
	}
	t0 = time.Now()
	for _, s := range specs {
		p, err := startProc(o.state, o.bin, s.role, s.name, s.h, s.d, s.flags...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := p.waitHealthy(ctx); err != nil {
			return err
		}
	}
	logf("%d processes healthy in %s", len(procs), time.Since(t0).Round(time.Millisecond))
	if err := checkCrossHost(ctx, agentHosts[0], base.Tracker); err != nil {
		return err
	}

	// Seed the blob (and, for -partition, the one pulled after the heal) into its
	// owners, before the links are limited.
	t0 = time.Now()
	r.from = make([]int64, o.agents)
	if o.stagger {
		pieces := (o.blobSize + r.pieceLength - 1) / r.pieceLength
		for i := range o.agents {
			r.from[i] = int64(i) * pieces / int64(o.agents) * r.pieceLength
		}
	}
	if r.digest, r.want, err = seed(ctx, o, originURLs, filepath.Join(o.state, "blob"), r.from); err != nil {
		return err
	}
	if o.partition {
		r.part = &partitionResult{}
		if r.part.digest, r.part.want, err = seed(ctx, o, originURLs, filepath.Join(o.state, "blob"), r.from); err != nil {
			return err
		}
	}
	logf("seeded in %s", time.Since(t0).Round(time.Millisecond))

	if err := tb.limit(o.rate, o.rate); err != nil {
		return err
	}
	if o.rate > 0 {
		logf("every host limited to %g Mbit/s up and down (tbf)", o.rate)
	}

	// -partition: cut the agents in two before they pull.
	var part *partition
	if o.partition {
		part = newPartition(agentHosts, logf)
		if err := part.installCounters(); err != nil {
			return err
		}
		if err := part.cut(); err != nil {
			return err
		}
		if err := part.checkCut(ctx, base.Tracker, originURLs); err != nil {
			return err
		}
		for _, h := range agentHosts {
			r.part.groups = append(r.part.groups, part.group(h))
		}
		logf("partition: agents %s | %s can't reach each other; both still reach the origins and the tracker", hostNames(part.a), hostNames(part.b))
	}

	// P2P: every agent's registry at once, the client on the agent's host.
	agents := procsOf(procs, "agent")
	origins := procsOf(procs, "origin")
	cpu0 := map[string]float64{"": cpuOf(procs, ""), "agent": cpuOf(procs, "agent"), "origin": cpuOf(procs, "origin")}
	urls := make([]string, len(agentHosts))
	for i := range agentHosts {
		urls[i] = blobURL(r.digest)
	}
	logf("P2P: %d agents GET the blob from their registries at once", o.agents)
	r.p2p, err = fetchAll(ctx, agentHosts, urls, r.from, procs, o.timeout(o.agents))
	if err != nil {
		return err
	}
	r.cpuP2P = cpuOf(procs, "") - cpu0[""]
	r.cpuP2PAgents = cpuOf(procs, "agent") - cpu0["agent"]
	r.cpuP2POrigins = cpuOf(procs, "origin") - cpu0["origin"]
	for _, a := range agents {
		r.agentRSS = append(r.agentRSS, a.peakRSS())
	}
	// Counters are sampled every second by the engine and reported every second.
	time.Sleep(2500 * time.Millisecond)
	r.originBytes = scrapeOrigins(ctx, origins)
	r.agentBytes = scrapeAgents(ctx, agents)
	for _, ab := range r.agentBytes {
		r.agentFromOrigins += max(ab.fromOrigins, 0)
		r.headBytes += max(ab.head, 0)
		r.pulledBytes += max(ab.pulled, 0)
	}
	logf("P2P done: all %d agents in %s", o.agents, r.p2p.all().Round(time.Millisecond))

	if part != nil {
		if err := healAndPull(ctx, o, r, part, agentHosts, procs); err != nil {
			return err
		}
	}

	// Baseline: every agent host straight from the origin over HTTP, at once.
	if o.httpBaseline {
		for i := range agentHosts {
			urls[i] = fmt.Sprintf("%s/blobs/%s", originURLs[i%len(originURLs)], r.digest)
		}
		logf("HTTP baseline: %d agent hosts GET the blob from the origin at once", o.agents)
		c0 := cpuOf(procs, "origin")
		r.http, err = fetchAll(ctx, agentHosts, urls, nil, procs, o.timeout((o.agents+o.origins-1)/o.origins))
		if err != nil {
			return err
		}
		r.cpuHTTPOrigins = cpuOf(procs, "origin") - c0
		logf("HTTP baseline done in %s", r.http.all().Round(time.Millisecond))
	}
	r.finished = time.Now()

	md := r.markdown()
	fmt.Println(md)
	if o.out != "" {
		if err := writeSection(o.out, r.key(), md); err != nil {
			return err
		}
		logf("results written to %s", o.out)
	}
	return r.check()
}

// timeout bounds one fetch phase: generous, from the time the phase needs at the link
// rate when nothing is shared (factor = how many blob copies one link must carry).
func (o options) timeout(factor int) time.Duration {
	rate := o.rate * 1e6 / 8
	if rate == 0 {
		rate = 50e6
	}
	return 90*time.Second + 3*time.Duration(float64(o.blobSize)*float64(factor)/rate*float64(time.Second))
}

func procsOf(ps []*proc, role string) []*proc {
	var out []*proc
	for _, p := range ps {
		if p.role == role {
			out = append(out, p)
		}
	}
	return out
}

// checkCrossHost proves hosts reach each other through the bridge (a firewall on
// bridged traffic would silently make every peer unreachable).
func checkCrossHost(ctx context.Context, from host, trackerURL string) error {
	if err := reach(ctx, from, trackerURL+"/health"); err != nil {
		return fmt.Errorf("host %s can't reach the tracker through bridge %s (is bridged traffic filtered? check iptables FORWARD): %w", from.name, bridge, err)
	}
	return nil
}

// blobURL is where a client on an agent's host asks its agent for blob d.
func blobURL(d digest.Digest) string {
	return fmt.Sprintf("http://127.0.0.1:%d/v2/bench/blob/blobs/%s", agentPort, d)
}

// seed writes a random blob to path, uploads it into the origins that own it, as the
// proxy would, and returns its digest and, per agent, the sums its read from offset
// from[i] must report; path is removed.
func seed(ctx context.Context, o options, originURLs []string, path string, from []int64) (digest.Digest, []string, error) {
	defer os.Remove(path)
	dgst, err := writeRandomBlob(path, o.blobSize)
	if err != nil {
		return "", nil, fmt.Errorf("seed: %w", err)
	}
	replicas := o.replicas
	if replicas == 0 {
		replicas = originset.DefaultConfig().Replicas
	}
	owners := hashring.Owners(dgst.String(), originURLs, replicas)
	for _, u := range owners {
		if err := upload(ctx, u, path, dgst); err != nil {
			return "", nil, fmt.Errorf("seed %s into %s: %w", dgst, u, err)
		}
	}
	want := make([]string, len(from))
	for i := range from {
		if want[i], err = partSums(path, from[i]); err != nil {
			return "", nil, fmt.Errorf("seed: %w", err)
		}
	}
	logf("seeded %s (%s) into %v", dgst, sizeStr(o.blobSize), owners)
	return dgst, want, nil
}

// scrapeOrigins sums the P2P bytes the origins uploaded (their metric); -1 = unknown.
func scrapeOrigins(ctx context.Context, origins []*proc) int64 {
	var sum int64
	for _, p := range origins {
		v, err := scrape(ctx, p.httpURL+"/metrics", "shoal_origin_p2p_bytes_uploaded")
		if err != nil {
			logf("origin bytes: %v", err)
			return -1
		}
		sum += int64(v)
	}
	return sum
}

// scrapeAgents reads every agent's P2P byte counters (totals since it started).
func scrapeAgents(ctx context.Context, agents []*proc) []agentBytes {
	out := make([]agentBytes, len(agents))
	for i, p := range agents {
		ab := &out[i]
		for _, m := range []struct {
			dst          *int64
			name, labels string
		}{
			{&ab.fromOrigins, "shoal_agent_p2p_bytes_downloaded", `source="origin"`},
			{&ab.pulled, "shoal_agent_p2p_bytes_downloaded", `source="origin_http"`},
			{&ab.fromPeers, "shoal_agent_p2p_bytes_downloaded", `source="peer"`},
			{&ab.uploaded, "shoal_agent_p2p_bytes_uploaded", ""},
			{&ab.redundant, "shoal_agent_p2p_bytes_redundant", ""},
			{&ab.peers, "shoal_agent_p2p_peer_connections", ""},
			{&ab.head, "shoal_agent_head_bytes", ""},
		} {
			v, err := scrape(ctx, p.httpURL+"/metrics", m.name, m.labels)
			if err != nil {
				logf("%s: %v", p.name, err)
				v = -1
			}
			*m.dst = int64(v)
		}
	}
	return out
}

// fetchAll runs one worker per host, all starting at the same instant, and waits for
// them; it fails early if a Shoal process exits or ctx ends.
func fetchAll(ctx context.Context, hosts []host, urls []string, from []int64, procs []*proc, timeout time.Duration) (phase, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Far enough ahead that every worker has started (ip netns exec + Go start-up).
	start := time.Now().Add(300*time.Millisecond + time.Duration(len(hosts))*30*time.Millisecond)
	ws := make([]*worker, len(hosts))
	for i, h := range hosts {
		var off int64
		if from != nil {
			off = from[i]
		}
		w, err := spawnFetch(ctx, h.ns, urls[i], off, start, timeout)
		if err != nil {
			return nil, err
		}
		ws[i] = w
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for _, w := range ws {
	wait:
		for {
			select {
			case <-w.done:
				break wait
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-tick.C:
				for _, p := range procs {
					if p.exited() {
						return nil, fmt.Errorf("%s exited during the run: %v (log: %s)", p.name, p.err, p.log.Name())
					}
				}
			}
		}
	}
	out := make(phase, len(ws))
	for i, w := range ws {
		out[i] = w.res
	}
	return out, nil
}

// writeRandomBlob writes size random bytes to path and returns their digest.
func writeRandomBlob(path string, size int64) (digest.Digest, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	src := rand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		_, _ = src.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return "", err
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return digest.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), nil
}

// partSums is what a worker reading path from offset from reports: the digest of the
// whole file, or, from > 0, those of the tail from there and of the head before it.
func partSums(path string, from int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum := func(r io.Reader) (string, error) {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return "", err
		}
		return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
	}
	if from == 0 {
		return sum(f)
	}
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	tail, err := sum(io.NewSectionReader(f, from, fi.Size()-from))
	if err != nil {
		return "", err
	}
	head, err := sum(io.NewSectionReader(f, 0, from))
	return tail + "," + head, err
}

// upload puts the blob into an origin through its upload API.
func upload(ctx context.Context, originURL, path string, d digest.Digest) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	oc := originclient.New(originURL, &http.Client{})
	id, err := oc.StartUpload(ctx)
	if err != nil {
		return err
	}
	n, err := oc.AppendUpload(ctx, id, 0, io.Reader(f))
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err == nil && n != fi.Size() {
		return fmt.Errorf("upload: origin holds %d of %d bytes", n, fi.Size())
	}
	return oc.CommitUpload(ctx, id, d)
}

// removeStores deletes the blob stores and backends, keeping configs and logs.
func removeStores(state string) {
	entries, err := os.ReadDir(state)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "blob" {
			_ = os.RemoveAll(filepath.Join(state, e.Name()))
		}
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// check fails the run when an agent did not get the whole, correct blob.
func (r *result) check() error {
	var errs []error
	for name, ph := range map[string]phase{"P2P": r.p2p, "HTTP baseline": r.http} {
		for i, f := range ph {
			want := r.digest.String()
			if name == "P2P" {
				want = r.want[i]
			}
			switch {
			case f.Err != "":
				errs = append(errs, fmt.Errorf("%s agent%d: %s", name, i+1, f.Err))
			case f.SHA != want || f.Bytes != r.opts.blobSize:
				errs = append(errs, fmt.Errorf("%s agent%d: got %d bytes hashing to %s, want %d bytes of %s", name, i+1, f.Bytes, f.SHA, r.opts.blobSize, want))
			}
		}
	}
	if r.part != nil {
		errs = append(errs, r.part.check(r.opts.blobSize, r.pieceLength)...)
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}
