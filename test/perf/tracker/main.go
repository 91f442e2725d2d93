// Command tracker load-tests the real shoal-tracker binary (issue 4: at least 20,000
// announces/s with p99 under 20 ms on one core).
//
//	go run ./test/perf/tracker [-agents 15000 -blobs 500 ...] [-out docs/BENCHMARKS.md]
//
// It starts bin/shoal-tracker pinned to one core (taskset -c 0) and runs itself pinned
// to the other (taskset -c 1). A fake origin inside this process serves the metainfo of
// -blobs small blobs (GET /blobs/{d}/metainfo) and its P2P address (GET /peer), so the
// tracker learns every blob the way it does in production: from the first announce
// that names its digest. Simulated agents (40-hex peer ids, one address each) are
// members of a few swarms each, chosen by a Zipf popularity over the blobs (a few base
// layers everybody has, a long tail); most memberships are still downloading.
//
// Every announce is a real POST /announce over keep-alive HTTP/1.1 connections (raw
// TCP with prebuilt requests, so the generator costs little CPU), naming the digest as
// agents do. After one announce per membership (the store is full), it runs:
//   - closed loop: -conns connections, each sending its next announce as soon as the
//     previous answer is read, for -duration: the tracker's capacity;
//   - open loop at each of -rates: announces are due at a fixed rate whatever the
//     tracker does; latency counts from when an announce was due (no coordinated
//     omission), so queueing shows.
//
// Latency is measured at the client, from writing the request to reading the whole
// answer.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/lib/p2p"
	"github.com/shoal-p2p/shoal/lib/trackerclient"
	"github.com/shoal-p2p/shoal/test/perf/internal/perf"
)

type options struct {
	bin        string
	agents     int
	blobs      int
	swarms     int
	complete   float64
	zipf       float64
	conns      int
	duration   time.Duration
	rates      []int
	trackerCPU int
	genCPU     int
	out        string
	keep       bool
	profile    string
	maxPeers   int
	repeat     int
	compact    bool
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	perf.PinSelf(o.genCPU)
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "tracker load:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("tracker", flag.ContinueOnError)
	var o options
	var rates string
	fs.StringVar(&o.bin, "bin", "bin", "folder holding shoal-tracker (make build)")
	fs.IntVar(&o.agents, "agents", 15000, "simulated agents")
	fs.IntVar(&o.blobs, "blobs", 500, "blobs (swarms)")
	fs.IntVar(&o.swarms, "swarms", 3, "mean swarms per agent (each agent is in 1 to 2*swarms-1)")
	fs.Float64Var(&o.complete, "complete", 0.2, "share of memberships that announce complete (seeders)")
	fs.Float64Var(&o.zipf, "zipf", 1.1, "Zipf exponent of blob popularity (> 1)")
	fs.IntVar(&o.conns, "conns", 64, "keep-alive connections")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured phase")
	fs.StringVar(&rates, "rates", "20000", "open-loop rates, announces/s, comma-separated (empty: none)")
	fs.IntVar(&o.trackerCPU, "tracker-cpu", 0, "CPU the tracker is pinned to (-1: unpinned)")
	fs.IntVar(&o.genCPU, "gen-cpu", 1, "CPU this generator is pinned to (-1: unpinned)")
	fs.StringVar(&o.out, "out", "", "write the results section into this markdown file (e.g. docs/BENCHMARKS.md)")
	fs.BoolVar(&o.keep, "keep", false, "keep the state folder (tracker config and log)")
	fs.IntVar(&perf.Nice, "nice", -10, "niceness of the tracker and the generator (0: leave it; negative needs root), so other jobs on a shared machine don't take their cores")
	fs.IntVar(&o.repeat, "repeat", 3, "rounds of the measured phases (other jobs on a shared machine make single runs noisy)")
	fs.IntVar(&o.maxPeers, "max-peers", 0, "the tracker's max_peers (0: its default, 50)")
	fs.BoolVar(&o.compact, "compact", true, "ask for compact replies (POST /announce?compact=1), as agents do")
	fs.StringVar(&o.profile, "cpuprofile", "", "write the tracker's CPU profile of the whole run to this file (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, f := range strings.Split(rates, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "-rates: %q is not a positive number\n", f)
			return o, errors.New("bad -rates")
		}
		o.rates = append(o.rates, n)
	}
	if o.agents < 1 || o.blobs < 1 || o.swarms < 1 || o.conns < 1 || o.zipf <= 1 {
		fmt.Fprintln(os.Stderr, "-agents, -blobs, -swarms, -conns must be positive and -zipf above 1")
		return o, errors.New("bad flags")
	}
	return o, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// blob is one fake blob: its metainfo, as the origin serves it.
type blob struct {
	digest   digest.Digest
	infoHash string
	info     []byte
}

// member is one agent in one swarm; req is its whole HTTP request.
type member struct {
	agent, blob int
	complete    bool
	req         []byte
}

func run(o options) error {
	ctx := context.Background()
	start := time.Now()
	load := perf.LoadAvg()
	bin := o.bin
	if !filepath.IsAbs(bin) {
		root, err := perf.FindRoot()
		if err != nil {
			return err
		}
		bin = filepath.Join(root, bin)
	}
	trackerBin := filepath.Join(bin, "shoal-tracker")
	if _, err := os.Stat(trackerBin); err != nil {
		return fmt.Errorf("%s missing (run make build): %w", trackerBin, err)
	}
	state, err := os.MkdirTemp("", "shoal-tracker-load-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(state)
	}

	// Blobs and the fake origin.
	blobs, err := makeBlobs(o.blobs)
	if err != nil {
		return err
	}
	originURL, stopOrigin, err := fakeOrigin(blobs)
	if err != nil {
		return err
	}
	defer stopOrigin()

	// The tracker.
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`# generated by test/perf/tracker
listen: %s
log:
  level: warn
  format: json
origins:
  static:
    - %s
  replicas: 1
`, addr, originURL)
	if o.maxPeers > 0 {
		cfg += fmt.Sprintf("max_peers: %d\n", o.maxPeers)
	}
	cfgPath := filepath.Join(state, "tracker.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	var env []string
	if o.profile != "" {
		p, err := filepath.Abs(o.profile)
		if err != nil {
			return err
		}
		env = append(env, "SHOAL_CPUPROFILE="+p)
	}
	tr, err := perf.Start("tracker", trackerBin, filepath.Join(state, "tracker.log"), o.trackerCPU, env, "--config", cfgPath)
	if err != nil {
		return err
	}
	defer tr.Stop()
	if err := perf.WaitHealthy(ctx, "http://"+addr, tr.Done); err != nil {
		return fmt.Errorf("tracker: %w (log: %s)", err, filepath.Join(state, "tracker.log"))
	}
	logf("tracker pid %d on %s, pinned to CPU %d; generator pinned to CPU %d", tr.Pid(), addr, o.trackerCPU, o.genCPU)

	// The population.
	members := population(o, blobs, addr)
	perAgent := float64(len(members)) / float64(o.agents)
	complete := 0
	swarmSize := make([]int, len(blobs))
	for _, m := range members {
		if m.complete {
			complete++
		}
		swarmSize[m.blob]++
	}
	sorted := slices.Clone(swarmSize)
	slices.Sort(sorted)
	logf("%d agents in %d memberships (%.2f swarms each, %.0f%% complete) over %d blobs; swarm sizes: median %d, largest %d",
		o.agents, len(members), perAgent, 100*float64(complete)/float64(len(members)), len(blobs), sorted[len(sorted)/2], sorted[len(sorted)-1])

	// The tracker learns each blob from its first announce (a metainfo fetch from the
	// origin), then every member announces once so the store is full.
	t0 := time.Now()
	first := make([]*member, len(blobs))
	for i := range members {
		if m := &members[i]; first[m.blob] == nil {
			first[m.blob] = m
		}
	}
	var firsts []*member
	for _, m := range first {
		if m != nil {
			firsts = append(firsts, m)
		}
	}
	learn := closedLoop(addr, firsts, min(16, o.conns), 0, true)
	if learn.errs > 0 {
		return fmt.Errorf("first announces: %d of %d failed: %s", learn.errs, len(firsts), learn.firstErr)
	}
	logf("tracker learnt %d blobs in %s (first announce of each, fetches metainfo from the origin)", len(firsts), time.Since(t0).Round(time.Millisecond))
	all := make([]*member, len(members))
	for i := range members {
		all[i] = &members[i]
	}
	t0 = time.Now()
	fill := closedLoop(addr, all, o.conns, 0, true)
	if fill.errs > 0 {
		return fmt.Errorf("fill: %d of %d announces failed: %s", fill.errs, len(all), fill.firstErr)
	}
	logf("store filled: %d announces in %s (%.0f/s)", fill.n, time.Since(t0).Round(time.Millisecond), fill.rate())

	// Measured phases. Members announce in turn, so each re-announces every
	// len(members)/rate seconds, well inside the peer TTL (10 s) at these rates.
	var phases []phase
	measure := func(name string, f func() result) {
		cpu0, gen0, w0 := perf.CPUSeconds(tr.Pid()), perf.CPUSeconds(os.Getpid()), time.Now()
		core0 := perf.ReadCPU(o.trackerCPU)
		r := f()
		wall := time.Since(w0).Seconds()
		p := phase{name: name, result: r, trackerCPU: (perf.CPUSeconds(tr.Pid()) - cpu0) / wall, genCPU: (perf.CPUSeconds(os.Getpid()) - gen0) / wall}
		p.coreBusy, p.coreSoftIRQ = perf.ReadCPU(o.trackerCPU).Since(core0)
		phases = append(phases, p)
		logf("%s: %s", name, p.summary())
	}
	for round := 1; round <= o.repeat; round++ {
		measure(fmt.Sprintf("closed loop, %d connections (round %d)", o.conns, round), func() result {
			return closedLoop(addr, all, o.conns, o.duration, false)
		})
		for _, rate := range o.rates {
			measure(fmt.Sprintf("open loop at %d/s, %d connections (round %d)", rate, o.conns, round), func() result {
				return openLoop(addr, all, o.conns, rate, o.duration)
			})
		}
	}
	hwm := perf.Status(tr.Pid(), "VmHWM")
	st, _ := trackerStats(ctx, "http://"+addr)

	if o.out == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Tracker: %d agents announcing, one core\n\n", o.agents)
	fmt.Fprintf(&b, "- Command: `%s`\n", command(o))
	fmt.Fprintf(&b, "- Run: %s, %s; load average at start %s\n", start.UTC().Format("2006-01-02 15:04 UTC"), time.Since(start).Round(time.Second), load)
	fmt.Fprintf(&b, "- Machine: %s\n", perf.Machine())
	fmt.Fprintf(&b, "- Setup: the real `bin/shoal-tracker` pinned to CPU %d (`taskset`; Go sets GOMAXPROCS 1 from the mask), the generator pinned to CPU %d, both at nice %d (other jobs shared the machine); %d keep-alive HTTP/1.1 connections over loopback; every announce a real `POST %s` naming its digest; hand-outs of up to 50 peers (tracker default `max_peers`)\n", o.trackerCPU, o.genCPU, perf.Nice, o.conns, announcePath(o.compact))
	fmt.Fprintf(&b, "- Population: %d agents with 40-hex peer ids and their own addresses, in %d memberships (%.2f swarms each) over %d blobs with Zipf(%.1f) popularity (median swarm %d peers, largest %d); %.0f%% of memberships announce complete; the tracker learnt every blob from a fake origin (`/blobs/{d}/metainfo`, `/peer`) on the blob's first announce, before measuring; each member re-announces every %d/rate s (< peer_ttl 10 s)\n",
		o.agents, len(members), perAgent, len(blobs), o.zipf, sorted[len(sorted)/2], sorted[len(sorted)-1], 100*float64(complete)/float64(len(members)), len(members))
	if st != "" {
		fmt.Fprintf(&b, "- Tracker state after the run: %s; peak RSS (VmHWM) %d MiB\n", st, hwm>>20)
	}
	b.WriteString("\n| phase | announces | announces/s | p50 | p90 | p99 | p99.9 | max | errors | tracker CPU | its core busy (softirq) | announces per tracker CPU-s | generator CPU |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, p := range phases {
		q := p.quantiles()
		fmt.Fprintf(&b, "| %s | %d | **%.0f** | %s | %s | **%s** | %s | %s | %d | %.0f%% | %.0f%% (%.0f%%) | %.0f | %.0f%% |\n",
			p.name, p.n, p.rate(), ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]), ms(q[4]), p.errs, 100*p.trackerCPU, 100*p.coreBusy, 100*p.coreSoftIRQ, p.perCPU(), 100*p.genCPU)
	}
	fmt.Fprintf(&b, "\nLatency is from the request's due time (open loop) or its write (closed loop) to the end of the answer, at the client. Tracker CPU is the share of its one core charged to the tracker (utime+stime over wall time); \"its core busy\" is that core's busy share from /proc/stat, softirq included (loopback TCP processing the kernel charges to no process). Where the core is busy but the tracker's share is lower, other jobs or softirq took the rest; announces per tracker CPU-second is an upper bound on what one whole core would do (softirq not counted). For scale: %d agents in steady state announce about %.0f times a second (downloading memberships every 3 s, complete ones every 60 s).\n",
		o.agents, float64(len(members)-complete)/3+float64(complete)/60)
	return perf.WriteSection(o.out, "tracker", b.String())
}

// announcePath is the announce request's target: agents ask for compact replies.
func announcePath(compact bool) string {
	if compact {
		return "/announce?compact=1"
	}
	return "/announce"
}

func command(o options) string {
	s := "go run ./test/perf/tracker"
	nice := perf.Nice
	def, _ := parseFlags(nil) // resets perf.Nice to its default
	perf.Nice = nice
	if o.agents != def.agents {
		s += fmt.Sprintf(" -agents %d", o.agents)
	}
	if o.blobs != def.blobs {
		s += fmt.Sprintf(" -blobs %d", o.blobs)
	}
	if o.conns != def.conns {
		s += fmt.Sprintf(" -conns %d", o.conns)
	}
	if o.repeat != def.repeat {
		s += fmt.Sprintf(" -repeat %d", o.repeat)
	}
	if o.maxPeers != def.maxPeers {
		s += fmt.Sprintf(" -max-peers %d", o.maxPeers)
	}
	if o.compact != def.compact {
		s += fmt.Sprintf(" -compact=%v", o.compact)
	}
	if perf.Nice != -10 {
		s += fmt.Sprintf(" -nice %d", perf.Nice)
	}
	if o.duration != def.duration {
		s += fmt.Sprintf(" -duration %s", o.duration)
	}
	if !slices.Equal(o.rates, def.rates) {
		var r []string
		for _, x := range o.rates {
			r = append(r, strconv.Itoa(x))
		}
		s += " -rates " + strings.Join(r, ",")
	}
	return s + " -out " + o.out
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// makeBlobs makes n small blobs of distinct random content and their metainfo.
func makeBlobs(n int) ([]blob, error) {
	out := make([]blob, n)
	for i := range out {
		rng := rand.New(rand.NewPCG(uint64(i), 42))
		content := make([]byte, 4096)
		for j := range content {
			content[j] = byte(rng.Uint32())
		}
		res, err := metainfo.Generate(bytes.NewReader(content), metainfo.PieceLength(int64(len(content))))
		if err != nil {
			return nil, err
		}
		out[i] = blob{digest: res.Digest, infoHash: hex.EncodeToString(res.InfoHash[:]), info: res.InfoBytes}
	}
	return out, nil
}

// fakeOrigin serves the blobs' metainfo and a P2P address, as an origin's API does.
func fakeOrigin(blobs []blob) (string, func(), error) {
	byDigest := make(map[digest.Digest][]byte, len(blobs))
	for _, b := range blobs {
		byDigest[b.digest] = b.info
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/health":
			_, _ = io.WriteString(w, "OK\n")
		case r.URL.Path == "/peer":
			_ = json.NewEncoder(w).Encode(originclient.PeerAddr{IP: "127.0.0.10", Port: 15201})
		case strings.HasPrefix(r.URL.Path, "/blobs/") && strings.HasSuffix(r.URL.Path, "/metainfo"):
			d := digest.Digest(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/blobs/"), "/metainfo"))
			info, ok := byDigest[d]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				_ = json.NewEncoder(w).Encode(originclient.ErrorBody{Error: originclient.CodeNotFound})
				return
			}
			_, _ = w.Write(info)
		default:
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// population places every agent in 1 to 2*swarms-1 distinct swarms, drawn by Zipf
// popularity, and prebuilds each membership's announce, in a random order.
func population(o options, blobs []blob, host string) []member {
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, o.zipf, 1, uint64(len(blobs)-1))
	// Popularity rank -> blob, shuffled so popular blobs land in different shards.
	rank := rng.Perm(len(blobs))
	var out []member
	for a := range o.agents {
		k := 1 + rng.IntN(2*o.swarms-1)
		k = min(k, len(blobs))
		seen := map[int]bool{}
		for len(seen) < k {
			b := rank[zipf.Uint64()]
			if seen[b] {
				continue
			}
			seen[b] = true
			out = append(out, member{agent: a, blob: b, complete: rng.Float64() < o.complete})
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	path := announcePath(o.compact)
	for i := range out {
		m := &out[i]
		id := sha1.Sum([]byte("agent-" + strconv.Itoa(m.agent)))
		body, _ := json.Marshal(p2p.Announce{
			InfoHash: blobs[m.blob].infoHash,
			Digest:   blobs[m.blob].digest.String(),
			PeerID:   hex.EncodeToString(id[:]),
			IP:       fmt.Sprintf("10.%d.%d.%d", 1+m.agent>>16, (m.agent>>8)&255, m.agent&255),
			Port:     16001,
			Complete: m.complete,
		})
		m.req = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: shoal-agent\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, host, len(body), body)
	}
	return out
}

// result is what a phase measured.
type result struct {
	n, errs  int
	firstErr string
	lat      []time.Duration
	wall     time.Duration
	peers    int64 // peers in the answers checked
	checked  int64
}

func (r result) rate() float64 { return float64(r.n) / r.wall.Seconds() }

// quantiles returns p50, p90, p99, p99.9 and max.
func (r result) quantiles() [5]time.Duration {
	var q [5]time.Duration
	if len(r.lat) == 0 {
		return q
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(int(p*float64(len(s))), len(s)-1)] }
	return [5]time.Duration{at(0.50), at(0.90), at(0.99), at(0.999), s[len(s)-1]}
}

type phase struct {
	name string
	result
	trackerCPU, genCPU float64
	// coreBusy and coreSoftIRQ are the shares of the tracker's CPU busy and in
	// softirq (loopback TCP work the kernel does not charge to a process).
	coreBusy, coreSoftIRQ float64
}

// perCPU is announces per CPU-second of the tracker.
func (p phase) perCPU() float64 {
	if p.trackerCPU <= 0 {
		return 0
	}
	return p.rate() / p.trackerCPU
}

func (p phase) summary() string {
	q := p.quantiles()
	avg := 0.0
	if p.checked > 0 {
		avg = float64(p.peers) / float64(p.checked)
	}
	return fmt.Sprintf("%d announces in %s = %.0f/s; p50 %s p90 %s p99 %s p99.9 %s max %s; %d errors; tracker CPU %.0f%% (%.0f announces per CPU-s), its core busy %.0f%% (softirq %.0f%%), generator CPU %.0f%%; %.1f peers per answer",
		p.n, p.wall.Round(time.Millisecond), p.rate(), ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]), ms(q[4]), p.errs, 100*p.trackerCPU, p.perCPU(), 100*p.coreBusy, 100*p.coreSoftIRQ, 100*p.genCPU, avg)
}

// conn is one keep-alive connection to the tracker.
type conn struct {
	c   net.Conn
	br  *bufio.Reader
	buf []byte
}

func dial(addr string) (*conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

// do sends one announce and reads its whole answer; it returns the body when keep
// is set. It reads HTTP/1.1 answers itself (status line, Content-Length or chunked
// body), cheaper than net/http's client, so the generator's core is not the limit.
func (c *conn) do(req []byte, keep bool) ([]byte, error) {
	if _, err := c.c.Write(req); err != nil {
		return nil, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	status := string(line[9:12])
	length, chunked := -1, false
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		if len(h) <= 2 {
			break
		}
		name, val, _ := bytes.Cut(h, []byte(":"))
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(val)); err != nil {
				return nil, fmt.Errorf("bad Content-Length %q", val)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(val, []byte("chunked"))
		}
	}
	c.buf = c.buf[:0]
	switch {
	case chunked:
		c.buf, err = appendAll(c.buf, httputil.NewChunkedReader(c.br))
		if err == nil {
			_, err = c.br.Discard(2) // the CRLF after the last chunk
		}
	case length >= 0:
		if cap(c.buf) < length {
			c.buf = make([]byte, 0, length)
		}
		c.buf = c.buf[:length]
		_, err = io.ReadFull(c.br, c.buf)
	default:
		return nil, errors.New("answer without a length")
	}
	if err != nil {
		return nil, err
	}
	if status != "200" {
		return nil, fmt.Errorf("status %s: %s", status, bytes.TrimSpace(c.buf))
	}
	if !keep {
		return nil, nil
	}
	return c.buf, nil
}

func appendAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// worker state shared by the loops.
type worker struct {
	lat     []time.Duration
	n, errs int
	err     string
	peers   int64
	checked int64
}

func (w *worker) record(c *conn, req []byte, due time.Time, i int) error {
	check := i%97 == 0
	body, err := c.do(req, check)
	w.lat = append(w.lat, time.Since(due))
	if err != nil {
		w.errs++
		if w.err == "" {
			w.err = err.Error()
		}
		return err
	}
	w.n++
	if check {
		reply, err := trackerclient.DecodeAnnounceReply(bytes.NewReader(body))
		if err != nil {
			w.errs++
			w.err = "bad reply: " + err.Error()
		} else {
			w.peers += int64(len(reply.Peers))
			w.checked++
		}
	}
	return nil
}

func merge(ws []*worker, wall time.Duration) result {
	r := result{wall: wall}
	for _, w := range ws {
		r.n += w.n
		r.errs += w.errs
		if r.firstErr == "" {
			r.firstErr = w.err
		}
		r.lat = append(r.lat, w.lat...)
		r.peers += w.peers
		r.checked += w.checked
	}
	return r
}

// closedLoop has conns connections announce members in turn, each as soon as its
// previous answer is in: once through members when d is 0 (once), else for d.
func closedLoop(addr string, members []*member, conns int, d time.Duration, once bool) result {
	var next atomic.Int64
	ws := make([]*worker, conns)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range ws {
		w := &worker{lat: make([]time.Duration, 0, 1<<16)}
		ws[i] = w
		wg.Go(func() {
			c, err := dial(addr)
			if err != nil {
				w.errs, w.err = 1, err.Error()
				return
			}
			defer c.c.Close()
			for {
				j := int(next.Add(1) - 1)
				if once && j >= len(members) || !once && time.Now().After(end) {
					return
				}
				if err := w.record(c, members[j%len(members)].req, time.Now(), j); err != nil {
					if c, err = dial(addr); err != nil {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return merge(ws, time.Since(start))
}

// openLoop makes announces due at rate per second for d, spread over conns
// connections; an announce waits for a free connection if none is, and its latency
// counts from when it was due.
func openLoop(addr string, members []*member, conns, rate int, d time.Duration) result {
	total := int(float64(rate) * d.Seconds())
	type job struct {
		due time.Time
		i   int
	}
	jobs := make(chan job, total)
	ws := make([]*worker, conns)
	var wg sync.WaitGroup
	base := rand.IntN(len(members))
	for i := range ws {
		w := &worker{lat: make([]time.Duration, 0, total/conns*2)}
		ws[i] = w
		c, err := dial(addr)
		if err != nil {
			w.errs, w.err = 1, err.Error()
			continue
		}
		wg.Go(func() {
			defer func() { c.c.Close() }()
			for j := range jobs {
				if err := w.record(c, members[(base+j.i)%len(members)].req, j.due, j.i); err != nil {
					if c, err = dial(addr); err != nil {
						return
					}
				}
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 200*time.Microsecond {
			time.Sleep(wait)
		}
		jobs <- job{due: due, i: i}
	}
	close(jobs)
	wg.Wait()
	return merge(ws, time.Since(start))
}

// trackerStats reads the tracker's swarm and peer gauges.
func trackerStats(ctx context.Context, base string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, m := range []string{"shoal_tracker_swarms", "shoal_tracker_peers", "shoal_tracker_cached_metainfo"} {
			if v, ok := strings.CutPrefix(line, m+" "); ok {
				parts = append(parts, strings.TrimPrefix(m, "shoal_tracker_")+" "+v)
			}
		}
	}
	return strings.Join(parts, ", "), nil
}
