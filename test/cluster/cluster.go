// Package cluster starts a local Shoal cluster from the built binaries in bin/: one
// proxy and build-index, two trackers, three origins sharing one backend, and N agents, each
// origin and agent on its own loopback address for P2P (the BitTorrent engine bans
// peers per IP). It backs `make devcluster`, `make demo` and the end-to-end tests.
//
// State layout (wiped on Start):
//
//	<state>/
//	  backend/                   filesystem backend standing in for S3 (blobs and tags),
//	                             shared by every origin and build-index
//	  origin1/ origin2/ origin3/ each origin's content-addressed store
//	  agent1/ agent2/ ...        each agent's store
//	  <name>.log                 each process's log
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Fixed devcluster addresses; the configs in config/devcluster/ use the same.
const (
	ProxyAddr      = "127.0.0.1:15000"
	BuildIndexAddr = "127.0.0.1:15100"
	TrackerAddr    = "127.0.0.1:15300"
	// Tracker2Addr is the second tracker's (process tracker2): agents announce every
	// blob to both, so either may go.
	Tracker2Addr = "127.0.0.1:15310"
	// Origins is how many origins the devcluster runs; the configs list them all.
	Origins = 3
)

// Origin is one origin's addresses.
type Origin struct {
	Name     string // also its data folder
	Addr     string // host:port of its HTTP API
	PeerIP   string
	PeerPort int
}

// OriginAt returns the devcluster's i-th origin (0-based): HTTP at 127.0.0.1:15200,
// 15210, 15220, P2P at 127.0.0.10:15201, 127.0.0.11:15211, 127.0.0.12:15221.
func OriginAt(i int) Origin {
	port := 15200 + 10*i
	return Origin{
		Name:     fmt.Sprintf("origin%d", i+1),
		Addr:     fmt.Sprintf("127.0.0.1:%d", port),
		PeerIP:   fmt.Sprintf("127.0.0.%d", 10+i),
		PeerPort: port + 1,
	}
}

// Agent is one agent's addresses.
type Agent struct {
	Name     string
	Registry string // host:port of its registry API (also /health, /metrics)
	PeerIP   string
	PeerPort int
}

// AgentAt returns the devcluster's i-th agent (0-based): registries at 127.0.0.1:16000,
// 17000, 18000, ..., P2P at 127.0.0.2, .3, .4, ...
func AgentAt(i int) Agent {
	port := 16000 + 1000*i
	return Agent{
		Name:     fmt.Sprintf("agent%d", i+1),
		Registry: fmt.Sprintf("127.0.0.1:%d", port),
		PeerIP:   fmt.Sprintf("127.0.0.%d", i+2),
		PeerPort: port + 1,
	}
}

// Options configure Start.
type Options struct {
	// Root is the repository root (holding bin/ and config/); found from the working
	// directory when empty.
	Root string
	// State is the state folder, wiped on start; <Root>/state when empty.
	State string
	// Agents is the number of agents (default 3).
	Agents int
	// ConfigDir holds the configs (agent.yaml, buildindex.yaml, origin.yaml, proxy.yaml,
	// tracker.yaml) for the same topology and addresses; <Root>/config/devcluster when
	// empty. Relative paths in them are relative to the state folder. An agent<N>.yaml
	// there, when present, is agent N's config instead of agent.yaml.
	ConfigDir string
	// Secure runs the cluster secured (`make devcluster SECURE=1`): generated
	// certificates (the CA at <state>/certs/ca.pem), mTLS between every component and
	// on every listener (the same addresses, over https), and push auth with a
	// generated user (Cluster.Security).
	Secure bool
}

// Cluster is a running local cluster.
type Cluster struct {
	State   string
	Origins []Origin
	Agents  []Agent
	// Security is set for a secured cluster (Options.Secure).
	Security *Security
	procs    []*process
	hc       *http.Client // health checks
	scheme   string       // of every listener: http, or https when secured
}

type process struct {
	name   string
	binary string
	args   []string
	health string
	cmd    *exec.Cmd
	done   chan error
	log    *os.File
}

// Start wipes the state folder, starts every process and waits until each answers
// GET /health. On error, whatever started is stopped.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(o.State); err != nil {
		return nil, fmt.Errorf("wipe %s: %w", o.State, err)
	}
	if err := os.MkdirAll(o.State, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.State, err)
	}
	c := &Cluster{State: o.State, hc: http.DefaultClient, scheme: "http"}
	if o.Secure {
		dir, err := c.secure(o.ConfigDir)
		if err != nil {
			return nil, fmt.Errorf("secure the cluster: %w", err)
		}
		o.ConfigDir, c.hc, c.scheme = dir, c.Security.Client, "https"
	}
	cfg := func(name string) string { return filepath.Join(o.ConfigDir, name+".yaml") }
	bin := func(name string) string { return filepath.Join(o.Root, "bin", "shoal-"+name) }
	type spec struct {
		name, binary, health string
		args                 []string
	}
	specs := []spec{{"buildindex", "buildindex", BuildIndexAddr, []string{"--config", cfg("buildindex")}}}
	for i := range Origins {
		o := OriginAt(i)
		c.Origins = append(c.Origins, o)
		specs = append(specs, spec{o.Name, "origin", o.Addr, []string{
			"--config", cfg("origin"), "--listen", o.Addr, "--advertise", c.scheme + "://" + o.Addr,
			"--data-dir", o.Name, "--peer-ip", o.PeerIP, "--peer-port", strconv.Itoa(o.PeerPort),
		}})
	}
	specs = append(specs,
		spec{"tracker", "tracker", TrackerAddr, []string{"--config", cfg("tracker"), "--listen", TrackerAddr}},
		spec{"tracker2", "tracker", Tracker2Addr, []string{"--config", cfg("tracker"), "--listen", Tracker2Addr}},
		spec{"proxy", "proxy", ProxyAddr, []string{"--config", cfg("proxy")}},
	)
	for i := 0; i < o.Agents; i++ {
		a := AgentAt(i)
		c.Agents = append(c.Agents, a)
		// An agent's own config (agent1.yaml, ...) wins over the shared agent.yaml, for
		// settings that differ per node (e.g. the containerd hosts folder it writes).
		agentCfg := cfg("agent")
		if _, err := os.Stat(cfg(a.Name)); err == nil {
			agentCfg = cfg(a.Name)
		}
		specs = append(specs, spec{a.Name, "agent", a.Registry, []string{
			"--config", agentCfg, "--listen", a.Registry, "--data-dir", a.Name,
			"--peer-ip", a.PeerIP, "--peer-port", strconv.Itoa(a.PeerPort),
		}})
	}
	for _, s := range specs {
		p := &process{name: s.name, binary: bin(s.binary), args: s.args, health: s.health}
		c.procs = append(c.procs, p)
		if err := c.start(ctx, p); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, p *process) error {
	if err := c.spawn(p); err != nil {
		return err
	}
	if err := waitHealthy(ctx, c.hc, c.scheme, p, p.health); err != nil {
		return fmt.Errorf("%s did not become healthy (log: %s): %w", p.name, p.log.Name(), err)
	}
	return nil
}

// StopProcess stops one process by name ("origin1", "agent1", ...), for fault tests.
func (c *Cluster) StopProcess(name string) error {
	p, err := c.find(name)
	if err != nil {
		return err
	}
	p.stop()
	return nil
}

// Kill sends SIGKILL to one process by name and waits for it to exit: a crash, with
// no graceful shutdown, for fault tests. StartProcess starts it again.
func (c *Cluster) Kill(name string) error {
	p, err := c.find(name)
	if err != nil {
		return err
	}
	p.kill()
	return nil
}

// StartProcess starts a process stopped by StopProcess or Kill (or exited) again, with
// its state kept. A process still running is left alone: a second copy would fail to
// bind its ports and orphan the first.
func (c *Cluster) StartProcess(ctx context.Context, name string) error {
	p, err := c.find(name)
	if err != nil {
		return err
	}
	if p.running() {
		return nil
	}
	return c.start(ctx, p)
}

// running reports whether p was started and has not exited.
func (p *process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case err := <-p.done:
		p.done <- err
		return false
	default:
		return true
	}
}

func (c *Cluster) find(name string) (*process, error) {
	for _, p := range c.procs {
		if p.name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no process %q in the cluster", name)
}

func (o *Options) defaults() error {
	if o.Root == "" {
		root, err := FindRoot()
		if err != nil {
			return err
		}
		o.Root = root
	}
	if o.State == "" {
		o.State = filepath.Join(o.Root, "state")
	}
	if o.Agents == 0 {
		o.Agents = 3
	}
	if o.ConfigDir == "" {
		o.ConfigDir = filepath.Join(o.Root, "config", "devcluster")
	}
	// The processes run in the state folder.
	dir, err := filepath.Abs(o.ConfigDir)
	if err != nil {
		return err
	}
	o.ConfigDir = dir
	for _, b := range []string{"proxy", "buildindex", "origin", "tracker", "agent"} {
		if _, err := os.Stat(filepath.Join(o.Root, "bin", "shoal-"+b)); err != nil {
			return fmt.Errorf("binary bin/shoal-%s missing (run make build first): %w", b, err)
		}
	}
	return nil
}

// FindRoot walks up from the working directory to the folder holding go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
}

func (c *Cluster) spawn(p *process) error {
	logf, err := os.OpenFile(filepath.Join(c.State, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.binary, p.args...)
	cmd.Dir = c.State
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.log, p.done = cmd, logf, make(chan error, 1)
	go func() { p.done <- cmd.Wait() }()
	return nil
}

func waitHealthy(ctx context.Context, hc *http.Client, scheme string, p *process, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := scheme + "://" + addr + "/health"
	for {
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("exited: %v", err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Processes is how many processes the cluster started.
func (c *Cluster) Processes() int {
	n := 0
	for _, p := range c.procs {
		if p.cmd != nil {
			n++
		}
	}
	return n
}

// Exited reports each process that exits, once, with its error and log, so a
// foreground runner can say which part of the cluster died.
func (c *Cluster) Exited() <-chan string {
	ch := make(chan string, len(c.procs))
	for _, p := range c.procs {
		if p.cmd == nil {
			continue
		}
		go func() {
			err := <-p.done
			p.done <- err
			ch <- fmt.Sprintf("%s exited: %v (log: %s)", p.name, err, p.log.Name())
		}()
	}
	return ch
}

// Stop sends SIGTERM to every process (agents first), waits up to 10 s each, then kills.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
}

func (p *process) kill() {
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	err := <-p.done
	p.done <- err
	p.log.Close()
	p.cmd = nil
}

func (p *process) stop() {
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		err := <-p.done
		p.done <- err
	}
	p.log.Close()
	p.cmd = nil
}
