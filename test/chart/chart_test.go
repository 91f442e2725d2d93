//go:build e2e

// Package chart renders the Helm chart (charts/shoal) with `helm template` and checks
// what the pods are given, beyond the render-or-refuse lists of `make chart-lint`,
// which runs it: the generated config files, the Secret volumes behind their file
// paths, and the chart's own refusals by message. It needs helm ($SHOAL_HELM, default
// .tools/bin/helm from `make kube-tools`); behind the e2e tag like the other tests that
// need outside tools.
package chart

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const release, namespace = "shoal", "shoal"

// repoRoot is the checkout this file is in.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func helmBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SHOAL_HELM")
	if bin == "" {
		bin = filepath.Join(repoRoot(), ".tools", "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no helm at %s (make kube-tools builds it, or set SHOAL_HELM): %v", bin, err)
	}
	return bin
}

// helm runs helm <verb> on the chart with args, from the repository root.
func helm(t *testing.T, verb string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	full := []string{verb}
	if verb == "template" {
		full = append(full, release)
	}
	full = append(full, filepath.Join("charts", "shoal"), "--namespace", namespace)
	cmd := exec.Command(helmBin(t), append(full, args...)...)
	cmd.Dir = repoRoot()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// object is one rendered manifest, decoded as far as the checks read it.
type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	Containers []struct {
		Name         string  `yaml:"name"`
		VolumeMounts []mount `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []volume `yaml:"volumes"`
}

type mount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName  string              `yaml:"secretName"`
		DefaultMode int                 `yaml:"defaultMode"`
		Items       []map[string]string `yaml:"items"`
	} `yaml:"secret"`
}

// rendered is a successful helm template: its objects by kind/name.
type rendered map[string]object

func render(t *testing.T, args ...string) rendered {
	t.Helper()
	out, errOut, err := helm(t, "template", args...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	r := rendered{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o object
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template %s: decode: %v", strings.Join(args, " "), err)
		}
		if o.Kind != "" {
			r[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	return r
}

func (r rendered) get(t *testing.T, key string) object {
	t.Helper()
	o, ok := r[key]
	if !ok {
		t.Fatalf("no %s rendered", key)
	}
	return o
}

// config is the component's config file, from its ConfigMap.
func (r rendered) config(t *testing.T, component string) map[string]any {
	t.Helper()
	cm := r.get(t, "ConfigMap/"+release+"-"+component+"-config")
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data[component+".yaml"]), &cfg); err != nil {
		t.Fatalf("%s.yaml: %v", component, err)
	}
	return cfg
}

// at walks a decoded config by keys (strings) and list indexes (ints).
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %v", path, path[:i])
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d at %v", path, k, path[:i])
			}
			v = l[k]
		}
	}
	return v
}

func want(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// secretFile is where the pod sees file path: the Secret key mounted there, as
// "<secret>[<key>]", or "" when no Secret volume of the container holds it.
func secretFile(spec podSpec, container, path string) string {
	vols := map[string]volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	for _, c := range spec.Containers {
		if c.Name != container {
			continue
		}
		for _, m := range c.VolumeMounts {
			v := vols[m.Name]
			if v.Secret == nil || !m.ReadOnly || !strings.HasPrefix(path, m.MountPath+"/") {
				continue
			}
			for _, it := range v.Secret.Items {
				if m.MountPath+"/"+it["path"] == path {
					return v.Secret.SecretName + "[" + it["key"] + "]"
				}
			}
		}
	}
	return ""
}

// The chart's tracker block, as the agents are given it.
var trackers = map[string]any{
	"dns":             "shoal-tracker-members.shoal.svc.cluster.local:15300",
	"dns_interval":    "10s",
	"replicas":        2,
	"health_interval": "5s",
}

func TestDefaultsNoPreheat(t *testing.T) {
	t.Parallel()
	r := render(t)
	if p, ok := r.config(t, "proxy")["preheat"]; ok {
		t.Errorf("proxy.yaml has preheat %v with preheat.enabled false", p)
	}
	spec := r.get(t, "Deployment/shoal-proxy").Spec.Template.Spec
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			t.Errorf("proxy pod mounts Secret %s with preheat.enabled false", v.Secret.SecretName)
		}
	}
	agent := r.config(t, "agent")
	want(t, "agent warm", at(t, agent, "warm"), map[string]any{"poll_interval": "5s", "max_blobs": 2})
	want(t, "agent trackers", at(t, agent, "trackers"), trackers)
	want(t, "tracker warm", at(t, r.config(t, "tracker"), "warm"), map[string]any{"agent_ttl": "30s"})
}

func TestPreheatSecretsAndTrackers(t *testing.T) {
	t.Parallel()
	values := []string{"-f", filepath.Join("test", "chart", "testdata", "preheat.yaml")}
	r := render(t, values...)
	p := at(t, r.config(t, "proxy"), "preheat")
	want(t, "preheat.enabled", at(t, p, "enabled"), true)
	want(t, "preheat.auth", at(t, p, "auth"), map[string]any{"mode": "bearer", "secret_file": "/etc/shoal/preheat/auth/secret"})
	want(t, "preheat.runner", at(t, p, "runner"), map[string]any{
		"max_blobs_per_job": 8, "max_jobs": 3, "job_timeout": "45m",
		"platforms": []any{"linux/amd64", "linux/arm64/v8"}})
	want(t, "preheat.upstreams", at(t, p, "upstreams"), []any{
		map[string]any{"host": "harbor.example.com", "url": "https://harbor.example.com",
			"username": "robot$shoal-preheat", "password_file": "/etc/shoal/preheat/upstreams/0/password", "timeout": "20s"},
		map[string]any{"url": "http://10.0.0.9:5000", "insecure": true},
	})
	want(t, "preheat.allowed_registries", at(t, p, "allowed_registries"), []any{"harbor.example.com", "harbor.example.com:8443"})
	// The same trackers as the agents poll: the feed the proxy posts to is theirs.
	want(t, "preheat.trackers", at(t, p, "trackers"), trackers)
	want(t, "agent trackers", at(t, r.config(t, "agent"), "trackers"), trackers)

	spec := r.get(t, "Deployment/shoal-proxy").Spec.Template.Spec
	want(t, "auth.secret_file's volume", secretFile(spec, "proxy", at(t, p, "auth", "secret_file").(string)), "harbor-preheat[oauth-token]")
	want(t, "upstreams[0].password_file's volume", secretFile(spec, "proxy", at(t, p, "upstreams", 0, "password_file").(string)), "harbor-pull[robot-password]")
	var secrets []string
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			secrets = append(secrets, v.Name+"="+v.Secret.SecretName)
			want(t, v.Name+" defaultMode", v.Secret.DefaultMode, 0o440)
		}
	}
	want(t, "proxy Secret volumes", secrets, []string{"preheat-auth=harbor-preheat", "preheat-upstream-0=harbor-pull"})

	want(t, "agent warm", at(t, r.config(t, "agent"), "warm"), map[string]any{"poll_interval": "2s", "max_blobs": 3})
	want(t, "tracker warm", at(t, r.config(t, "tracker"), "warm"), map[string]any{"agent_ttl": "10s"})

	if _, errOut, err := helm(t, "lint", append([]string{"--strict"}, values...)...); err != nil {
		t.Errorf("helm lint --strict: %v\n%s", err, errOut)
	}
}

func TestPreheatAuthModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		auth map[string]any
	}{
		{"none", []string{"--set", "preheat.enabled=true"}, map[string]any{"mode": "none"}},
		{"header", []string{"--set", "preheat.enabled=true", "--set", "preheat.auth.mode=header",
			"--set", "preheat.auth.header=X-Api-Key", "--set", "preheat.auth.existingSecret=harbor-preheat"},
			map[string]any{"mode": "header", "header": "X-Api-Key", "secret_file": "/etc/shoal/preheat/auth/secret"}},
		{"basic", []string{"--set", "preheat.enabled=true", "--set", "preheat.auth.mode=basic",
			"--set", "preheat.auth.username=harbor", "--set", "preheat.auth.existingSecret=harbor-preheat"},
			map[string]any{"mode": "basic", "username": "harbor", "secret_file": "/etc/shoal/preheat/auth/secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := render(t, tc.args...)
			p := at(t, r.config(t, "proxy"), "preheat")
			want(t, "preheat.auth", at(t, p, "auth"), tc.auth)
			spec := r.get(t, "Deployment/shoal-proxy").Spec.Template.Spec
			if f, ok := tc.auth["secret_file"].(string); ok {
				want(t, "secret_file's volume", secretFile(spec, "proxy", f), "harbor-preheat[token]")
			} else if len(spec.Volumes) != 2 {
				t.Errorf("proxy volumes %v, want config and tmp only with mode none", spec.Volumes)
			}
		})
	}
}

// agent.warm.pollInterval 0 (a YAML number) turns the agents' warm feed off.
func TestAgentWarmOff(t *testing.T) {
	t.Parallel()
	r := render(t, "--set", "agent.warm.pollInterval=0")
	want(t, "agent warm.poll_interval", at(t, r.config(t, "agent"), "warm", "poll_interval"), "0")
}

// proxy.config.preheat still merges over the generated block; trackers set there
// replace the chart's instead of adding dns beside static.
func TestPreheatProxyConfigOverride(t *testing.T) {
	t.Parallel()
	r := render(t, "--set", "preheat.enabled=true", "--set", "proxy.config.preheat.runner.max_jobs=1",
		"--set", "proxy.config.preheat.trackers.static[0]=http://10.0.0.20:15300")
	p := at(t, r.config(t, "proxy"), "preheat")
	want(t, "preheat.runner.max_jobs", at(t, p, "runner", "max_jobs"), 1)
	want(t, "preheat.trackers", at(t, p, "trackers"), map[string]any{"static": []any{"http://10.0.0.20:15300"}})
}

// Values the chart refuses, each message naming the value (and, from the chart's own
// checks, the fix). Refused with preheat.enabled false too: the proxy checks its
// block while disabled as well.
func TestPreheatRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bearer without a Secret", []string{"--set", "preheat.enabled=true", "--set", "preheat.auth.mode=bearer"},
			"preheat.auth.existingSecret: empty with preheat.auth.mode bearer (create a Secret holding the token Harbor sends"},
		{"bearer without a Secret, disabled", []string{"--set", "preheat.auth.mode=bearer"},
			"preheat.auth.existingSecret: empty with preheat.auth.mode bearer"},
		{"unknown mode", []string{"--set", "preheat.enabled=true", "--set", "preheat.auth.mode=oauth"},
			"at '/preheat/auth/mode': value must be one of 'none', 'bearer', 'basic', 'header'"},
		{"empty secretKey", []string{"--set", "preheat.enabled=true", "--set", "preheat.auth.mode=bearer",
			"--set", "preheat.auth.existingSecret=s", "--set", "preheat.auth.secretKey="}, "/preheat/auth/secretKey"},
		{"header without a name", []string{"--set", "preheat.enabled=true", "--set", "preheat.auth.mode=header",
			"--set", "preheat.auth.existingSecret=s"}, "preheat.auth.header: empty with preheat.auth.mode header"},
		{"bad header name", []string{"--set", "preheat.auth.mode=header", "--set", "preheat.auth.header=X Api",
			"--set", "preheat.auth.existingSecret=s"}, "/preheat/auth/header"},
		{"basic without a user", []string{"--set", "preheat.enabled=true", "--set", "preheat.auth.mode=basic",
			"--set", "preheat.auth.existingSecret=s"}, "preheat.auth.username: empty with preheat.auth.mode basic"},
		{"user with bearer", []string{"--set", "preheat.auth.mode=bearer", "--set", "preheat.auth.existingSecret=s",
			"--set", "preheat.auth.username=u"}, "preheat.auth.username: set with preheat.auth.mode bearer"},
		{"Secret with none", []string{"--set", "preheat.enabled=true", "--set", "preheat.auth.existingSecret=s"},
			"preheat.auth.mode: none, but preheat.auth.existingSecret"},
		{"unknown auth key", []string{"--set", "preheat.auth.secret_file=/x"},
			"at '/preheat/auth': additional properties 'secret_file' not allowed"},
		{"upstream password without a user", []string{"--set", "preheat.enabled=true",
			"--set", "preheat.upstreams[0].url=https://harbor.example.com", "--set", "preheat.upstreams[0].existingSecret=s"},
			"preheat.upstreams[0].username: empty but preheat.upstreams[0].existingSecret holds a password"},
		{"upstream without url", []string{"--set", "preheat.upstreams[0].host=harbor.example.com"},
			"at '/preheat/upstreams/0': missing property 'url'"},
		{"upstream http without insecure", []string{"--set", "preheat.upstreams[0].url=http://10.0.0.9:5000"},
			"at '/preheat/upstreams/0': missing property 'insecure'"},
		{"upstream url with a path", []string{"--set", "preheat.upstreams[0].url=https://harbor.example.com/v2/"},
			"/preheat/upstreams/0/url"},
		{"upstream host twice", []string{"--set", "preheat.upstreams[0].url=https://harbor.example.com",
			"--set", "preheat.upstreams[1].host=Harbor.example.com", "--set", "preheat.upstreams[1].url=https://mirror.example.com"},
			"preheat.upstreams[1].host: harbor.example.com is also preheat.upstreams[0]'s"},
		{"allowed registry with a scheme", []string{"--set", "preheat.allowedRegistries[0]=https://harbor.example.com"},
			"/preheat/allowedRegistries/0"},
		{"bad platform", []string{"--set", "preheat.runner.platforms[0]=amd64"}, "/preheat/runner/platforms/0"},
		{"negative maxJobs", []string{"--set", "preheat.runner.maxJobs=-1"}, "/preheat/runner/maxJobs"},
		{"jobTimeout without a unit", []string{"--set-string", "preheat.runner.jobTimeout=30"}, "/preheat/runner/jobTimeout"},
		{"pollInterval without a unit", []string{"--set-string", "agent.warm.pollInterval=5"}, "/agent/warm/pollInterval"},
		{"maxBlobs 0", []string{"--set", "agent.warm.maxBlobs=0"}, "/agent/warm/maxBlobs"},
		{"agentTTL without a unit", []string{"--set-string", "tracker.warm.agentTTL=30"}, "/tracker/warm/agentTTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, err := helm(t, "template", tc.args...)
			if err == nil {
				t.Fatalf("helm template %s rendered (%d bytes), want a refusal", strings.Join(tc.args, " "), len(out))
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("helm template %s: %s\nwant it to name %q", strings.Join(tc.args, " "), strings.TrimSpace(errOut), tc.want)
			}
		})
	}
}

// TestPreheatSessionAffinity: with preheat on and several proxies, the proxy Service
// keeps each client on one replica (a dragonfly job lives in the replica that took it
// and Harbor polls it from the same address); otherwise no affinity is set.
func TestPreheatSessionAffinity(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--set", "preheat.enabled=true", "--set", "proxy.replicas=2"}, true},
		{[]string{"--set", "preheat.enabled=true", "--set", "proxy.replicas=1"}, false},
		{[]string{"--set", "proxy.replicas=3"}, false},
	} {
		out, errOut, err := helm(t, "template", c.args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, errOut)
		}
		if got := strings.Contains(out, "sessionAffinity: ClientIP"); got != c.want {
			t.Errorf("%v: sessionAffinity ClientIP %v, want %v", c.args, got, c.want)
		}
	}
}
