//go:build e2e

// Package preheat drives Harbor's two P2P preheat contracts against a local cluster of
// the built binaries (test/cluster: three origins with two owners per blob, tracker,
// build-index, proxy, three agents, on the devcluster's fixed ports), with a real
// distribution registry as the upstream Harbor would be:
//
//   - kraken: POST /registry/notifications with Harbor's exact body; the proxy pulls what
//     the origins lack from the preheat.upstreams entry matching the event's Url host,
//     with the credentials in its config;
//   - dragonfly: GET /healthy, POST /oapi/v1/jobs and GET /oapi/v1/jobs/{id}, pulling
//     with the registry credentials the job's args.headers carry;
//   - Shoal's own GET /preheat/jobs[/{id}] to read the outcome, and preheat.auth
//     (bearer here) in front of all of them.
//
// TestMain copies config/devcluster/*.yaml, sets enabled, auth (a bearer token from a
// file the test writes) and upstreams (one, with basic auth) in proxy.yaml's preheat
// block, keeping its other keys, and starts the cluster once; each test starts the upstream registry (htpasswd auth, data kept across
// restarts) and pushes its own image, a two-platform OCI index built here, with crane.
// What a test checks is where the bytes ended up (the owner origins' stores, the
// origins' and the proxy's APIs, pulls through an agent), never how long it took.
//
// Run with `make e2e-preheat`. It uses the same fixed ports as ./test/e2e, so the two
// must never run at the same time, and its tests are not parallel. State and logs stay
// in a temporary folder when a test fails (or SHOAL_E2E_KEEP is set).
package preheat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	registrybackend "github.com/shoal-p2p/shoal/lib/backend/registry"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/preheatauth"
	"github.com/shoal-p2p/shoal/test/cluster"
)

// upstreamAddr is the upstream registry's fixed address, the host the kraken upstream
// entry and the events name. Nothing else in the repository uses it.
const upstreamAddr = "127.0.0.1:15950"

// upstreamUser is the upstream's only htpasswd user.
const upstreamUser = "harbor-e2e"

// tools are the binaries the tests run, all installed by `make tools`.
var tools = []string{"crane", "distribution-registry"}

// The suite's shared state, set up by TestMain.
var (
	dev *cluster.Cluster
	// base holds the cluster's state, the configs, the secrets and the upstream's data.
	base string
	// token is the bearer token preheat.auth expects; upstreamPassword is upstreamUser's.
	token, upstreamPassword string
	// origins is the origin set of the proxy's config, for placement (owners).
	origins *originset.Set
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	for _, name := range tools {
		if _, err := exec.LookPath(name); err != nil {
			fmt.Fprintf(os.Stderr, "%s is not on PATH: run make tools (installs it into .tools/bin) and "+
				"make e2e-preheat, or add .tools/bin to PATH: %v\n", name, err)
			return 1
		}
	}
	var err error
	if base, err = os.MkdirTemp("", "shoal-e2e-preheat-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := setUp(); err != nil {
		fmt.Fprintln(os.Stderr, "preheat e2e set-up:", err, "(state kept in "+base+")")
		if dev != nil {
			dev.Stop()
		}
		return 1
	}
	code := m.Run()
	dev.Stop()
	if code == 0 && os.Getenv("SHOAL_E2E_KEEP") == "" {
		os.RemoveAll(base)
	} else {
		fmt.Fprintln(os.Stderr, "cluster and upstream state and logs kept in", base)
	}
	return code
}

// setUp writes the secrets and configs and starts the cluster.
func setUp() error {
	root, err := cluster.FindRoot()
	if err != nil {
		return err
	}
	token, upstreamPassword = randomHex(16), randomHex(16)
	secrets := filepath.Join(base, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return err
	}
	tokenFile := filepath.Join(secrets, "preheat-token")
	passwordFile := filepath.Join(secrets, "upstream-password")
	// Trailing newlines, as a mounted Secret often has: both readers trim them.
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(passwordFile, []byte(upstreamPassword+"\n"), 0o600); err != nil {
		return err
	}
	if err := writeHtpasswd(filepath.Join(secrets, "htpasswd"), upstreamUser, upstreamPassword); err != nil {
		return err
	}
	// crane (pushes to the upstream) reads its credentials from $DOCKER_CONFIG, never
	// from the user's own ~/.docker.
	if err := writeDockerConfig(filepath.Join(base, "docker")); err != nil {
		return err
	}

	configDir := filepath.Join(base, "config")
	if err := writeConfigs(filepath.Join(root, "config", "devcluster"), configDir, preheatBlock{
		Enabled: true,
		Auth:    preheatauth.Config{Mode: preheatauth.ModeBearer, SecretFile: tokenFile},
		Upstreams: []registrybackend.Config{{
			URL: "http://" + upstreamAddr, Insecure: true, Username: upstreamUser, PasswordFile: passwordFile,
		}},
	}); err != nil {
		return err
	}
	if origins, err = loadOrigins(filepath.Join(configDir, "proxy.yaml")); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dev, err = cluster.Start(ctx, cluster.Options{Root: root, State: filepath.Join(base, "cluster"), ConfigDir: configDir})
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// writeHtpasswd writes an htpasswd file of one bcrypt entry, the only format
// distribution's htpasswd auth reads.
func writeHtpasswd(path, user, password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600)
}

// writeDockerConfig writes a docker config.json holding the upstream's credentials
// into dir and points DOCKER_CONFIG at it for every tool the tests run.
func writeDockerConfig(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfg := map[string]any{"auths": map[string]any{upstreamAddr: map[string]string{"auth": basicCredentials()}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return err
	}
	return os.Setenv("DOCKER_CONFIG", dir)
}

// basicCredentials is base64(user:password) of the upstream's user.
func basicCredentials() string {
	return base64.StdEncoding.EncodeToString([]byte(upstreamUser + ":" + upstreamPassword))
}

// preheatBlock is the proxy's preheat block as the tests configure it; the types are
// the ones the proxy decodes (strictly) into.
type preheatBlock struct {
	Enabled   bool                     `yaml:"enabled"`
	Auth      preheatauth.Config       `yaml:"auth"`
	Upstreams []registrybackend.Config `yaml:"upstreams"`
}

// writeConfigs copies every *.yaml of from into to, with block's keys set in
// proxy.yaml's preheat block (its other keys, and the rest of each file, comments
// included, as they are).
func writeConfigs(from, to string, block preheatBlock) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(from, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no configs in %s", from)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if filepath.Base(f) == "proxy.yaml" {
			if data, err = mergeKey(data, "preheat", block); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(f)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// mergeKey sets, in the mapping at top-level key of the YAML document doc (created if
// absent), every key v encodes to.
func mergeKey(doc []byte, key string, v any) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a YAML mapping")
	}
	var value yaml.Node
	if err := value.Encode(v); err != nil {
		return nil, err
	}
	target := mappingValue(root.Content[0], key)
	if target.Kind != yaml.MappingNode {
		*target = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	for i := 0; i+1 < len(value.Content); i += 2 {
		*mappingValue(target, value.Content[i].Value) = *value.Content[i+1]
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2) // the devcluster files' own indent
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// mappingValue is the value node of key in mapping m, added (null) if absent.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

// loadOrigins builds the origin set the proxy's config names, to compute placement
// exactly as the proxy does (a static set is complete at once and starts nothing).
func loadOrigins(proxyConfig string) (*originset.Set, error) {
	data, err := os.ReadFile(proxyConfig)
	if err != nil {
		return nil, err
	}
	cfg := struct {
		Origins originset.Config `yaml:"origins"`
	}{Origins: originset.DefaultConfig()}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", proxyConfig, err)
	}
	return originset.New(cfg.Origins, nil, zap.NewNop(), tally.NoopScope)
}
