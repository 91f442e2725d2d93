// Command loopback measures one agent pulling one big blob from one origin over
// loopback, with no rate limit, against a plain TCP copy of the same file on the same
// machine (issue 4: at least 70% of it), and the agent's peak memory while it does
// (issue 4: under 150 MiB for a 4 GiB blob).
//
//	go run ./test/perf/loopback [-size 1GiB] [-runs 3] [-out docs/BENCHMARKS.md]
//
// It starts bin/shoal-origin (P2P on 127.0.0.10), bin/shoal-tracker and bin/shoal-agent
// (P2P on 127.0.0.2), unpinned, with their own state under -state. A random blob is
// streamed into the origin through its upload API (no source file is kept). Then, per
// run:
//   - P2P: a fresh agent (empty store) is asked for the blob through its registry API
//     (GET /v2/bench/blob/blobs/<digest>), as dockerd would; the blob is far above the
//     agent's direct_below (1 MiB), so it comes through the swarm from the origin. The
//     client counts the bytes; the agent's stored copy is hashed afterwards (untimed).
//     The agent's peak RSS is its VmHWM (/proc/<pid>/status) at the end.
//   - TCP: the origin's stored file of the blob is copied over a loopback TCP connection
//     by a sender (read+write, 256 KiB) to a receiver writing it into a file
//     (read+write, 256 KiB), as nc or a simple copy tool would; and again into
//     /dev/null, for reference.
//
// The P2P rate is blob size / (time from the GET to its last byte).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/metainfo"
	"github.com/shoal-p2p/shoal/lib/originclient"
	"github.com/shoal-p2p/shoal/test/perf/internal/perf"
)

const (
	originPeerIP = "127.0.0.10"
	agentPeerIP  = "127.0.0.2"
	copyBuf      = 256 << 10
)

type options struct {
	bin     string
	size    int64
	runs    int
	state   string
	out     string
	keep    bool
	tcp     bool
	timeout time.Duration
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loopback:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("loopback", flag.ContinueOnError)
	var o options
	var size string
	fs.StringVar(&o.bin, "bin", "bin", "folder holding shoal-origin, shoal-tracker, shoal-agent (make build)")
	fs.StringVar(&size, "size", "1GiB", "blob size (e.g. 1GiB, 4GiB, 512MiB)")
	fs.IntVar(&o.runs, "runs", 3, "P2P pulls (each by a fresh agent) and TCP copies; the median is reported")
	fs.StringVar(&o.state, "state", "", "state folder, removed at the end (default: a new folder under /tmp)")
	fs.StringVar(&o.out, "out", "", "write the results section into this markdown file (e.g. docs/BENCHMARKS.md)")
	fs.BoolVar(&o.keep, "keep", false, "keep the state folder (configs, logs, blobs)")
	fs.BoolVar(&o.tcp, "tcp", true, "measure the plain TCP copy too")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on one pull after this long")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	n, err := parseSize(size)
	if err != nil || n <= 1<<20 {
		fmt.Fprintf(os.Stderr, "-size %q: want a size above 1 MiB (the agent's direct_below), e.g. 1GiB\n", size)
		return o, errors.New("bad -size")
	}
	o.size = n
	if o.runs < 1 {
		fmt.Fprintln(os.Stderr, "-runs must be at least 1")
		return o, errors.New("bad -runs")
	}
	return o, nil
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"", 1}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, err
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("bad size %q", s)
}

func sizeStr(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// pull is one P2P pull.
type pull struct {
	ttfb, done time.Duration
	rss        int64 // agent VmHWM
	agentCPU   float64
	originCPU  float64
	originPeak int64 // origin VmHWM so far
	sha        string
	bytes      int64
}

// copyRun is one TCP copy.
type copyRun struct {
	toFile, toNull time.Duration
	cpuFile        float64 // CPU seconds of this process (sender+receiver) for the file copy
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
	for _, b := range []string{"origin", "tracker", "agent"} {
		if _, err := os.Stat(filepath.Join(bin, "shoal-"+b)); err != nil {
			return fmt.Errorf("bin/shoal-%s missing (run make build): %w", b, err)
		}
	}
	state := o.state
	if state == "" {
		var err error
		if state, err = os.MkdirTemp("", "shoal-loopback-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(state)
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	originAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	trackerAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	agentAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	originPeerPort, agentPeerPort := ports[3], ports[4]
	originURL := "http://" + originAddr

	write := func(name, text string) (string, error) {
		p := filepath.Join(state, name+".yaml")
		return p, os.WriteFile(p, []byte("# generated by test/perf/loopback\n"+text), 0o644)
	}
	originCfg, err := write("origin", fmt.Sprintf(`listen: %s
data_dir: %s
log:
  level: info
  format: json
p2p:
  listen_ip: %s
  listen_port: %d
  max_conns_per_torrent: 200
backend:
  kind: fs
  fs:
    root: %s
`, originAddr, filepath.Join(state, "origin"), originPeerIP, originPeerPort, filepath.Join(state, "backend")))
	if err != nil {
		return err
	}
	trackerCfg, err := write("tracker", fmt.Sprintf(`listen: %s
log:
  level: info
  format: json
origins:
  static:
    - %s
  replicas: 1
`, trackerAddr, originURL))
	if err != nil {
		return err
	}
	agentDir := filepath.Join(state, "agent")
	agentCfg, err := write("agent", fmt.Sprintf(`listen: %s
data_dir: %s
log:
  level: info
  format: json
p2p:
  listen_ip: %s
  listen_port: %d
tracker: http://%s
build_index: http://127.0.0.1:1
origins:
  static:
    - %s
  replicas: 1
proxy: 127.0.0.1:1
`, agentAddr, agentDir, agentPeerIP, agentPeerPort, trackerAddr, originURL))
	if err != nil {
		return err
	}

	var procs []*perf.Proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop()
		}
	}()
	startProc := func(name, logName, cfg, base string) (*perf.Proc, error) {
		logPath := filepath.Join(state, logName+".log")
		p, err := perf.Start(name, filepath.Join(bin, "shoal-"+name), logPath, -1, nil, "--config", cfg)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		if err := perf.WaitHealthy(ctx, base, p.Done); err != nil {
			return nil, fmt.Errorf("%s: %w (log: %s)", name, err, logPath)
		}
		return p, nil
	}
	origin, err := startProc("origin", "origin", originCfg, originURL)
	if err != nil {
		return err
	}
	if _, err := startProc("tracker", "tracker", trackerCfg, "http://"+trackerAddr); err != nil {
		return err
	}

	// The blob, streamed into the origin.
	t0 := time.Now()
	d, err := upload(ctx, originURL, o.size)
	if err != nil {
		return err
	}
	store, err := blobstore.New(filepath.Join(state, "origin"))
	if err != nil {
		return err
	}
	blobPath := store.BlobPath(d)
	if fi, err := os.Stat(blobPath); err != nil || fi.Size() != o.size {
		return fmt.Errorf("origin's copy of %s at %s: %v", d, blobPath, err)
	}
	logf("uploaded %s (%s) into the origin in %s; its file: %s", d, sizeStr(o.size), time.Since(t0).Round(time.Millisecond), blobPath)
	// The origin writes the upload back to its backend in the background: let it
	// finish, so it does not share the CPU with the pulls.
	t0 = time.Now()
	if err := waitIdle(origin, 5*time.Minute); err != nil {
		return err
	}
	logf("origin idle after %s (backend write-back done)", time.Since(t0).Round(time.Millisecond))

	// P2P pulls, each by a fresh agent.
	var pulls []pull
	for i := range o.runs {
		_ = os.RemoveAll(agentDir)
		agent, err := startProc("agent", fmt.Sprintf("agent-run%d", i+1), agentCfg, "http://"+agentAddr)
		if err != nil {
			return err
		}
		p, err := pullOnce(ctx, agentAddr, d, o.size, o.timeout, agent, origin)
		if err == nil {
			// The client has every byte once each piece is verified; the agent commits
			// its copy (whole-blob sha256, fsync) just after.
			agentStore, _ := blobstore.New(agentDir)
			if err = waitFile(agentStore.BlobPath(d), time.Minute); err == nil {
				p.sha, err = hashFile(agentStore.BlobPath(d))
			}
			if err == nil && p.sha != d.Encoded() {
				err = fmt.Errorf("agent's copy hashes to %s, want %s", p.sha, d.Encoded())
			}
		}
		agent.Stop()
		procs = procs[:len(procs)-1]
		_ = os.RemoveAll(agentDir)
		if err != nil {
			return fmt.Errorf("P2P run %d: %w", i+1, err)
		}
		pulls = append(pulls, p)
		logf("P2P run %d: %s in %s = %.0f MiB/s (first byte %s); agent peak RSS %d MiB, CPU %.1f s; origin CPU %.1f s",
			i+1, sizeStr(o.size), p.done.Round(time.Millisecond), mibps(o.size, p.done), p.ttfb.Round(time.Millisecond), p.rss>>20, p.agentCPU, p.originCPU)
	}

	// TCP copies of the origin's file.
	var copies []copyRun
	if o.tcp {
		for i := range o.runs {
			c, err := tcpCopies(blobPath, filepath.Join(state, "tcp-copy"), o.size)
			_ = os.Remove(filepath.Join(state, "tcp-copy"))
			if err != nil {
				return fmt.Errorf("TCP run %d: %w", i+1, err)
			}
			copies = append(copies, c)
			logf("TCP run %d: to a file %s = %.0f MiB/s (CPU %.1f s); to /dev/null %s = %.0f MiB/s",
				i+1, c.toFile.Round(time.Millisecond), mibps(o.size, c.toFile), c.cpuFile, c.toNull.Round(time.Millisecond), mibps(o.size, c.toNull))
		}
	}

	// Summary.
	p2p := median(pulls, func(p pull) time.Duration { return p.done })
	var rss int64
	for _, p := range pulls {
		rss = max(rss, p.rss)
	}
	summary := fmt.Sprintf("P2P median %s = %.0f MiB/s; agent peak RSS max %d MiB", p2p.Round(time.Millisecond), mibps(o.size, p2p), rss>>20)
	var tcpFile, tcpNull time.Duration
	if len(copies) > 0 {
		tcpFile = median(copies, func(c copyRun) time.Duration { return c.toFile })
		tcpNull = median(copies, func(c copyRun) time.Duration { return c.toNull })
		summary += fmt.Sprintf("; TCP copy to a file %.0f MiB/s (P2P = %.0f%% of it), to /dev/null %.0f MiB/s (%.0f%%)",
			mibps(o.size, tcpFile), 100*float64(tcpFile)/float64(p2p), mibps(o.size, tcpNull), 100*float64(tcpNull)/float64(p2p))
	}
	logf("%s", summary)
	if o.out == "" {
		return nil
	}

	var b strings.Builder
	fmt.Fprintf(&b, "## Loopback: one agent pulls %s from one origin, no rate limit\n\n", sizeStr(o.size))
	fmt.Fprintf(&b, "- Command: `%s`\n", command(o))
	fmt.Fprintf(&b, "- Run: %s, %s; load average at start %s\n", start.UTC().Format("2006-01-02 15:04 UTC"), time.Since(start).Round(time.Second), load)
	fmt.Fprintf(&b, "- Machine: %s\n", perf.Machine())
	fmt.Fprintf(&b, "- Setup: `bin/shoal-origin` (P2P on %s), `bin/shoal-tracker` and `bin/shoal-agent` (P2P on %s) on loopback, unpinned, default configs; piece length %s (Shoal's choice for the size); a random blob streamed into the origin first. P2P: a fresh agent (empty store) per run is asked for the blob through its registry API (`GET /v2/<repo>/blobs/<digest>`); above `direct_below` (1 MiB), so it comes through the swarm from the origin; time from the GET to the last byte; the agent's stored copy is hashed afterwards (untimed). TCP: the origin's stored file of the blob is sent over one loopback TCP connection by a sender doing read+write (256 KiB) to a receiver doing read+write (256 KiB) into a file, as a plain copy tool would; and again into /dev/null\n",
		originPeerIP, agentPeerIP, sizeStr(metainfo.PieceLength(o.size)))
	fmt.Fprintf(&b, "\n| measure | value |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| **P2P pull through the agent, median of %d** | **%s = %.0f MiB/s** |\n", len(pulls), secs(p2p), mibps(o.size, p2p))
	if len(copies) > 0 {
		fmt.Fprintf(&b, "| plain TCP copy into a file, median of %d | %s = %.0f MiB/s |\n", len(copies), secs(tcpFile), mibps(o.size, tcpFile))
		fmt.Fprintf(&b, "| **P2P / TCP copy into a file** | **%.0f%%** (target at least 70%%) |\n", 100*float64(tcpFile)/float64(p2p))
		fmt.Fprintf(&b, "| plain TCP copy into /dev/null, median | %s = %.0f MiB/s |\n", secs(tcpNull), mibps(o.size, tcpNull))
		fmt.Fprintf(&b, "| P2P / TCP copy into /dev/null | %.0f%% |\n", 100*float64(tcpNull)/float64(p2p))
	}
	fmt.Fprintf(&b, "| **agent peak RSS (VmHWM), max over runs** | **%d MiB** (target under 150 MiB for 4 GiB) |\n", rss>>20)
	b.WriteString("\nPer run:\n\n| run | P2P first byte | P2P done | P2P MiB/s | agent peak RSS | agent CPU s | origin CPU s | sha256 ok | TCP into file | TCP CPU s | TCP into /dev/null |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i := range max(len(pulls), len(copies)) {
		row := []string{strconv.Itoa(i + 1)}
		if i < len(pulls) {
			p := pulls[i]
			row = append(row, secs(p.ttfb), secs(p.done), fmt.Sprintf("%.0f", mibps(o.size, p.done)), fmt.Sprintf("%d MiB", p.rss>>20),
				fmt.Sprintf("%.1f", p.agentCPU), fmt.Sprintf("%.1f", p.originCPU), "yes")
		} else {
			row = append(row, "", "", "", "", "", "", "")
		}
		if i < len(copies) {
			c := copies[i]
			row = append(row, fmt.Sprintf("%s (%.0f MiB/s)", secs(c.toFile), mibps(o.size, c.toFile)), fmt.Sprintf("%.1f", c.cpuFile),
				fmt.Sprintf("%s (%.0f MiB/s)", secs(c.toNull), mibps(o.size, c.toNull)))
		} else {
			row = append(row, "", "", "")
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return perf.WriteSection(o.out, "loopback size="+strconv.FormatInt(o.size, 10), b.String())
}

func command(o options) string {
	s := "go run ./test/perf/loopback -size " + strings.ReplaceAll(sizeStr(o.size), " ", "")
	if o.runs != 3 {
		s += fmt.Sprintf(" -runs %d", o.runs)
	}
	if !o.tcp {
		s += " -tcp=false"
	}
	return s + " -out " + o.out
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

func median[T any](xs []T, f func(T) time.Duration) time.Duration {
	v := make([]time.Duration, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// upload streams size random bytes into the origin and returns their digest.
func upload(ctx context.Context, originURL string, size int64) (digest.Digest, error) {
	oc := originclient.New(originURL, &http.Client{})
	id, err := oc.StartUpload(ctx)
	if err != nil {
		return "", err
	}
	var seed [32]byte
	binaryTime := time.Now().UnixNano()
	for i := range 8 {
		seed[i] = byte(binaryTime >> (8 * i))
	}
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8(seed), size), h)
	n, err := oc.AppendUpload(ctx, id, 0, src)
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("upload: origin holds %d of %d bytes", n, size)
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	return d, oc.CommitUpload(ctx, id, d)
}

// pullOnce GETs the blob from the agent's registry and counts its bytes.
func pullOnce(ctx context.Context, agentAddr string, d digest.Digest, size int64, timeout time.Duration, agent, origin *perf.Proc) (pull, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a0, o0 := perf.CPUSeconds(agent.Pid()), perf.CPUSeconds(origin.Pid())
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true, Proxy: nil}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/v2/bench/blob/blobs/%s", agentAddr, d), nil)
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return pull{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return pull{}, fmt.Errorf("GET blob: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var p pull
	buf := make([]byte, copyBuf)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && p.bytes == 0 {
			p.ttfb = time.Since(start)
		}
		p.bytes += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, fmt.Errorf("after %d bytes: %w", p.bytes, err)
		}
	}
	p.done = time.Since(start)
	if p.bytes != size {
		return p, fmt.Errorf("got %d bytes, want %d", p.bytes, size)
	}
	p.rss = perf.Status(agent.Pid(), "VmHWM")
	p.originPeak = perf.Status(origin.Pid(), "VmHWM")
	p.agentCPU = perf.CPUSeconds(agent.Pid()) - a0
	p.originCPU = perf.CPUSeconds(origin.Pid()) - o0
	return p, nil
}

// waitIdle waits until p has used under 2% of a core for half a second.
func waitIdle(p *perf.Proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c0 := perf.CPUSeconds(p.Pid())
		time.Sleep(500 * time.Millisecond)
		if perf.CPUSeconds(p.Pid())-c0 < 0.01 {
			return nil
		}
	}
	return fmt.Errorf("%s still busy after %s", p.Name, timeout)
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo, so copies go through a user-space
// buffer with read and write calls (no sendfile or splice), as a plain copy tool's do.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// tcpCopies sends the file at src over loopback TCP into a file at dst, then into
// /dev/null, and times both (from dialling to the receiver's last write).
func tcpCopies(src, dst string, size int64) (copyRun, error) {
	var c copyRun
	cpu0 := perf.CPUSeconds(os.Getpid())
	d, err := tcpCopy(src, dst, size)
	if err != nil {
		return c, err
	}
	c.toFile, c.cpuFile = d, perf.CPUSeconds(os.Getpid())-cpu0
	if c.toNull, err = tcpCopy(src, os.DevNull, size); err != nil {
		return c, err
	}
	return c, nil
}

func tcpCopy(src, dst string, size int64) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		out, err := os.Create(dst)
		if err != nil {
			got <- result{err: err}
			return
		}
		n, err := io.CopyBuffer(onlyWriter{out}, onlyReader{conn}, make([]byte, copyBuf))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		got <- result{n, err}
	}()
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	start := time.Now()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	if _, err := io.CopyBuffer(onlyWriter{conn}, onlyReader{in}, make([]byte, copyBuf)); err != nil {
		conn.Close()
		return 0, err
	}
	conn.Close()
	r := <-got
	took := time.Since(start)
	if r.err != nil {
		return 0, r.err
	}
	if r.n != size {
		return 0, fmt.Errorf("TCP copy: %d of %d bytes", r.n, size)
	}
	return took, nil
}

// waitFile waits for path to exist.
func waitFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(path)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
