// Package perf holds what the single-host benchmarks in test/perf share: writing a
// results section into docs/BENCHMARKS.md, pinning to a CPU, reading a process's CPU
// time and peak RSS, and describing the machine.
package perf

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// WriteSection puts md into the file at path between the markers of key, replacing an
// earlier section of the same key or appending it. The markers (perf:begin/perf:end)
// differ from the swarm harness's (bench:begin/bench:end), so neither touches the
// other's sections. The file is read just before it is written.
func WriteSection(path, key, md string) error {
	begin := "<!-- perf:begin " + key + " -->"
	end := "<!-- perf:end " + key + " -->"
	section := begin + "\n" + strings.TrimRight(md, "\n") + "\n" + end + "\n"
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		old, err = []byte("# Shoal benchmarks\n"), nil
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

// PinEnv marks a process PinSelf has already pinned.
const PinEnv = "SHOAL_PERF_PINNED"

// PinSelf re-executes the running program under `taskset -c cpu` (once; under nice
// too if Nice is set) and exits
// with its status, so every thread of the Go runtime runs on that CPU. cpu < 0 or no
// taskset: it returns and the program runs unpinned.
func PinSelf(cpu int) {
	if cpu < 0 || os.Getenv(PinEnv) != "" {
		return
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskset not found: running unpinned")
		return
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	argv := append([]string{ts, "-c", strconv.Itoa(cpu), self}, os.Args[1:]...)
	if Nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(Nice)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), PinEnv+"=1")
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

var clockTicks = func() float64 {
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}()

// CPUSeconds returns utime+stime of process pid (all threads) so far; 0 if unknown.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// Status returns a field of /proc/<pid>/status in bytes (VmHWM, VmRSS, ...); 0 if
// unknown.
func Status(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// Machine describes the host for a results section.
func Machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	// runtime.NumCPU counts the CPUs of this process's affinity mask (1 once pinned):
	// count the machine's.
	ncpu := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "processor") {
				ncpu++
			}
		}
	}
	if ncpu == 0 {
		ncpu = runtime.NumCPU()
	}
	return fmt.Sprintf("nproc %d, kernel %s, %s, %s", ncpu, strings.TrimSpace(string(kernel)), runtime.Version(), model)
}

// LoadAvg returns the 1, 5 and 15 minute load averages.
func LoadAvg() string {
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

// WaitHealthy polls GET base/health until it answers 200, the process exits (done
// closed) or 30 s pass.
func WaitHealthy(ctx context.Context, base string, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		select {
		case <-done:
			return fmt.Errorf("exited before %s/health answered", base)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s/health: %w", base, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FindRoot walks up from the working directory to the folder holding go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(dir + "/go.mod"); err == nil {
			return dir, nil
		}
		parent := dir[:max(strings.LastIndexByte(dir, '/'), 0)]
		if parent == dir || parent == "" {
			return "", fmt.Errorf("no go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
}

// CPUTimes are one CPU's counters from /proc/stat, in clock ticks.
type CPUTimes struct {
	Busy, Idle, SoftIRQ float64
}

// ReadCPU returns the counters of CPU cpu (-1: all CPUs).
func ReadCPU(cpu int) CPUTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}
	}
	name := "cpu"
	if cpu >= 0 {
		name += strconv.Itoa(cpu)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != name {
			continue
		}
		var v [8]float64
		for i := range v {
			v[i], _ = strconv.ParseFloat(f[i+1], 64)
		}
		// user nice system idle iowait irq softirq steal
		return CPUTimes{Busy: v[0] + v[1] + v[2] + v[5] + v[6] + v[7], Idle: v[3] + v[4], SoftIRQ: v[6]}
	}
	return CPUTimes{}
}

// Since returns the busy and softirq shares of the CPU between t0 and t.
func (t CPUTimes) Since(t0 CPUTimes) (busy, softirq float64) {
	total := (t.Busy - t0.Busy) + (t.Idle - t0.Idle)
	if total <= 0 {
		return 0, 0
	}
	return (t.Busy - t0.Busy) / total, (t.SoftIRQ - t0.SoftIRQ) / total
}
