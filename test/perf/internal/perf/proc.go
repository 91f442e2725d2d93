package perf

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a Shoal binary the benchmark started.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Done chan struct{} // closed when it exits
	Err  error
	log  *os.File
}

// Nice, when not 0, is the niceness Start and PinSelf run programs with (negative
// needs root): on a shared machine it keeps other jobs from taking the core a
// benchmark pins a program to.
var Nice int

// Start runs bin with args, its output into logPath, pinned to cpu with taskset when
// cpu >= 0, in its own process group, with env added to this process's environment.
// The pid is the binary's (taskset execs it).
func Start(name, bin, logPath string, cpu int, env []string, args ...string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	argv := append([]string{bin}, args...)
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	if d := Nice - ownNice(); Nice != 0 && d != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(d)}, argv...) // nice -n is relative
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Done: make(chan struct{}), log: logf}
	go func() {
		p.Err = cmd.Wait()
		close(p.Done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Stop sends SIGTERM to the process group, waits up to 10 s, then kills it.
func (p *Proc) Stop() {
	if p == nil || p.Cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.Done
	}
	p.log.Close()
}

// ownNice returns this process's niceness (field 19 of /proc/self/stat).
func ownNice() int {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 17 {
		return 0
	}
	n, _ := strconv.Atoi(f[16])
	return n
}
