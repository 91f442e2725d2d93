package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The testbed: one network namespace per host, each with an eth0 whose veth peer is a
// port of a bridge in the root namespace. Only 10.99.0.0/24 is used.
//
//	root ns : bridge shb-br, 10.99.0.1/24 (the harness talks to every host through it)
//	tracker : netns shb-tr, 10.99.0.2 (build-index runs there too)
//	origin i: netns shb-o<i>, 10.99.0.<9+i>   (i = 1..40)
//	agent i : netns shb-a<i>, 10.99.0.<49+i>  (i = 1..200)
//
// Upload limit of a host = tbf on its eth0 (its egress); download limit = tbf on its
// bridge-side veth shb-<x>v (the bridge's egress towards it). netem is not available
// on the kernels this runs on, so only bandwidth is shaped, not latency.
const (
	prefix    = "shb-"
	bridge    = prefix + "br"
	subnet    = "10.99.0"
	bridgeIP  = subnet + ".1"
	fwComment = "shoal-bench"
	maxAgents = 200
	maxOrigin = 40
)

// host is one namespace of the testbed.
type host struct {
	name string // short name: tr, o1, a3
	ns   string // netns name
	ip   string
}

func (h host) veth() string { return prefix + h.name + "v" }

func trackerHost() host { return host{name: "tr", ns: prefix + "tr", ip: subnet + ".2"} }

func originHost(i int) host { // i is 1-based
	return host{name: fmt.Sprintf("o%d", i), ns: fmt.Sprintf("%so%d", prefix, i), ip: fmt.Sprintf("%s.%d", subnet, 9+i)}
}

func agentHost(i int) host { // i is 1-based
	return host{name: fmt.Sprintf("a%d", i), ns: fmt.Sprintf("%sa%d", prefix, i), ip: fmt.Sprintf("%s.%d", subnet, 49+i)}
}

// run runs a command and returns its error with the command's output in it.
func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).Output()
	return string(out)
}

// testbed is the set of namespaces a run created; down removes them.
type testbed struct {
	hosts    []host
	fwRule   bool
	logf     func(format string, args ...any)
	upRate   float64 // Mbit/s, 0 = unlimited
	downRate float64
}

// up creates the bridge and one namespace per host, with no rate limit yet.
func (tb *testbed) up(hosts []host) error {
	if err := sh("ip", "link", "add", bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := sh("ip", "addr", "add", bridgeIP+"/24", "dev", bridge); err != nil {
		return err
	}
	if err := sh("ip", "link", "set", bridge, "up"); err != nil {
		return err
	}
	if err := tb.allowForwarding(); err != nil {
		return err
	}
	for _, h := range hosts {
		tb.hosts = append(tb.hosts, h)
		tmp := prefix + h.name + "p"
		steps := [][]string{
			{"netns", "add", h.ns},
			{"link", "add", h.veth(), "type", "veth", "peer", "name", tmp},
			{"link", "set", tmp, "netns", h.ns},
			{"-n", h.ns, "link", "set", tmp, "name", "eth0"},
			{"link", "set", h.veth(), "master", bridge},
			{"link", "set", h.veth(), "up"},
			{"-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"},
			{"-n", h.ns, "link", "set", "eth0", "up"},
			{"-n", h.ns, "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if err := sh("ip", s...); err != nil {
				return fmt.Errorf("host %s: %w", h.name, err)
			}
		}
	}
	return nil
}

// allowForwarding accepts traffic inside 10.99.0.0/24 in the root namespace's FORWARD
// chain. With br_netfilter loaded (bridge-nf-call-iptables = 1), frames crossing the
// bridge go through iptables, and a DROP policy there (Docker sets one) would cut every
// host off from the others. The rule is tagged and removed by down.
func (tb *testbed) allowForwarding() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		tb.logf("iptables not found: assuming bridged traffic is not filtered")
		return nil
	}
	if err := sh("iptables", fwRuleArgs("-I")...); err != nil {
		return err
	}
	tb.fwRule = true
	return nil
}

func fwRuleArgs(op string) []string {
	args := []string{op, "FORWARD"}
	if op == "-I" {
		args = append(args, "1")
	}
	return append(args, "-s", subnet+".0/24", "-d", subnet+".0/24", "-m", "comment", "--comment", fwComment, "-j", "ACCEPT")
}

// limit puts the per-host tbf limits in place (Mbit/s; 0 removes the limit).
func (tb *testbed) limit(up, down float64) error {
	tb.upRate, tb.downRate = up, down
	for _, h := range tb.hosts {
		if err := setTBF(h.ns, "eth0", up); err != nil {
			return fmt.Errorf("host %s upload limit: %w", h.name, err)
		}
		if err := setTBF("", h.veth(), down); err != nil {
			return fmt.Errorf("host %s download limit: %w", h.name, err)
		}
	}
	return nil
}

func setTBF(ns, dev string, mbit float64) error {
	var pre []string
	if ns != "" {
		pre = []string{"netns", "exec", ns}
	}
	tc := func(args ...string) error {
		if ns == "" {
			return sh("tc", args...)
		}
		return sh("ip", append(append(pre, "tc"), args...)...)
	}
	if mbit <= 0 {
		_ = tc("qdisc", "del", "dev", dev, "root")
		return nil
	}
	// The bucket must hold at least a few ms of traffic at the rate, and never less
	// than the reference testbed's 256 KiB.
	burst := max(256<<10, int64(mbit*1e6/8/200))
	return tc("qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatFloat(mbit, 'f', -1, 64)+"mbit",
		"burst", strconv.FormatInt(burst, 10), "latency", "50ms")
}

// down removes everything the harness may have left: its namespaces (killing what
// still runs in them), its links, the bridge and the forwarding rule. Safe to call
// when nothing exists.
func (tb *testbed) down() {
	cleanupTestbed(tb.logf)
	tb.hosts = nil
	tb.fwRule = false
}

// cleanupTestbed removes every shb-* namespace and link and the harness's FORWARD
// rule, also those of an earlier run that was killed.
func cleanupTestbed(logf func(string, ...any)) {
	var nss []string
	for _, line := range strings.Split(output("ip", "netns", "list"), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			nss = append(nss, f[0])
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		killed := false
		for _, ns := range nss {
			for _, p := range strings.Fields(output("ip", "netns", "pids", ns)) {
				if pid, err := strconv.Atoi(p); err == nil && pid != os.Getpid() {
					_ = syscall.Kill(pid, sig)
					killed = true
				}
			}
		}
		if killed && sig == syscall.SIGTERM {
			time.Sleep(time.Second)
		}
	}
	for _, ns := range nss {
		if err := sh("ip", "netns", "del", ns); err != nil {
			logf("cleanup: %v", err)
		}
	}
	for _, line := range strings.Split(output("ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, prefix) && name != bridge {
			_ = sh("ip", "link", "del", name)
		}
	}
	if strings.Contains(output("ip", "-o", "link", "show", bridge), bridge) {
		if err := sh("ip", "link", "del", bridge); err != nil {
			logf("cleanup: %v", err)
		}
	}
	if _, err := exec.LookPath("iptables"); err == nil {
		for range 10 { // one per earlier run that left its rule
			if sh("iptables", fwRuleArgs("-D")...) != nil {
				break
			}
		}
	}
}

// requireRoot fails early with the reason instead of half-building a testbed.
func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, tc, iptables): run as root, e.g. sudo make bench")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install iproute2", tool)
		}
	}
	return nil
}
