package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// workerArg is the first argument that makes the program a fetch worker: the harness
// re-executes itself with `ip netns exec <agent ns>`, so the client runs on the agent's
// host and reads from the agent over loopback (as dockerd would), or from the origin
// over the agent's rate-limited link (the HTTP baseline).
const workerArg = "__fetch"

// fetchResult is what a worker reports on stdout.
type fetchResult struct {
	Bytes int64         `json:"bytes"`
	SHA   string        `json:"sha256"`
	TTFB  time.Duration `json:"ttfb"` // start -> first body byte
	Done  time.Duration `json:"done"` // start -> last body byte
	Late  time.Duration `json:"late"` // how late the worker began after the common start
	Err   string        `json:"error,omitempty"`
}

func runWorker(args []string) int {
	fs := flag.NewFlagSet(workerArg, flag.ContinueOnError)
	url := fs.String("url", "", "URL to GET")
	startNs := fs.Int64("start", 0, "common start, Unix nanoseconds")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	from := fs.Int64("from", 0, "read bytes from this offset to the end first, then the head (two Range requests; sha256 reports both parts)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	start := time.Unix(0, *startNs)
	time.Sleep(time.Until(start))
	res := fetch(*url, *from, start, *timeout)
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func fetch(url string, from int64, start time.Time, timeout time.Duration) (res fetchResult) {
	res.Late = time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true, Proxy: nil}}
	ranges := []string{""}
	if from > 0 {
		ranges = []string{fmt.Sprintf("bytes=%d-", from), fmt.Sprintf("bytes=0-%d", from-1)}
	}
	var sums []string
	buf := make([]byte, 1<<20)
	for _, rng := range ranges {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			res.Err = err.Error()
			return res
		}
		want := http.StatusOK
		if rng != "" {
			req.Header.Set("Range", rng)
			want = http.StatusPartialContent
		}
		resp, err := hc.Do(req)
		if err != nil {
			res.Err = err.Error()
			return res
		}
		if resp.StatusCode != want {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			res.Err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
			return res
		}
		h := sha256.New()
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if res.Bytes == 0 {
					res.TTFB = time.Since(start)
				}
				res.Bytes += int64(n)
				h.Write(buf[:n])
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				resp.Body.Close()
				res.Err = err.Error()
				return res
			}
		}
		resp.Body.Close()
		sums = append(sums, "sha256:"+hex.EncodeToString(h.Sum(nil)))
	}
	res.Done = time.Since(start)
	res.SHA = strings.Join(sums, ",")
	return res
}

// spawnFetch starts a worker in namespace ns; wait returns its result.
type worker struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	res    fetchResult
}

func spawnFetch(ctx context.Context, ns, url string, from int64, start time.Time, timeout time.Duration) (*worker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	w := &worker{done: make(chan struct{})}
	w.cmd = exec.CommandContext(ctx, "ip", "netns", "exec", ns, self, workerArg,
		"-url", url, "-from", strconv.FormatInt(from, 10),
		"-start", strconv.FormatInt(start.UnixNano(), 10), "-timeout", timeout.String())
	w.cmd.Stdout, w.cmd.Stderr = &w.stdout, &w.stderr
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(w.done)
		err := w.cmd.Wait()
		if jerr := json.Unmarshal(w.stdout.Bytes(), &w.res); jerr != nil {
			w.res.Err = fmt.Sprintf("worker in %s: %v (%v): %s", ns, err, jerr, bytes.TrimSpace(w.stderr.Bytes()))
		}
	}()
	return w, nil
}
